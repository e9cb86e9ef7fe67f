"""NaN made by native kernels raises Nengo's FloatingPointError
(`nengo_cuda.invalid_values`); NaN that comes in as data warns, where Nengo
passes it on."""

import warnings

import nengo
import numpy as np
import pytest

import nengo_cuda
from nengo_cuda import invalid_values

DEVICES = ["cpu", "cuda-emulator"]


def _diverging(gain=1e30):
    """A loop that grows without bound to inf; then inf * 0 is NaN (in a
    product), and inf into LIF neurons (inf - inf in their update)."""
    with nengo.Network(seed=1) as net:
        stim = nengo.Node([1.0])
        acc = nengo.Node(size_in=1)
        nengo.Connection(stim, acc, synapse=None)
        nengo.Connection(acc, acc, transform=gain, synapse=0)
        out = nengo.Node(size_in=2)
        nengo.Connection(acc, out, transform=[[1.0], [0.0]], synapse=None)
        ens = nengo.Ensemble(5, 1)
        nengo.Connection(acc, ens)
        p = nengo.Probe(out)
    return net, p


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nan_made_in_a_run_raises_as_in_nengo(device, dtype):
    net, p = _diverging()
    with nengo.Simulator(net, progress_bar=False) as ref:
        with pytest.raises(FloatingPointError):
            ref.run_steps(30)
    with nengo_cuda.Simulator(net, device=device, dtype=dtype, progress_bar=False) as sim:
        with pytest.raises(FloatingPointError, match="NaN value appeared in the data of"):
            sim.run_steps(30)
        assert sim.n_steps == 30 and np.isnan(sim.data[p]).any()  # (the steps stand)
        sim.run_steps(5)  # NaN carried on is not made again: no error (nor in NumPy)
        sim.reset()
        sim.run_steps(2)  # a clean state again: nothing to report
        assert not np.isnan(sim.data[p]).any()
        with pytest.raises(FloatingPointError):
            sim.run_steps(30)


@pytest.mark.parametrize("device", DEVICES)
def test_nan_in_unprobed_state_and_one_trial_is_named(device):
    """A NaN no probe shows (LIF voltages fed inf spike no more: the decoded
    value is finite) is found in the state, named by signal and trial."""
    with nengo.Network(seed=2) as net:
        inp = nengo.Node(np.zeros(1))
        ens = nengo.Ensemble(6, 1)
        nengo.Connection(inp, ens, transform=1e300, synapse=None)
        p = nengo.Probe(ens, synapse=0.01)
    data = np.zeros((2, 4, 1))
    data[1] = 1e300  # (finite: data= refuses inf)
    with nengo_cuda.Simulator(net, minibatch_size=2, device=device, dtype="float64",
                              progress_bar=False) as sim:
        with pytest.raises(FloatingPointError, match=r"signal .*\(trial 1\) at the end"):
            sim.run_steps(4, data={inp: data})
        assert np.isfinite(sim.data[p]).all()


@pytest.mark.parametrize("device", DEVICES)
def test_nan_given_as_data_warns(device):
    """NaN values of a Piecewise or a user's process reach the neurons without
    an invalid operation: Nengo runs on, and here a warning says where a NaN is."""

    class GivesNaN(nengo.Process):
        def make_step(self, shape_in, shape_out, dt, rng, state):
            return lambda t: np.full(shape_out, np.nan if t > 0.002 else 0.5)

    for source in (nengo.processes.Piecewise({0: 0.5, 0.003: np.nan}),
                   GivesNaN(default_size_out=1)):
        with nengo.Network(seed=3) as net:
            node = nengo.Node(source)
            ens = nengo.Ensemble(4, 1)
            nengo.Connection(node, ens, synapse=None)
            p = nengo.Probe(ens.neurons, "voltage")
        with nengo.Simulator(net, progress_bar=False) as ref:
            ref.run_steps(6)  # (no error)
        with nengo_cuda.Simulator(net, device=device, dtype="float64",
                                  progress_bar=False) as sim:
            with pytest.warns(RuntimeWarning, match="came in as data"):
                sim.run_steps(6)
        np.testing.assert_array_equal(np.isnan(sim.data[p]), np.isnan(ref.data[p]))


@pytest.mark.parametrize("device", DEVICES)
def test_a_process_of_finite_values_does_not_excuse_a_made_nan(device):
    """A user's process elsewhere in the model, whose values are finite, does
    not turn a NaN an operation made into a warning."""

    class Finite(nengo.Process):
        def make_step(self, shape_in, shape_out, dt, rng, state):
            return lambda t: np.ones(shape_out)

    net, p = _diverging()
    with net:
        nengo.Probe(nengo.Node(Finite(default_size_out=1)))
    with nengo_cuda.Simulator(net, device=device, progress_bar=False) as sim:
        with pytest.raises(FloatingPointError):
            sim.run_steps(30)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("source", ["made", "data"])
def test_a_node_function_given_nan_raises_what_nengo_raises(device, source):
    """A Node function that returns the NaN it is given fails Nengo's check
    ("returned non-finite value"); where an operation made that NaN, Nengo
    raised FloatingPointError there first (a callback's error here comes
    after the kernels' step: the made NaN is reported instead, the Node's
    error as its cause), and where it came in as data, the Node's error."""
    with nengo.Network(seed=4) as net:
        if source == "made":
            grows = nengo.Node(lambda t: 1e308 if t > 0.003 else 1.0)
            big = nengo.Node(size_in=1)
            nengo.Connection(grows, big, transform=10, synapse=None)  # inf
            nan = nengo.Node(size_in=1)
            nengo.Connection(big, nan, synapse=None)
            nengo.Connection(big, nan, transform=-1, synapse=None)  # inf - inf
        else:
            nan = nengo.Node(nengo.processes.Piecewise({0: 0.5, 0.003: np.nan}))
        echo = nengo.Node(lambda t, x: x, size_in=1)
        nengo.Connection(nan, echo, synapse=0.01)
    expected = FloatingPointError if source == "made" else nengo.exceptions.SimulationError
    with nengo.Simulator(net, progress_bar=False) as ref:
        with np.errstate(over="ignore"), pytest.raises(expected):
            ref.run_steps(10)
    with nengo_cuda.Simulator(net, device=device, dtype="float64", progress_bar=False) as sim:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # (the data's NaN warns)
            with pytest.raises(expected) as raised:
                sim.run_steps(10)
    if source == "made":
        assert "NaN value appeared" in str(raised.value)
        assert "returned non-finite value" in str(raised.value.__cause__)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("node_raises", [False, True])
def test_nan_given_as_data_and_gone_is_not_taken_for_a_made_one(device, node_raises):
    """A Piecewise gives NaN for two steps, then numbers again: its NaN is gone
    from it when the run ends, and stays in a filtered probe.  Nengo passes it
    on (no error), and a Node's own error later in the run is that error; the
    NaN was taken for a made one (FloatingPointError), which then hid the
    Node's error too."""

    def fails_late(t):
        if t > 0.0075:
            raise ValueError("the Node's own error")
        return 0.0

    with nengo.Network(seed=1) as net:
        nan = nengo.Node(nengo.processes.Piecewise({0: 0.5, 0.003: np.nan, 0.005: 0.5}))
        if node_raises:
            nengo.Node(fails_late)
        p = nengo.Probe(nan, synapse=0.01)
    for simulator, kwargs in ((nengo.Simulator, {}),
                              (nengo_cuda.Simulator, dict(device=device, dtype="float64"))):
        with simulator(net, progress_bar=False, **kwargs) as sim:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # (ours: NaN as data)
                if node_raises:
                    with pytest.raises(ValueError, match="the Node's own error"):
                        sim.run_steps(10)
                else:
                    sim.run_steps(10)
        assert np.isnan(sim.data[p]).any()
    if not node_raises:
        with nengo_cuda.Simulator(net, device=device, progress_bar=False) as sim:
            with pytest.warns(RuntimeWarning, match="came in as data"):
                sim.run_steps(10)


class _Ones(nengo.Process):
    def make_step(self, shape_in, shape_out, dt, rng, state):
        return lambda t: np.ones(shape_out)


_NOT_YET = {  # sources of NaN as data that give none within the run
    "user process": lambda: _Ones(default_size_out=1),
    "piecewise later": lambda: nengo.processes.Piecewise({0: 0.0, 1.0: np.nan}),
    "present input later": lambda: nengo.processes.PresentInput(
        [[0.0]] * 99 + [[np.nan]], presentation_time=0.001),
    "choice of weight 0": lambda: nengo.processes.WhiteNoise(
        nengo.dists.Choice([[0.0], [np.nan]], weights=[1, 0])),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("echo", [False, True])
@pytest.mark.parametrize("source", sorted(_NOT_YET))
def test_a_source_that_gave_no_nan_does_not_excuse_a_made_one(device, echo, source):
    """A made NaN is reported (FloatingPointError, as Nengo's) beside an
    operator that may give NaN as data but gave none within the run: whether
    it is known (its values evaluated at the run's steps, its distribution's
    weights) or not (a user's process, whose output holds none); also where a
    Node function returning the NaN stopped the run."""
    net, p = _diverging()
    with net:
        nengo.Probe(nengo.Node(_NOT_YET[source]()))
        if echo:
            nengo.Connection(net.nodes[1], nengo.Node(lambda t, x: x, size_in=1),
                             synapse=None)
    with nengo.Simulator(net, progress_bar=False) as ref:
        with np.errstate(over="ignore"), pytest.raises(FloatingPointError):
            ref.run_steps(40)
    with nengo_cuda.Simulator(net, device=device, dtype="float64", progress_bar=False) as sim:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            with pytest.raises(FloatingPointError, match="NaN value appeared"):
                sim.run_steps(40)


def test_a_reported_nan_in_restored_state_is_not_reported_again():
    """Runs with stateful=False start from the state saved before them: a NaN
    reported before is in it, and is not reported again (nor by predict)."""
    net, p = _diverging()
    with nengo_cuda.Simulator(net, progress_bar=False) as sim:
        with pytest.raises(FloatingPointError):
            sim.run_steps(30)
        for _ in range(3):
            sim.run_steps(5, stateful=False)
        sim.predict(n_steps=5)
        sim.reset()
        with pytest.raises(FloatingPointError):  # (a new NaN, made again)
            sim.run_steps(30, stateful=False)
        with pytest.raises(FloatingPointError):  # (the state before it was clean)
            sim.run_steps(30, stateful=False)


def test_runs_without_nan_neither_raise_nor_warn():
    net, p = _diverging(gain=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with nengo_cuda.Simulator(net, minibatch_size=2, progress_bar=False) as sim:
            sim.run_steps(20)


def test_sources_of_nan_as_data():
    """Which operators may output a NaN that no operation made."""
    def passes(process):
        with nengo.Network() as net:
            nengo.Node(process, size_out=1)
        model = nengo.builder.Model()
        model.build(net)
        return any(invalid_values.passes_nan_in(op) for op in model.operators)

    assert not passes(nengo.processes.WhiteNoise(nengo.dists.Gaussian(0, 1)))
    assert not passes(nengo.processes.WhiteSignal(1.0, high=5))
    assert not passes(nengo.processes.PresentInput([[1.0], [2.0]], 0.1))
    assert not passes(nengo.processes.Piecewise({0: 1.0, 0.5: 2.0}))
    assert passes(nengo.processes.PresentInput([[1.0], [np.nan]], 0.1))
    assert passes(nengo.processes.Piecewise({0: 1.0, 0.5: np.nan}))
    assert passes(nengo.processes.Piecewise({0: lambda t: t}))
    assert passes(nengo.processes.WhiteNoise(nengo.dists.Choice([[1.0], [np.nan]])))
    assert not passes(nengo.processes.WhiteNoise(nengo.dists.Samples([[1.0], [2.0]])))
