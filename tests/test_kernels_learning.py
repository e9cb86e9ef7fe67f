"""Learning-rule kernels (SimPES, SimBCM, SimOja, SimVoja, SimRLS) against Nengo.

Kernel tests lower hand-made operators (odd sizes, strided and transposed
views, several operators merged into one instruction) and compare one step with
each operator's own ``make_step`` on NumPy `SignalDict` s.  Network tests run
whole learning models against `nengo.Simulator`.
"""

import nengo
import numpy as np
import pytest
from nengo.builder.learning_rules import SimBCM, SimOja, SimPES, SimRLS, SimVoja
from nengo.builder.signal import Signal, SignalDict
from nengo.utils.numpy import array_offset

import nengo_cuda
from nengo_cuda.backends.cpu import CpuBackend
from nengo_cuda.layout import SignalLayout
from nengo_cuda.lowering import find_lowering
from nengo_cuda.program import Program

LEARNING_OPS = (SimPES, SimBCM, SimOja, SimVoja, SimRLS)
DT = 0.001


# --- operators on hand-made signals -------------------------------------------


def make_signal(shape, dtype, view):
    """A signal of ``shape``: plain, or a strided/reversed/transposed view of a base."""
    if view is None:
        return Signal(np.zeros(shape, dtype=dtype))
    if len(shape) == 1:
        (n,) = shape
        base = Signal(np.zeros(2 * n + 3, dtype=dtype))
        return base[1 : 2 * n + 1 : 2] if view == "strided" else base[n - 1 :: -1]
    r, c = shape
    if view == "strided":
        return Signal(np.zeros((r + 1, 2 * c), dtype=dtype))[1:, ::2]
    base = Signal(np.zeros((c + 2, r), dtype=dtype))  # transposed
    value = base.initial_value[1 : c + 1].T
    return Signal(value, base=base, offset=array_offset(value) - array_offset(base.initial_value))


def make_op(rule, rows, cols, dtype, views, rng):
    """One operator of ``rule`` with a (rows, cols) delta.

    ``views`` picks the view kind per operand role ("vec", "mat", "delta").
    """
    vec = lambda n: make_signal((n,), dtype, views.get("vec"))  # noqa: E731
    mat = lambda: make_signal((rows, cols), dtype, views.get("mat"))  # noqa: E731
    delta = make_signal((rows, cols), dtype, views.get("delta"))
    lr = rng.uniform(0.1, 2.0)
    if rule is SimPES:
        return SimPES(vec(cols), vec(rows), delta, lr)
    if rule is SimBCM:
        return SimBCM(vec(cols), vec(rows), vec(rows), delta, lr)
    if rule is SimOja:
        return SimOja(vec(cols), vec(rows), mat(), delta, lr, beta=rng.uniform(0.5, 2.0))
    if rule is SimRLS:  # P (cols x cols) is made symmetric by run_both
        return SimRLS(vec(cols), vec(rows), delta, make_signal((cols, cols), dtype, views.get("mat")))
    scale = rng.uniform(0.5, 3.0, size=rows)
    learning = Signal(np.zeros(1, dtype=dtype))
    return SimVoja(vec(cols), vec(rows), mat(), delta, scale, learning, lr)


def run_both(ops, dtype, n_trials, rng, shared=()):
    """Runs ``ops`` one step natively and through ``make_step``; returns both.

    Every base signal is per-trial state (random per trial, delta poisoned
    with NaN) except the bases in ``shared``.  Returns the native and the
    reference value of every base, per trial.
    """
    signals = [s for op in ops for s in op.all_signals]
    written = {s.base for s in signals} - set(shared)
    layout = SignalLayout(signals, written, dtype, n_trials)
    deltas = {op.delta.base for op in ops}
    for base in layout.bases:
        for t in range(n_trials if base in written else 1):
            arr = layout.base_array(base, t)
            arr[...] = np.nan if base in deltas else rng.uniform(-1.5, 1.5, size=base.shape)
    for t in range(n_trials):  # RLS's P: symmetric (Nengo asserts it), well conditioned
        live = SignalDict()
        for base in layout.bases:
            dict.__setitem__(live, base, layout.base_array(base, t))
        for op in ops:
            if isinstance(op, SimRLS):
                P = live[op.inv_gamma]
                P[...] = (P + P.T) / 2 + 3 * np.eye(len(P))

    reference = []
    for t in range(n_trials):
        sd = SignalDict()
        for base in layout.bases:
            dict.__setitem__(sd, base, layout.base_array(base, t).copy())
        for step in [op.make_step(sd, DT, rng) for op in ops]:
            step()
        reference.append({base: sd[base] for base in layout.bases})

    lowering = find_lowering(ops[0])
    assert all(lowering.key(op, layout) == lowering.key(ops[0], layout) for op in ops)
    assert lowering.key(ops[0], layout) is not None
    program = Program(lowering.lower(ops, layout))
    assert sum(len(i.ops) for i in program) == len(ops)
    backend = CpuBackend(program, layout, DT)
    backend.run(1, [], [])
    native = [
        {base: layout.base_array(base, t).copy() for base in layout.bases}
        for t in range(n_trials)
    ]
    backend.close()
    return native, reference


def assert_same(native, reference, dtype, sums=False):
    """Equal to rounding; ``sums``: the kernel adds dot products in another order
    than NumPy's BLAS (RLS's P r), so elements that cancel get an absolute
    tolerance of a few ulps of the O(1) operands."""
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=0)
    if sums and dtype == np.float64:
        tol["atol"] = 1e-14
    for nat, ref in zip(native, reference):
        for base in ref:
            np.testing.assert_allclose(nat[base], ref[base], err_msg=str(base), **tol)


VIEWS = {
    "plain": {},
    "strided": {"vec": "strided", "mat": "strided", "delta": "strided"},
    "transposed": {"vec": "reversed", "mat": "transposed", "delta": "transposed"},
}


@pytest.mark.parametrize("rule", LEARNING_OPS, ids=lambda r: r.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3])
@pytest.mark.parametrize("views", sorted(VIEWS))
def test_rule_kernel_matches_make_step(rule, dtype, n_trials, views, rng, simd):
    # Three merged operators with odd sizes, one of them a single row.
    shapes = [(7, 13), (1, 5), (17, 3)]
    ops = [make_op(rule, r, c, dtype, VIEWS[views], rng) for r, c in shapes]
    native, reference = run_both(ops, dtype, n_trials, rng, shared=[ops[0].reads[0].base])
    assert_same(native, reference, dtype, sums=rule is SimRLS)


@pytest.mark.parametrize("rule", LEARNING_OPS, ids=lambda r: r.__name__)
def test_rule_kernel_empty_blocks(rule, rng):
    # Zero rows (and, except for PES which divides by n_pre, zero columns).
    shapes = [(0, 4), (3, 5)] + ([] if rule in (SimPES, SimRLS) else [(4, 0)])
    ops = [make_op(rule, r, c, np.float64, {}, rng) for r, c in shapes]
    native, reference = run_both(ops, np.float64, 2, rng)
    assert_same(native, reference, np.float64, sums=rule is SimRLS)


def test_unsupported_shapes_fall_back():
    layout_ops = [
        SimPES(Signal(np.zeros(0)), Signal(np.zeros(3)), Signal(np.zeros((3, 0))), 1.0),
        SimBCM(Signal(np.zeros(4)), Signal(np.zeros(3)), Signal(np.zeros(2)),
               Signal(np.zeros((3, 4))), 1.0),
    ]
    signals = [s for op in layout_ops for s in op.all_signals]
    layout = SignalLayout(signals, {s.base for s in signals}, np.float64, 1)
    for op in layout_ops:
        assert find_lowering(op).key(op, layout) is None


def test_lowering_merges_disjoint_views_splits_overlapping(rng):
    # Nengo's optimizer makes deltas views of one merged base: disjoint views
    # share an instruction; overlapping ones (never built by Nengo) do not.
    base = Signal(np.zeros((9, 4)))
    pres = [Signal(np.zeros(4)) for _ in range(3)]
    errors = [Signal(np.zeros(3)) for _ in range(3)]
    deltas = [base[0:3], base[3:6], base[5:8]]  # the last overlaps the second
    ops = [SimPES(p, e, d, 1.0) for p, e, d in zip(pres, errors, deltas)]
    signals = [s for op in ops for s in op.all_signals]
    layout = SignalLayout(signals, {base}, np.float64, 1)
    instrs = find_lowering(ops[0]).lower(ops, layout)
    assert [[ops.index(op) for op in i.ops] for i in instrs] == [[0, 1], [2]]


def test_bad_descriptors_raise():
    from kernel_harness import RawProgram

    p = RawProgram(np.float64, 4, 8)
    ok = dict(rows=[2], cols=[2], delta=[4], delta_rs=[2], delta_cs=[1], pre=[0], pre_s=[1],
              error=[2], error_s=[1])
    p.add("learning_pes", ints=ok, floats={"learning_rate": [1.0]})
    with pytest.raises(IndexError, match="outside buffer"):
        p.add("learning_pes", ints={**ok, "delta": [10]}, floats={"learning_rate": [1.0]})
    with pytest.raises(IndexError, match="spans"):
        p.add("learning_pes", ints={**ok, "pre": [3]}, floats={"learning_rate": [1.0]})
    with pytest.raises(ValueError, match="length"):
        p.add("learning_pes", ints={**ok, "pre_s": [1, 1]}, floats={"learning_rate": [1.0]})


# --- whole networks against nengo.Simulator -----------------------------------


def _stim(t):
    return [np.sin(7 * t), np.cos(5 * t)]


def pes_net(target):
    """PES learning a communication channel, with the error fed back.

    target: "decoders" (decoded connection), "solver" (weight matrix from a
    weight solver) or "neurons" (neuron -> neuron connection with a transform).
    """
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(_stim)
        pre = nengo.Ensemble(53, 2)
        post = nengo.Ensemble(41, 2)
        err = nengo.Node(size_in=2)
        nengo.Connection(stim, pre)
        rule = nengo.PES(learning_rate=3e-4, pre_synapse=None if target == "neurons" else 0.005)
        if target == "decoders":
            conn = nengo.Connection(pre, post, function=lambda x: [0, 0],
                                    learning_rule_type=rule)
        elif target == "solver":
            conn = nengo.Connection(pre, post, solver=nengo.solvers.LstsqL2(weights=True),
                                    learning_rule_type=rule)
        else:
            w = np.random.RandomState(1).uniform(-1e-3, 1e-3, (41, 53))
            conn = nengo.Connection(pre.neurons, post.neurons, transform=w,
                                    learning_rule_type=rule)
        nengo.Connection(post, err)
        nengo.Connection(stim, err, transform=-1)
        nengo.Connection(err, conn.learning_rule)
        probes = [nengo.Probe(post, synapse=0.01), nengo.Probe(conn, "weights")]
    return net, probes, {SimPES: 1}


def weights_rule_net(rule):
    with nengo.Network(seed=5) as net:
        stim = nengo.Node(_stim)
        pre = nengo.Ensemble(31, 2)
        post = nengo.Ensemble(23, 2)
        nengo.Connection(stim, pre)
        conn = nengo.Connection(pre, post, solver=nengo.solvers.LstsqL2(weights=True),
                                learning_rule_type=rule)
        probes = [nengo.Probe(post, synapse=0.01), nengo.Probe(conn, "weights")]
    return net, probes


def bcm_net():
    return (*weights_rule_net(nengo.BCM(learning_rate=1e-8)), {SimBCM: 1})


def oja_net():
    return (*weights_rule_net(nengo.Oja(learning_rate=1e-7, beta=0.5)), {SimOja: 1})


def voja_net():
    with nengo.Network(seed=6) as net:
        stim = nengo.Node(_stim)
        gate = nengo.Node(lambda t: float(t < 0.3))  # learning on, then off
        pre = nengo.Ensemble(19, 2)
        post = nengo.Ensemble(27, 2, intercepts=nengo.dists.Uniform(0.2, 0.6))
        nengo.Connection(stim, pre)
        conn = nengo.Connection(pre, post, learning_rule_type=nengo.Voja(learning_rate=5e-2))
        nengo.Connection(gate, conn.learning_rule, synapse=None)
        # a second Voja rule, on a connection from a Node
        post2 = nengo.Ensemble(15, 2)
        conn2 = nengo.Connection(stim, post2, learning_rule_type=nengo.Voja(learning_rate=1e-2))
        probes = [
            nengo.Probe(post, synapse=0.01),
            nengo.Probe(post2, synapse=0.01),
            nengo.Probe(conn.learning_rule, "scaled_encoders"),
            nengo.Probe(conn2.learning_rule, "scaled_encoders"),
        ]
    return net, probes, {SimVoja: 2}


def pes_three_net():
    """Three PES rules in one stage: one instruction with three blocks."""
    with nengo.Network(seed=7) as net:
        stim = nengo.Node(_stim)
        probes = []
        for n_pre, n_post in [(23, 17), (31, 9), (13, 21)]:
            pre, post = nengo.Ensemble(n_pre, 2), nengo.Ensemble(n_post, 2)
            err = nengo.Node(size_in=2)
            nengo.Connection(stim, pre)
            conn = nengo.Connection(pre, post, function=lambda x: [0, 0],
                                    learning_rule_type=nengo.PES(learning_rate=5e-4))
            nengo.Connection(post, err)
            nengo.Connection(stim, err, transform=-1)
            nengo.Connection(err, conn.learning_rule)
            probes += [nengo.Probe(post, synapse=0.01), nengo.Probe(conn, "weights")]
    return net, probes, {SimPES: 3}


def rls_net():
    """RLS learning a function (x -> x^2) online from a zero start."""
    with nengo.Network(seed=8) as net:
        stim = nengo.Node(_stim)
        pre = nengo.Ensemble(37, 2)
        post = nengo.Node(size_in=1)
        err = nengo.Node(size_in=1)
        nengo.Connection(stim, pre)
        conn = nengo.Connection(pre, post, function=lambda x: 0,
                                learning_rule_type=nengo.RLS(learning_rate=0.1, pre_synapse=0.01))
        nengo.Connection(post, err)
        nengo.Connection(stim[0], err, transform=-1, function=np.square)
        nengo.Connection(err, conn.learning_rule)
        probes = [nengo.Probe(post, synapse=0.01), nengo.Probe(conn, "weights"),
                  nengo.Probe(conn.learning_rule, "inv_gamma")]
    return net, probes, {SimRLS: 1}


NETWORKS = {
    "rls": rls_net,
    "pes_decoders": lambda: pes_net("decoders"),
    "pes_weights_solver": lambda: pes_net("solver"),
    "pes_neurons": lambda: pes_net("neurons"),
    "pes_three": pes_three_net,
    "bcm": bcm_net,
    "oja": oja_net,
    "voja": voja_net,
}


def assert_native_learning(sim, expected):
    """The learning ops ran in kernels: none in a callback, counts as expected."""
    for instr in sim.program:
        if instr.is_callback:
            assert not any(isinstance(op, LEARNING_OPS) for op in instr.ops), instr
    summary = sim.program.summary()
    assert summary.get("callback", (0, 0))[1] < sum(summary[k][1] for k in summary)
    for op_type, n_ops in expected.items():
        kind = {SimPES: "learning_pes", SimBCM: "learning_bcm", SimOja: "learning_oja",
                SimVoja: "learning_voja", SimRLS: "learning_rls"}[op_type]
        assert summary[kind][1] == n_ops


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_matches_nengo(name):
    net, probes, expected = NETWORKS[name]()
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run(0.5)
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.run(0.5)
        assert_native_learning(sim, expected)
        if name == "pes_three":
            assert sim.program.summary()["learning_pes"] == (1, 3)
    for p in probes:
        scale = np.abs(ref.data[p]).max()
        change = np.abs(ref.data[p][-1] - ref.data[p][0]).max()
        assert change > 1e-3 * scale, f"{p} barely changes: the test would prove little"
        np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-9, atol=1e-9 * scale,
                                   err_msg=str(p))


def test_minibatch_trials_learn_independently_and_identically():
    net, probes, expected = pes_net("decoders")
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as single:
        single.run(0.5)
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64",
                              minibatch_size=2) as batched:
        batched.run(0.5)
        assert_native_learning(batched, expected)
    for p in probes:
        assert batched.data[p].shape[0] == 2
        for t in range(2):
            np.testing.assert_array_equal(batched.data[p][t], single.data[p])


def test_minibatch_trials_learn_from_their_own_inputs():
    net, probes, expected = pes_net("decoders")
    stim = net.nodes[0]
    t = np.arange(1, 301)[:, None] * DT
    inputs = [np.hstack([np.sin(7 * t), np.cos(5 * t)]), np.hstack([0.5 * t, -np.sin(3 * t)])]
    singles = []
    for x in inputs:
        with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
            sim.run_steps(len(t), data={stim: x[None]})
            singles.append({p: sim.data[p] for p in probes})
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64",
                              minibatch_size=2) as batched:
        batched.run_steps(len(t), data={stim: np.stack(inputs)})
    for p in probes:
        assert not np.allclose(batched.data[p][0], batched.data[p][1])
        for trial in range(2):
            np.testing.assert_array_equal(batched.data[p][trial], singles[trial][p])
