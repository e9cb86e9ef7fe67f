"""Python Nodes: `nengo_cuda.pyfunc`'s step against Nengo's own `SimPyFunc`
step, and input Nodes sharing one callback that ``data=`` switches off one
Node at a time."""

import itertools

import nengo
import numpy as np
import pytest
from nengo.builder.operator import SimPyFunc
from nengo.builder.signal import Signal, SignalDict
from nengo.exceptions import SimulationError

import nengo_cuda
from nengo_cuda import pyfunc

OBJECT = object()  # one object: its repr is in the error message
FUNCTIONS = {  # name: (function, passes t, passes x)
    "t": (lambda t: np.sin(t) * np.ones(2), True, False),
    "x": (lambda x: x[::-1] * 2, False, True),
    "t, x": (lambda t, x: x + t, True, True),
    "none": (lambda: [1.0, 2.0], False, False),
    "float": (lambda t: 0.25 + t, True, False),  # a Python float, broadcast
    "int": (lambda t: 3, True, False),
    "numpy scalar": (lambda t: np.float32(t), True, False),
    "list": (lambda t, x: [t, -t], True, True),
    "column": (lambda t: np.ones((2, 1)), True, False),  # not broadcastable: error
    "None": (lambda t: None, True, False),
    "nan": (lambda t: float("nan"), True, False),
    "inf in array": (lambda x: np.array([1.0, np.inf]), False, True),
    "string": (lambda t: "a", True, False),
    "object": (lambda t: OBJECT, True, False),
    "wrong length": (lambda t: [1.0, 2.0, 3.0], True, False),
    "raises": (lambda t: 1 / 0, True, False),
    # pyfunc.all_finite's cases: NumPy float64 scalars (a float subclass),
    # small float arrays element by element, anything else through NumPy
    "numpy float64": (lambda t: np.sin(t), True, False),
    "numpy float64 nan": (lambda t: np.float64("nan"), True, False),
    "numpy float64 -inf": (lambda t: np.float64(-np.inf), True, False),
    "0-d array": (lambda t: np.array(t), True, False),
    "float32 array with nan": (lambda x: np.array([1.0, np.nan], np.float32), False, True),
    "float16 array": (lambda x: x.astype(np.float16), False, True),
    "int array": (lambda t: np.array([1, 2]), True, False),
    "bool": (lambda t: True, True, False),
    "complex": (lambda t: 1j + t, True, False),
    "long double array": (lambda t: np.array([1, "1e4000"], dtype=np.longdouble), True, False),
    "large array with inf": (lambda t: np.r_[np.zeros(40), np.inf], True, False),
    "large finite array": (lambda t: np.zeros(41), True, False),
}


def run_step(make, fn, t_passed, x_passed, with_output):
    """(output, x after the call, exception) of one step of ``make``'s step
    for a SimPyFunc of ``fn`` on fresh signals."""
    t = Signal(np.array(0.125), name="t")
    x = Signal(np.array([0.5, -1.5]), name="x")
    out = Signal(np.zeros(2), name="out")
    op = SimPyFunc(out if with_output else None, fn, t if t_passed else None,
                   x if x_passed else None)
    signals = SignalDict()
    for sig in (t, x, out):
        signals.init(sig)
    step = make(op, signals)
    try:
        step()
        error = None
    except Exception as e:  # noqa: BLE001 (compared below)
        error = e
    return signals[out].copy(), signals[x].copy(), error


@pytest.mark.parametrize("with_output", [True, False], ids=["output", "no output"])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_step_equals_nengos(name, with_output):
    fn, t_passed, x_passed = FUNCTIONS[name]
    ours = run_step(pyfunc.make_step, fn, t_passed, x_passed, with_output)
    nengos = run_step(lambda op, s: op.make_step(s, 0.001, np.random), fn, t_passed, x_passed,
                      with_output)
    np.testing.assert_array_equal(ours[0], nengos[0])
    np.testing.assert_array_equal(ours[1], nengos[1])  # the function got a copy of x
    assert type(ours[2]) is type(nengos[2])
    assert str(ours[2]) == str(nengos[2])
    if nengos[2] is not None:  # raised from the same kind of error
        assert type(ours[2].__cause__) is type(nengos[2].__cause__)
    if name in ("None", "nan", "string", "column") and with_output:
        assert isinstance(ours[2], SimulationError)  # the cases do reach the checks


def test_function_gets_a_copy_of_its_input():
    seen = []
    t, x, out = Signal(np.array(0.0)), Signal(np.array([1.0, 2.0])), Signal(np.zeros(2))
    op = SimPyFunc(out, lambda t, x: seen.append(x) or x * 0, t, x)
    signals = SignalDict()
    for sig in (t, x, out):
        signals.init(sig)
    pyfunc.make_step(op, signals)()
    assert seen[0] is not signals[x] and not np.shares_memory(seen[0], signals[x])


def counting_network(n=3):
    """``n`` Python input Nodes (each counting its calls) into one output."""
    calls = [0] * n
    with nengo.Network(seed=1) as net:
        out = nengo.Node(size_in=n)
        nodes = []
        for i in range(n):
            def fn(t, i=i):
                calls[i] += 1
                return np.sin(10 * t + i)
            nodes.append(nengo.Node(fn))
            nengo.Connection(nodes[-1], out[i], synapse=None)
        probe = nengo.Probe(out)
    return net, nodes, probe, calls


@pytest.mark.parametrize("kwargs", [
    dict(dtype="float64"),
    dict(dtype="float32", minibatch_size=2),
    dict(dtype="float64", minibatch_size=2, device="cuda-emulator"),
], ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_input_nodes_share_a_callback_that_data_switches_off_per_node(kwargs):
    net, nodes, probe, calls = counting_network()
    trials = kwargs.get("minibatch_size", 1)
    with nengo_cuda.Simulator(net, progress_bar=False, **kwargs) as sim:
        callbacks = [i for i in sim.program if i.kind == "callback"]
        assert len(callbacks) == 1 and len(callbacks[0].ops) == 3  # one trip to Python
        steps = 10
        data = np.arange(trials * steps, dtype=float).reshape(trials, steps, 1) / 100

        built = list(calls)  # (Nengo calls each function once to find its size)
        sim.run_steps(steps, data={nodes[1]: data})  # node 1 fed, the others run
        assert np.subtract(calls, built).tolist() == [steps, 0, steps]  # (once for all trials)
        got = sim.data[probe].reshape(trials, steps, 3)
        np.testing.assert_allclose(got[..., 1], data[..., 0], rtol=1e-6)
        t = sim.trange()[:, None]
        np.testing.assert_allclose(got[..., 0], np.sin(10 * t.T).repeat(trials, 0), rtol=1e-6)

        before = list(calls)
        sim.run_steps(steps, data={node: data for node in nodes})  # all fed: switched off
        assert calls == before
        got = sim.data[probe].reshape(trials, 2 * steps, 3)[:, steps:]
        np.testing.assert_allclose(got, np.repeat(data, 3, axis=2), rtol=1e-6)

        sim.run_steps(steps)  # no data: every Node runs again
        assert calls == [c + steps for c in before]
        got = sim.data[probe].reshape(trials, 3 * steps, 3)[:, 2 * steps:, 2]
        t = sim.trange()[2 * steps:]
        np.testing.assert_allclose(got, np.sin(10 * t + 2)[None].repeat(trials, 0), rtol=1e-6)


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
def test_input_node_function_is_called_once_a_step_for_all_trials(device):
    """NengoDL calls an input Node's function once per step and gives every
    trial its value: a function with state of its own (here a counter) is not
    advanced once per trial; nor is a sink's.  A Node with an input runs per trial."""
    counter = itertools.count()
    inputs, sinks = [], []
    with nengo.Network(seed=2) as net:
        stim = nengo.Node(lambda t: float(next(counter)))
        with_input = nengo.Node(lambda t, x: inputs.append(float(x[0])) or x, size_in=1)
        nengo.Connection(stim, with_input, synapse=None)
        nengo.Node(lambda t: sinks.append(t), size_out=0)
        p = nengo.Probe(stim)
    with nengo_cuda.Simulator(net, minibatch_size=3, device=device, progress_bar=False) as sim:
        start = next(counter) + 1
        inputs.clear(), sinks.clear()
        sim.run_steps(4)
    expected = np.arange(start, start + 4, dtype=float)
    np.testing.assert_array_equal(sim.data[p][..., 0], np.tile(expected, (3, 1)))
    assert next(counter) == start + 4
    assert len(sinks) == 4
    assert inputs == np.repeat(expected, 3).tolist()


def test_input_nodes_equal_nengo():
    net, _, probe, _ = counting_network()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(50)
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(50)
    np.testing.assert_allclose(sim.data[probe], ref.data[probe], rtol=1e-12, atol=1e-15)
