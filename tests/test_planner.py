"""Planner and layout: schedule, merging, shared/state placement, addresses."""

import nengo
import numpy as np
import pytest
from nengo.builder.neurons import SimNeurons
from nengo.builder.signal import Signal

import nengo_cuda
from nengo_cuda.layout import SignalLayout
from nengo_cuda.lowering.common import color_disjoint
from nengo_cuda.planner import schedule


def chain(n_ens=5, n_neurons=30, dims=2):
    with nengo.Network(seed=0) as net:
        u = nengo.Node(np.ones(dims) * 0.3)
        ens = [nengo.Ensemble(n_neurons, dims) for _ in range(n_ens)]
        nengo.Connection(u, ens[0])
        for a, b in zip(ens, ens[1:]):
            nengo.Connection(a, b)
        nengo.Probe(ens[-1], synapse=0.01)
    return net


@pytest.mark.parametrize("optimize", [True, False])
def test_schedule_respects_dependencies(optimize):
    with nengo_cuda.Simulator(chain(), optimize=optimize, progress_bar=False) as sim:
        keys = {op: type(op).__name__ for op in sim.step_order}
        groups = schedule(sim.dg, sim.step_order, keys)
        group_of = {op: i for i, (_, ops) in enumerate(groups) for op in ops}
        assert sorted(map(id, group_of)) == sorted(map(id, sim.step_order))  # each op once
        for key, ops in groups:
            assert all(keys[op] == key for op in ops)
        for op, succs in sim.dg.items():
            for succ in succs:
                assert group_of[succ] > group_of[op]


def test_a_kind_waits_while_its_later_operators_could_still_join():
    """Two populations: A ready at once, B after a copy whose kind has a later
    operator that depends on it.  Taking A first (the larger share, first in
    order) would leave B a group of its own; the copy's group is final (its
    later copy waits on it anyway), so it goes first and A and B share one."""
    dg = {"copy1": {"copy2", "B"}, "A": set(), "copy2": set(), "B": set()}
    keys = {"A": "lif", "B": "lif", "copy1": "copy", "copy2": "copy"}
    groups = schedule(dg, ["A", "copy1", "copy2", "B"], keys)
    assert groups == [("copy", ["copy1"]), ("lif", ["A", "B"]), ("copy", ["copy2"])]


def test_populations_at_different_depths_share_a_group():
    """Ensembles fed through passthrough nodes of different depths, in the same
    step, still run as one LIF instruction (earliest-stage grouping gave two),
    and the outputs are Nengo's."""
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(np.sin)
        hop1 = nengo.Node(size_in=1)
        hop2 = nengo.Node(size_in=1)
        nengo.Connection(stim, hop1, synapse=None)
        nengo.Connection(hop1, hop2, synapse=None)
        deep, shallow = nengo.Ensemble(20, 1), nengo.Ensemble(20, 1)
        nengo.Connection(hop2, deep, synapse=None)
        nengo.Connection(stim, shallow, synapse=None)
        probes = [nengo.Probe(e, synapse=0.01) for e in (deep, shallow)]
    with nengo.Simulator(net, optimize=False, progress_bar=False) as ref:
        ref.run_steps(100)
    with nengo_cuda.Simulator(net, optimize=False, dtype="float64", progress_bar=False) as sim:
        assert sim.program.summary()["neurons_lif"] == (1, 2)
        sim.run_steps(100)
    for p in probes:
        np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-9, atol=1e-12)


def test_inputs_come_first():
    """The time update, then the tables of input processes, before the step's
    resets and copies (on the GPU they then share a launch with the previous
    step's probes); the outputs stay Nengo's."""
    with nengo.Network(seed=1) as net:
        u = nengo.Node(nengo.processes.WhiteSignal(1, high=5), size_out=2)
        a = nengo.Ensemble(40, 2)
        b = nengo.Ensemble(30, 2)
        nengo.Connection(u, a)
        nengo.Connection(a, b)
        p = nengo.Probe(b, synapse=0.01)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(50)
    with nengo_cuda.Simulator(net, dtype="float64", progress_bar=False) as sim:
        kinds = [instr.kind for instr in sim.program]
        assert kinds[:2] == ["time_update", "process_table"], kinds
        assert "reset" in kinds[2:]
        sim.run_steps(50)
    np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("optimize", [True, False])
def test_populations_merge_into_one_group(optimize):
    """All LIF populations of a synapse-separated chain run as one instruction.

    With ``optimize`` Nengo's optimizer already merges them into one operator;
    without it our planner merges the six operators itself.
    """
    with nengo_cuda.Simulator(chain(n_ens=6), optimize=optimize, progress_bar=False) as sim:
        summary = sim.program.summary()
        assert summary["neurons_lif"][0] == 1
        if not optimize:
            assert summary["neurons_lif"][1] == 6
        if not optimize:
            n_instr, n_ops = summary["dot_inc"]
            assert n_instr < n_ops  # encoder/decoder products merged
        neuron_instrs = [i for i in sim.program if any(isinstance(o, SimNeurons) for o in i.ops)]
        assert len(neuron_instrs) == 1 and neuron_instrs[0].ints["J"].size == 6 * 30


def test_layout_shared_and_state():
    with nengo_cuda.Simulator(chain(), minibatch_size=3, progress_bar=False) as sim:
        layout = sim.layout
        ens = sim.model.toplevel.ensembles[0]
        enc = sim.model.sig[ens]["encoders"]
        voltage = sim.model.sig[ens.neurons]["voltage"]
        assert layout.is_shared(enc)  # weights: one copy for all trials
        assert not layout.is_shared(voltage)  # state: one copy per trial
        assert layout.fbuf.size == layout.f_shared + 3 * layout.f_state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_view_addresses_match_numpy_views(dtype, rng):
    base = Signal(rng.randn(6, 5), name="base")
    indices = [(slice(1, 4), slice(None, None, 2)), (slice(None), 3), (slice(4, 5),), (slice(2, 5),)]
    views = [base[index] for index in indices]
    layout = SignalLayout([base] + views, written={base}, dtype=dtype, n_trials=2)
    for trial in range(2):
        layout.base_array(base, trial)[...] = rng.randn(6, 5)
        signals = layout.signal_dicts[trial]
        for view, index in zip(views, indices):
            expected = np.asarray(signals[base])[index]
            np.testing.assert_array_equal(signals[view], expected)
            mem = layout.addresses(view) + trial * layout.f_state  # this trial's state
            np.testing.assert_array_equal(layout.fbuf[mem], expected)


def test_color_disjoint_separates_conflicts():
    items = [np.array([0, 1]), np.array([2, 3]), np.array([1, 5]), np.array([5])]
    groups = color_disjoint(items, lambda a: a)
    assert len(groups) == 2
    for g in groups:
        flat = np.concatenate(g)
        assert len(np.unique(flat)) == len(flat)
