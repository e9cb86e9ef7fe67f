"""nengo_cuda.zero_inputs: increments by products with always-zero inputs
(the encoders of ensembles fed only through their neurons) are dropped.

Here: that they are dropped where they should be and not where they must not
be, that dropping changes no value (bit for bit against the plan that keeps
them, and against nengo.Simulator), and that the order of the rest holds.
"""

import nengo
import numpy as np
import pytest
from nengo.builder.operator import Copy, DotInc, ElementwiseInc, Reset
from nengo.builder.signal import Signal

import nengo_cuda
from nengo_cuda import zero_inputs
from nengo_cuda.rewrite import written_spans


def neuron_fed_net(seed=3):
    """A converted-model layout: input -> LIF layer -> LIF layer -> output, all
    connections into neurons, so the layers' decoded inputs stay zero; and one
    ensemble with a decoded input, whose encoder product must stay."""
    with nengo.Network(seed=seed) as net:
        stim = nengo.Node(lambda t: [np.sin(7 * t), np.cos(5 * t), 0.3])
        layer1 = nengo.Ensemble(40, 1, neuron_type=nengo.LIF(amplitude=0.05))
        layer2 = nengo.Ensemble(30, 1, neuron_type=nengo.RectifiedLinear())
        decoded = nengo.Ensemble(25, 2)
        rng = np.random.RandomState(seed)
        nengo.Connection(stim, layer1.neurons, transform=rng.uniform(-2, 2, (40, 3)))
        nengo.Connection(layer1.neurons, layer2.neurons, transform=rng.uniform(-1, 1, (30, 40)),
                         synapse=0.005)
        nengo.Connection(stim[:2], decoded)
        out = nengo.Node(size_in=4)
        nengo.Connection(layer2.neurons, out[:2], transform=rng.uniform(-0.1, 0.1, (2, 30)))
        nengo.Connection(decoded, out[2:])
        probes = [nengo.Probe(out, synapse=0.01), nengo.Probe(layer1.neurons),
                  nengo.Probe(layer2.neurons), nengo.Probe(decoded, synapse=0.01)]
    return net, probes, (layer1, layer2, decoded)


def run(net, probes, enabled, steps=200, **kwargs):
    old = zero_inputs.ENABLED
    zero_inputs.ENABLED = enabled
    try:
        with nengo_cuda.Simulator(net, progress_bar=False, **kwargs) as sim:
            sim.run_steps(steps)
            encoder_products = {op.A.name.split(".")[0] for instr in sim.program
                                for op in instr.ops if type(op) is DotInc
                                and op.A.name.endswith("scaled_encoders")}
            return [np.array(sim.data[p]) for p in probes], encoder_products
    finally:
        zero_inputs.ENABLED = old


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("minibatch_size", [None, 3])
def test_dropped_products_change_no_bit(dtype, minibatch_size):
    net, probes, (layer1, layer2, decoded) = neuron_fed_net()
    kwargs = dict(dtype=dtype, minibatch_size=minibatch_size)
    kept, all_products = run(net, probes, False, **kwargs)
    dropped, products = run(net, probes, True, **kwargs)
    assert all_products == {str(e) for e in (layer1, layer2, decoded)}
    assert products == {str(decoded)}, "only the ensemble with a decoded input keeps its product"
    for p, a, b in zip(probes, dropped, kept):
        assert np.ptp(b, axis=-2).max() > 0, f"{p} does not change: the test proves little"
        np.testing.assert_array_equal(a, b, err_msg=str(p))


def test_dropped_products_match_nengo():
    net, probes, _ = neuron_fed_net()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(200)
    ours, _ = run(net, probes, True, dtype="float64")
    for p, a in zip(probes, ours):
        np.testing.assert_allclose(a, ref.data[p], rtol=1e-12, atol=1e-12, err_msg=str(p))


def _ops(x_init=0.0, a_values=None):
    """Reset(X); Y = 1; Y += A @ X; Z += X * A2; W += X (a Copy with inc)."""
    X = Signal(np.full(3, x_init), name="X")
    A = Signal(np.ones((2, 3)) if a_values is None else a_values, name="A")
    A2 = Signal(np.ones(3), name="A2")
    Y = Signal(np.zeros(2), name="Y")
    Z, W = Signal(np.zeros(3), name="Z"), Signal(np.zeros(3), name="W")
    ops = [Reset(X), Copy(Signal(np.ones(2), name="one"), Y), DotInc(A, X, Y),
           ElementwiseInc(X, A2, Z), ElementwiseInc(A2, X, Z), Copy(X, W, inc=True)]
    return ops, dict(X=X, A=A, Y=Y)


def dropped(ops):
    written = written_spans(ops)
    resets = {op for op in ops if type(op) is Reset and op.value == 0}
    return [type(op).__name__ for op in ops if zero_inputs.adds_nothing(op, written, resets)]


def test_what_adds_nothing():
    ops, _ = _ops()
    # ElementwiseInc(X, A2, Z) multiplies by X as its A: only X counts as the input
    assert dropped(ops) == ["DotInc", "ElementwiseInc", "Copy"]


@pytest.mark.parametrize("case", ["x_starts_nonzero", "x_written", "x_partly_written",
                                  "reset_to_one", "a_written", "a_infinite"])
def test_what_must_stay(case):
    a_values = np.array([[1, np.inf, 1], [1, 1, 1.0]]) if case == "a_infinite" else None
    with np.errstate(invalid="ignore"):  # DotInc checks its shapes with A @ X
        ops, s = _ops(x_init=0.5 if case == "x_starts_nonzero" else 0.0, a_values=a_values)
    if case == "x_written":
        ops.append(Copy(Signal(np.ones(3), name="src"), s["X"], inc=True))
    if case == "x_partly_written":
        ops.append(Copy(Signal(np.ones(1), name="src"), s["X"][2:3]))
    if case == "reset_to_one":
        ops[0] = Reset(s["X"], value=1.0)
    if case == "a_written":
        ops.append(Copy(Signal(np.ones((2, 3)), name="src"), s["A"], inc=True))
    expect = {"a_written": ["ElementwiseInc", "Copy"],
              "a_infinite": ["ElementwiseInc", "Copy"]}.get(case, [])
    assert dropped(ops) == expect


def test_drop_keeps_the_order_through_dropped_operators():
    """a -> d1 -> d2 -> b with d1, d2 dropped: a still precedes b."""
    ops, _ = _ops()
    reset, copy_y, dot = ops[0], ops[1], ops[2]
    copy_w = ops[5]
    after = Copy(Signal(np.ones(2), name="after"), Signal(np.zeros(2), name="V"))
    dg = {reset: {dot}, copy_y: {dot}, dot: {copy_w}, copy_w: {after}, after: set()}
    order = [reset, copy_y, dot, copy_w, after]
    new_order, new_dg = zero_inputs.drop(order, dg)
    assert new_order == [reset, copy_y, after]
    assert new_dg == {reset: {after}, copy_y: {after}, after: set()}


@pytest.mark.parametrize("minibatch_size", [None, 2])
def test_inputs_fed_by_data_are_not_zero(minibatch_size):
    """A constant zero Node is written by ``data=`` at run time: its products stay."""
    transform = np.array([[2.0, 0.0], [0.5, -3.0]])
    with nengo.Network() as net:
        inp = nengo.Node(np.zeros(2))
        out = nengo.Node(size_in=2)
        nengo.Connection(inp, out, transform=transform, synapse=None)
        p = nengo.Probe(out)
    n = minibatch_size or 1
    data = np.arange(n * 6 * 2, dtype=float).reshape(n, 6, 2)
    with nengo_cuda.Simulator(net, minibatch_size=minibatch_size, progress_bar=False) as sim:
        sim.run_steps(6, data={inp: data})
    got = sim.data[p] if minibatch_size else sim.data[p][None]
    np.testing.assert_allclose(got, data @ transform.T)
