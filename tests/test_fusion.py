"""nengo_cuda.fusion: a constant copy and the product that follows it run as one
product that starts from the constant (J = bias + encoders @ x)."""

import nengo
import numpy as np
import pytest
from nengo.builder.operator import BsrDotInc, Copy, DotInc, ElementwiseInc, Reset
from nengo.builder.signal import Signal
from nengo.builder.transforms import ConvInc
from nengo.utils.simulator import operator_dependency_graph

import nengo_cuda
from nengo_cuda import fusion, views


def signals(n=4):
    return Signal(np.ones(n), name="bias"), Signal(np.zeros(n), name="J"), Signal(np.zeros(2))


def dense(J, rows, x):
    return DotInc(Signal(np.ones((len(range(*rows.indices(J.size))), 2))), x, J[rows])


def groups_for(ops):
    return fusion.fusable_groups(ops, operator_dependency_graph(ops), lowerable=lambda op: True)


def test_a_bias_copy_and_its_product_fuse():
    bias, J, x = signals()
    copy, dot = Copy(bias, J), dense(J, slice(None), x)
    assert groups_for([copy, dot]) == [(copy, [dot])]
    assert groups_for([Reset(bias), copy, dot]) == []  # the source is not constant
    assert groups_for([Copy(bias, J, inc=True), dot]) == []  # J also holds something else


@pytest.mark.parametrize("parts, written, fused", [
    ([slice(0, 2), slice(2, 4)], None, [0, 2]),  # a merged copy, a product per ensemble
    ([slice(0, 2)], None, [0]),  # rows 2-3 keep a copy
    ([slice(0, 2), slice(2, 4)], slice(3, 4), [0]),  # an operator writes bias[3]
    # a second product adds to rows 0-1: fusing would reorder their sum
    ([slice(2, 4), slice(0, 2), slice(0, 2)], None, [2]),
    ([slice(0, 3), slice(2, 4)], None, []),
])
def test_products_that_cover_parts_of_a_copy_fuse(parts, written, fused):
    bias, J, x = signals()
    copy = Copy(bias, J)
    dots = [dense(J, rows, x) for rows in parts]
    ops = ([Reset(bias[written])] if written else []) + [copy] + dots
    if not fused:
        assert groups_for(ops) == []
        return
    ((c, chosen),) = groups_for(ops)
    assert c is copy and sorted(d.Y.elemoffset for d in chosen) == fused
    order, dg = fusion.fuse(ops, operator_dependency_graph(ops), [(c, chosen)])
    leftovers = [op for op in order if type(op) is Copy]
    covered = {i for d in chosen for i in range(d.Y.elemoffset, d.Y.elemoffset + d.Y.size)}
    left = sorted(i for op in leftovers for i in range(op.dst.elemoffset,
                                                       op.dst.elemoffset + op.dst.size))
    assert left == sorted(set(range(4)) - covered)  # every other element still copied
    for op in leftovers:
        assert op.src.elemoffset == op.dst.elemoffset  # from the same elements of bias


def test_leftover_copies_of_views_keep_their_place_in_the_base():
    """A copy between views (not at the start of their bases): what the product
    leaves is copied from and to the same elements of the bases.  (Nengo's
    slicing of a view records the offset from the view, not the base.)"""
    bias, J, x = Signal(np.arange(8.0), name="bias"), Signal(np.zeros(8), name="J"), signals()[2]
    copy = Copy(bias[2:6], J[3:7])
    dot = DotInc(Signal(np.ones((2, 2))), x, views.run(copy.dst, 0, 2))
    ((c, chosen),) = groups_for([copy, dot])
    order, _ = fusion.fuse([copy, dot], operator_dependency_graph([copy, dot]), [(c, chosen)])
    (left,) = [op for op in order if type(op) is Copy]
    assert (left.src.elemoffset, left.dst.elemoffset, left.dst.size) == (4, 5, 2)
    assert list(left.src.initial_value) == [4.0, 5.0]


def test_two_blocks_per_row_do_not_fuse():
    bias, J, x = signals()
    bsr = BsrDotInc(Signal(np.ones((4, 2, 1))), x, J, indices=np.array([0, 1, 0, 1]),
                    indptr=np.array([0, 2, 4]), reshape=False)
    assert groups_for([Copy(bias, J), bsr]) == []


def test_fused_graph_keeps_the_dependencies():
    bias, J, x = signals()
    copy, dot = Copy(bias, J), dense(J, slice(None), x)
    reader = Copy(J, Signal(np.zeros(4), name="out"))
    ops = [copy, dot, reader]
    order, dg = fusion.fuse(ops, operator_dependency_graph(ops), [(copy, [dot])])
    (fused,) = [op for op in order if isinstance(op, fusion.CopyThenDotInc)]
    assert order == [fused, reader] and fused.parts == [copy, dot]  # nothing left to copy
    assert dg[fused] == {reader} and not dg.get(reader)


def test_a_bias_copy_and_an_elementwise_product_fuse():
    """J = bias; J += gains * x (a connection into neurons) fuses; not when the
    product reads J itself (fused, it would read J before the copy)."""
    bias, J, _ = signals()
    gains, x = Signal(np.full(4, 2.0), name="gains"), Signal(np.ones(4), name="x")
    copy, product = Copy(bias, J), ElementwiseInc(gains, x, J)
    assert groups_for([copy, product]) == [(copy, [product])]
    order, _ = fusion.fuse([copy, product], operator_dependency_graph([copy, product]),
                           [(copy, [product])])
    (fused,) = order
    assert isinstance(fused, fusion.CopyThenElementwiseInc) and fused.parts == [copy, product]
    assert groups_for([copy, ElementwiseInc(gains, J[::-1], J)]) == []
    assert groups_for([copy, product, ElementwiseInc(gains, x, J)]) == []  # two increments


def network(neuron_connection=False, neuron_fed=False):
    """Ensembles of different sizes and neuron types (Nengo merges their bias
    copies, not their encoder products); ``neuron_fed``: one more ensemble fed
    only through its neurons (no encoder product: J = bias + gains * x)."""
    with nengo.Network(seed=4) as net:
        stim = nengo.Node(nengo.processes.WhiteSignal(1.0, high=5, rms=0.4), size_out=2)
        a = nengo.Ensemble(60, 2)
        b = nengo.Ensemble(45, 2, neuron_type=nengo.AdaptiveLIF())
        c = nengo.Ensemble(30, 1, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(stim, a)
        nengo.Connection(a, b, transform=[[0.5, 0.2], [-0.3, 0.9]])
        nengo.Connection(b, c, function=lambda v: v[0] * v[1])
        if neuron_connection:  # a second increment of c's input current
            nengo.Connection(a.neurons, c.neurons, transform=np.full((30, 60), 0.001))
        probes = [nengo.Probe(e, synapse=0.01) for e in (a, b, c)]
        if neuron_fed:
            d = nengo.Ensemble(35, 1, neuron_type=nengo.LIF(amplitude=0.1))
            transform = np.random.RandomState(2).uniform(-0.02, 0.05, (35, 60))
            nengo.Connection(a.neurons, d.neurons, transform=transform)
            probes.append(nengo.Probe(d.neurons))
    return net, probes


def run(net, probes, monkeypatch, enabled, **kwargs):
    monkeypatch.setattr(fusion, "ENABLED", enabled)
    with nengo_cuda.Simulator(net, progress_bar=False, **kwargs) as sim:
        sim.run_steps(150)
        biases = {id(sim.model.sig[e.neurons]["bias"].base) for e in net.all_ensembles}
        bias_copies = {kind: [op for i in sim.program if i.kind.startswith(kind)
                              for op in i.ops if isinstance(op, Copy)
                              and id(op.src.base) in biases]
                       for kind in ("copy", "dot_inc", "elementwise_inc")}
        return ([sim.data[p].copy() for p in probes], bias_copies["copy"],
                bias_copies["dot_inc"] + bias_copies["elementwise_inc"])


KWARGS = [
    dict(dtype="float64"),
    dict(dtype="float32", minibatch_size=3),
    dict(dtype="float64", optimize=False),
    dict(dtype="float32", minibatch_size=2, device="cuda-emulator"),
]


def _ids(kwargs):
    return "-".join(str(v) for v in kwargs.values())


@pytest.mark.parametrize("neuron_connection", [False, True])
@pytest.mark.parametrize("kwargs", KWARGS, ids=_ids)
def test_fused_results_equal_unfused_bit_for_bit(kwargs, neuron_connection, monkeypatch):
    """Also with a second increment of an ensemble's input current (a neuron
    connection): that ensemble's copy stays a copy, so no sum changes order."""
    net, probes = network(neuron_connection)
    plain, _, none_fused = run(net, probes, monkeypatch, False, **kwargs)
    fused, copies_left, fused_copies = run(net, probes, monkeypatch, True, **kwargs)
    assert none_fused == []
    assert fused_copies  # bias copies went into products
    assert bool(copies_left) == neuron_connection  # all but the neuron-connected one
    for p, f in zip(plain, fused):
        np.testing.assert_array_equal(f, p)


@pytest.mark.parametrize("options", [dict(neuron_connection=True), dict(neuron_fed=True)],
                         ids=lambda o: next(iter(o)))
def test_fused_results_equal_nengo(options, monkeypatch):
    net, probes = network(**options)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(150)
    fused, _, _ = run(net, probes, monkeypatch, True, dtype="float64")
    for p, f in zip(probes, fused):
        np.testing.assert_allclose(f, ref.data[p], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kwargs", KWARGS, ids=_ids)
def test_neuron_fed_ensemble_fuses_into_its_elementwise_product(kwargs, monkeypatch):
    net, probes = network(neuron_fed=True)
    plain, _, _ = run(net, probes, monkeypatch, False, **kwargs)
    fused, copies_left, fused_copies = run(net, probes, monkeypatch, True, **kwargs)
    assert copies_left == [] and fused_copies
    assert np.ptp(plain[-1], axis=-2).max() > 0, "the neuron-fed ensemble never spikes"
    for p, f in zip(plain, fused):
        np.testing.assert_array_equal(f, p)


# --- a reset and the convolution that alone adds to it: `ConvSet` ------------

def conv_inc(out, first, x, filters=2):
    """A ConvInc of a 4 x 4 single-channel image ``x`` (3 x 3 kernel, valid:
    2 x 2 x ``filters`` outputs) into elements ``first:`` of ``out``."""
    conv = nengo.Convolution(filters, (4, 4, 1), kernel_size=(3, 3))
    W = Signal(np.ones(conv.kernel_shape), name="W")
    return ConvInc(W, x, views.run(out, first, first + conv.size_out), conv)


def conv_groups(ops):
    return fusion.settable_convolutions(ops, operator_dependency_graph(ops), lambda op: True)


def test_a_reset_and_its_convolution_fuse():
    out, x = Signal(np.zeros(12), name="out"), Signal(np.ones(16), name="x")
    reset, conv = Reset(out), conv_inc(out, 2, x)
    assert conv_groups([reset, conv]) == [(reset, [conv])]
    order, dg = fusion.fuse([reset, conv], operator_dependency_graph([reset, conv]),
                            [(reset, [conv])])
    (fused,) = [op for op in order if isinstance(op, fusion.ConvSet)]
    assert fused.parts == [reset, conv] and fused.sets == [conv.Y] and fused.incs == []
    left = sorted((op.dst.elemoffset, op.dst.size) for op in order if type(op) is Reset)
    assert left == [(0, 2), (10, 2)]  # the elements around Y are still reset


def test_a_reset_and_its_convolution_do_not_fuse_when():
    out, x = Signal(np.zeros(12), name="out"), Signal(np.ones(16), name="x")
    reset, conv = Reset(out), conv_inc(out, 0, x)
    other = ElementwiseInc(Signal(np.ones(8)), Signal(np.ones(8)), conv.Y)
    assert conv_groups([reset, conv, other]) == []  # another increment of Y
    assert conv_groups([Reset(out, value=1.0), conv]) == []  # Y does not start at zero
    both = Signal(np.zeros(24), name="both")  # the image in 0:16, Y in 16:24
    reads_reset = conv_inc(both, 16, views.run(both, 0, 16))
    assert conv_groups([Reset(both), reads_reset]) == []  # it would read before the reset


def test_a_merged_reset_keeps_each_layers_dependencies_apart():
    """Nengo merges the resets of two layers' outputs: the reset precedes the
    first layer's reader and the second layer's convolution, which follows
    that reader.  Each `ConvSet` keeps only its own layer's readers (the
    second inheriting the first's would be a cycle)."""
    out, x = Signal(np.zeros(24), name="out"), Signal(np.ones(16), name="x")
    hidden = Signal(np.zeros(16), name="hidden")
    reset = Reset(out)
    conv1 = conv_inc(out, 0, x, filters=4)  # out[0:16]
    reader = Copy(conv1.Y, hidden)
    conv2 = conv_inc(out, 16, hidden)  # out[16:24]
    ops = [reset, conv1, reader, conv2]
    dg = operator_dependency_graph(ops)
    assert reader in dg[reset] and reader in dg[conv1] and conv2 in dg[reader]
    groups = conv_groups(ops)
    assert groups == [(reset, [conv1, conv2])]
    order, new_dg = fusion.fuse(ops, dg, groups)
    set1, set2 = [op for op in order if isinstance(op, fusion.ConvSet)]
    assert new_dg[set1] == {reader} and new_dg[reader] == {set2} and not new_dg.get(set2)
    assert [op for op in order if type(op) is Reset] == []  # nothing left to reset


def conv_network():
    """Two convolution layers (Nengo merges the resets of their outputs with
    the dense product's), as `benchmarks/networks.py` convnet, small."""
    rng = np.random.RandomState(1)
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(nengo.processes.PresentInput(rng.uniform(0, 1, (3, 36)), 0.01))
        conv1 = nengo.Convolution(4, (6, 6, 1), kernel_size=(3, 3))
        layer1 = nengo.Ensemble(conv1.size_out, 1, neuron_type=nengo.LIF(amplitude=0.05))
        nengo.Connection(stim, layer1.neurons, transform=conv1)
        conv2 = nengo.Convolution(3, conv1.output_shape.shape, strides=(2, 2),
                                  channels_last=True)
        layer2 = nengo.Ensemble(conv2.size_out, 1, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(layer1.neurons, layer2.neurons, transform=conv2, synapse=0.005)
        out = nengo.Node(size_in=3)
        nengo.Connection(layer2.neurons, out, transform=rng.uniform(-0.1, 0.1, (3, 3)),
                         synapse=0.005)
        probes = [nengo.Probe(out), nengo.Probe(layer1.neurons), nengo.Probe(layer2.neurons)]
    return net, probes


def run_conv(net, probes, monkeypatch, enabled, **kwargs):
    monkeypatch.setattr(fusion, "ENABLED", enabled)
    with nengo_cuda.Simulator(net, progress_bar=False, **kwargs) as sim:
        sim.run_steps(80)
        sets = [i.scalars["set"] for i in sim.program if i.kind == "conv_inc"]
        return [sim.data[p].copy() for p in probes], sets


@pytest.mark.parametrize("kwargs", KWARGS, ids=_ids)
def test_convolutions_that_set_equal_reset_and_increment_bit_for_bit(kwargs, monkeypatch):
    net, probes = conv_network()
    plain, plain_sets = run_conv(net, probes, monkeypatch, False, **kwargs)
    fused, fused_sets = run_conv(net, probes, monkeypatch, True, **kwargs)
    assert plain_sets == [0, 0] and fused_sets == [1, 1]
    assert np.ptp(fused[1], axis=-2).max() > 0, "layer 1 never spikes"
    for p, f in zip(plain, fused):
        np.testing.assert_array_equal(f, p)


def test_convolutions_that_set_equal_nengo(monkeypatch):
    net, probes = conv_network()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(80)
    fused, _ = run_conv(net, probes, monkeypatch, True, dtype="float64")
    for p, f in zip(probes, fused):
        np.testing.assert_allclose(f, ref.data[p], rtol=1e-9, atol=1e-12)
