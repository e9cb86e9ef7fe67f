"""nengo_cuda.deferral: a learning rule's change computed where Nengo's copy
adds it to the weights, from the vectors the rule saved (no delta matrix).

The networks of test_kernels_learning.py run against nengo.Simulator with
deferral on (the default); here: that deferral happens where it should, not
where it must not, and changes no bit of the results.
"""

import nengo
import numpy as np
import pytest
from nengo.exceptions import SimulationError
from nengo.builder.learning_rules import SimBCM, SimPES
from nengo.builder.operator import Copy
from nengo.builder.signal import Signal
from nengo.utils.simulator import operator_dependency_graph

import nengo_cuda
from nengo_cuda import deferral
from test_cuda_networks import compare
from test_kernels_learning import bcm_net, oja_net, pes_net, pes_three_net, voja_net

NETWORKS = {
    "pes_decoders": lambda: pes_net("decoders"),
    "pes_neurons": lambda: pes_net("neurons"),
    "pes_three": pes_three_net,
    "bcm": bcm_net,
    "oja": oja_net,
    "voja": voja_net,
}


def deferred_kinds(sim):
    """{kernel kind: operators} of the instructions that add a deferred change."""
    kinds = {}
    for instr in sim.program:
        if instr.scalars.get("inc") and instr.kind.startswith("learning_"):
            kinds[instr.kind] = kinds.get(instr.kind, 0) + len(instr.ops)
    return kinds


def run(net, probes, enabled, steps=300, **kwargs):
    old = deferral.ENABLED
    deferral.ENABLED = enabled
    try:
        with nengo_cuda.Simulator(net, progress_bar=False, **kwargs) as sim:
            sim.run_steps(steps)
            return [np.array(sim.data[p]) for p in probes], deferred_kinds(sim)
    finally:
        deferral.ENABLED = old


@pytest.mark.parametrize("name", sorted(NETWORKS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("minibatch_size", [None, 2])
def test_deferred_rules_give_the_same_bits(name, dtype, minibatch_size):
    net, probes, expected = NETWORKS[name]()
    kwargs = dict(dtype=dtype, minibatch_size=minibatch_size)
    plain, none = run(net, probes, False, **kwargs)
    deferred, kinds = run(net, probes, True, **kwargs)
    assert none == {}
    kind = {SimPES: "learning_pes", SimBCM: "learning_bcm"}
    # (Oja and Voja are never deferred: see test_oja_and_voja_after_a_run_that_is_not_stateful)
    assert kinds == {kind[op]: n for op, n in expected.items() if op in deferral.SAVED}
    for p, a, b in zip(probes, deferred, plain):
        assert np.ptp(b, axis=-2).max() > 0, f"{p} does not change: the test proves little"
        np.testing.assert_array_equal(a, b, err_msg=str(p))


def two_rules_net(probe_delta=False, dimensions=2):
    """PES (on decoders) and BCM + Oja on one weight matrix."""
    with nengo.Network(seed=11) as net:
        stim = nengo.Node(lambda t: [np.sin(9 * t), np.cos(4 * t)][:dimensions])
        pre = nengo.Ensemble(29, dimensions)
        post = nengo.Ensemble(21, dimensions)
        nengo.Connection(stim, pre)
        pes = nengo.Connection(pre, post, learning_rule_type=nengo.PES(3e-4))
        nengo.Connection(post, pes.learning_rule)
        both = nengo.Connection(pre.neurons, post.neurons,
                                transform=np.full((21, 29), 1e-4),
                                learning_rule_type=[nengo.BCM(1e-9), nengo.Oja(1e-8)])
        probes = [nengo.Probe(post, synapse=0.01), nengo.Probe(pes, "weights"),
                  nengo.Probe(both, "weights")]
        if probe_delta:
            probes.append(nengo.Probe(pes.learning_rule, "delta"))
    return net, probes


def test_pes_is_deferred_whichever_rules_share_its_delta():
    """Nengo's optimizer merges PES's delta with Oja's or BCM's, differently
    from build to build: PES is deferred in every build (it was not beside
    Oja: state files then loaded in some builds of one network only)."""
    for _ in range(6):
        net, _ = two_rules_net()
        with nengo_cuda.Simulator(net, progress_bar=False) as sim:
            assert deferred_kinds(sim) == {"learning_pes": 1, "learning_bcm": 1}


@pytest.mark.parametrize("case", ["two rules on one matrix", "delta probed", "one dimension"])
def test_deferral_only_where_nengo_would_not_see_it(case):
    # Oja reads the weights that BCM also changes: deferred, it would read them
    # after BCM's change; a probed delta must hold Nengo's delta; a 1-D PES
    # delta has no room for the vectors (1 x n < n + 1).
    net, probes = two_rules_net(probe_delta=case == "delta probed",
                                dimensions=1 if case == "one dimension" else 2)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(300)
    data, kinds = run(net, probes, True, dtype="float64")
    assert "learning_oja" not in kinds
    assert ("learning_pes" in kinds) == (case == "two rules on one matrix")
    if case != "delta probed":  # (Nengo may merge the deltas of all rules into one base)
        assert kinds["learning_bcm"] == 1
    for p, d in zip(probes, data):
        assert np.abs(ref.data[p]).max() > 0
        np.testing.assert_allclose(d, ref.data[p], rtol=1e-9, atol=1e-12, err_msg=str(p))


def test_reset_restarts_deferred_learning():
    net, probes, _ = pes_net("decoders")
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        assert deferred_kinds(sim) == {"learning_pes": 1}
        sim.run_steps(200)
        first = [np.array(sim.data[p]) for p in probes]
        sim.reset()
        sim.run_steps(200)
        for p, a in zip(probes, first):
            np.testing.assert_array_equal(sim.data[p], a)


def learning_net(rule, probe_delta=False):
    """Oja on neuron-to-neuron weights, Voja on encoders or PES on decoders:
    the rule's connection and a probe of what it learns."""
    with nengo.Network(seed=0) as net:
        inp = nengo.Node(lambda t: [np.sin(20 * t), np.cos(13 * t)])
        a = nengo.Ensemble(6, 2, neuron_type=nengo.RectifiedLinear())
        b = nengo.Ensemble(5, 2, neuron_type=nengo.RectifiedLinear())
        nengo.Connection(inp, a)
        if rule == "Oja":
            c = nengo.Connection(a.neurons, b.neurons, transform=np.full((5, 6), 1e-3),
                                 learning_rule_type=nengo.Oja(learning_rate=1e-4))
            target = nengo.Probe(c, "weights")
        elif rule == "Voja":
            c = nengo.Connection(inp, b, learning_rule_type=nengo.Voja(learning_rate=1e-1))
            target = nengo.Probe(b, "scaled_encoders")
        else:
            c = nengo.Connection(a, b, learning_rule_type=nengo.PES(1e-3))
            nengo.Connection(inp, c.learning_rule)
            target = nengo.Probe(c, "weights")
        if probe_delta:
            nengo.Probe(c.learning_rule, "delta")
    return net, c, target


@pytest.mark.parametrize("rule", ["Oja", "Voja", "PES"])
def test_learning_after_a_run_that_is_not_stateful(rule):
    """A run that is not stateful restores the state and keeps what the rules
    learned (NengoDL's): the next step adds the delta the rule made before
    that run, from the weights then.  Oja and Voja, deferred, computed it from
    the learned weights (Voja's encoders 0.1 off); they are not deferred.
    The oracle: nengo.Simulator, its signals saved and restored so."""
    net, c, target = learning_net(rule)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(10)
        keep = ref.model.sig[c.post_obj]["encoders"] if rule == "Voja" else \
            ref.model.sig[c]["weights"]
        saved = [(k, ref.signals[k].copy()) for k in ref.signals
                 if k is not keep and ref.signals[k].flags.writeable]
        ref.run_steps(5)  # (as stateful=False)
        learned = ref.signals[keep].copy()
        for k, v in saved:
            ref.signals[k][...] = v
        ref.signals[keep][...] = learned
        ref._probe_step_time()
        ref.run_steps(2)
        expected = np.array(ref.data[target])
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        assert deferred_kinds(sim) == ({"learning_pes": 1} if rule == "PES" else {})
        sim.run_steps(10)
        sim.run_steps(5, stateful=False)
        sim.run_steps(2)
        assert np.ptp(expected[-3:], axis=0).max() > 0
        np.testing.assert_allclose(sim.data[target], expected, rtol=1e-12, atol=1e-15)


def test_saved_state_of_a_deferred_rule_loads_only_where_it_is_deferred(tmp_path):
    """A deferred rule's delta holds the vectors it reads (its change made a
    step later): a build that probes the delta refuses such a state file, and
    the reverse (it loaded them as Nengo's delta: weights went to 1e22)."""
    path = str(tmp_path / "state")
    for saved, loaded in ((False, True), (True, False)):
        with nengo_cuda.Simulator(learning_net("PES", saved)[0], progress_bar=False) as sim:
            sim.run_steps(10)
            sim.save_params(path, include_state=True)
        with nengo_cuda.Simulator(learning_net("PES", loaded)[0], progress_bar=False) as sim:
            with pytest.raises(SimulationError, match="holds a learning rule's delta in another "
                                                      "form"):
                sim.load_params(path, include_state=True)
            sim.load_params(path)  # (its parameters load)
    net, _, target = learning_net("PES")
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(10)
        sim.save_params(path, include_state=True)
        sim.run_steps(5)
        expected = np.array(sim.data[target][10:])
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.load_params(path, include_state=True)
        sim.run_steps(5)
        np.testing.assert_array_equal(sim.data[target], expected)


def test_cuda_emulator_runs_deferred_rules_as_the_cpu():
    net, probes = two_rules_net()
    net2, probes2, _ = voja_net()
    net.networks.append(net2)
    diff, sdiff, nan = compare(net, probes + probes2, "cuda-emulator", dtype="float64",
                               minibatch_size=2)
    assert not nan
    assert diff < 1e-9 and sdiff < 1e-9, (diff, sdiff)


# --- the rewrite on hand-made operators ---------------------------------------


def hand_made(n_pre=5, dims=(3, 2)):
    """Two PES rules whose deltas are rows of one base, one copy adding both."""
    base = Signal(np.zeros((sum(dims), n_pre)), name="delta")
    weights = Signal(np.zeros((sum(dims), n_pre)), name="weights")
    pre = Signal(np.zeros(n_pre), name="pre")
    rules, start = [], 0
    for d in dims:
        rules.append(SimPES(pre, Signal(np.zeros(d), name="error"), base[start:start + d], 1.0))
        start += d
    return [Copy(base, weights, inc=True)] + rules


def test_rewrite_saves_at_the_rule_and_adds_at_the_copy():
    ops = hand_made()
    copy, rules = ops[0], ops[1:]
    order, dg = deferral.defer(ops, operator_dependency_graph(ops), lambda op: True)
    applies = [op for op in order if isinstance(op, deferral.DeferredDelta)]
    saves = [op for op in order if type(op) is Copy]
    assert order[:2] == applies and len(saves) == 4  # pre and error, per rule
    for apply, rule in zip(applies, rules):
        assert apply.rule.delta.base is copy.dst.base and apply.rule.delta.shape == rule.delta.shape
        assert {s.base for s in apply.reads} == {copy.src.base}  # the saved vectors only
        assert all(s in dg[apply] for s in saves)  # the change is added before new saves
    # pre, then the error, in each rule's delta (rows 0-2 and 3-4: elements 0, 15)
    saved = sorted((s.dst.elemoffset, s.dst.size, id(s.src)) for s in saves)
    pre, (e1, e2) = rules[0].pre_filtered, (r.error for r in rules)
    assert saved == [(0, 5, id(pre)), (5, 3, id(e1)), (15, 5, id(pre)), (20, 2, id(e2))]


def test_rewrite_keeps_probed_and_unlowerable_rules():
    ops = hand_made()
    dg = operator_dependency_graph(ops)
    assert deferral.defer(ops, dg, lambda op: True, keep=[ops[0].src.base]) == (ops, dg)
    order, _ = deferral.defer(ops, dg, lambda op: op is not ops[2])  # the first rule only
    assert [type(op).__name__ for op in order].count("DeferredDelta") == 1
    leftover = [op for op in order if type(op) is Copy and op.inc]
    assert len(leftover) == 1 and leftover[0].src.shape == (2, 5)  # the other rule's rows
    assert leftover[0].src.elemoffset == 15 and leftover[0].dst.elemoffset == 15
