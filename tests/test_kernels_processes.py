"""SimProcess kernels (linear filters, Triangle synapses, process tables) against Nengo.

Kernel tests lower a hand-made SimProcess with our lowering and compare, step
by step, with Nengo's own ``SimProcess.make_step`` on plain NumPy signals of the
same dtype.  Network tests compare whole simulations with `nengo.Simulator`.
"""

import contextlib

import numpy as np
import pytest
import nengo
from nengo.builder.processes import SimProcess
from nengo.builder.signal import Signal, SignalDict
from nengo.dists import Choice, Exponential, Gaussian, Uniform
from nengo.processes import Piecewise, PresentInput, WhiteNoise, WhiteSignal
from nengo.synapses import LinearFilter, Triangle

import nengo_cuda
from nengo_cuda.backends.cpu import CpuBackend
from nengo_cuda.layout import SignalLayout
from nengo_cuda.lowering.process_tables import (
    ProcessTables,
    column_for,
    has_column,
    presented_rows,
    timed_outputs,
    white_noise_samples,
    white_signal_period,
)
from nengo_cuda.lowering.processes import FILTER_FORMS, SimProcessLowering
from nengo_cuda.program import Program
from nengo_cuda.simulator import process_seed
from nengo_cuda.tables import TableLoader

from kernel_harness import RawProgram

DT = 0.001

# (synapse, Nengo step class it must use for a signal of size > 1)
FILTERS = {
    "lowpass": (nengo.Lowpass(0.005), LinearFilter.OneX),
    "lowpass0": (nengo.Lowpass(0), LinearFilter.NoX),
    "gain": (LinearFilter([2.5], [1], analog=False), LinearFilter.NoX),
    "discrete1": (LinearFilter([0.1], [1, -0.9], analog=False), LinearFilter.OneX),
    "alpha": (nengo.Alpha(0.003), LinearFilter.NoD),
    "general_nod": (LinearFilter([1], [0.001, 0.05, 1]), LinearFilter.NoD),
    "passthrough1": (LinearFilter([0.5, 1], [0.01, 1]), LinearFilter.General),
    "passthrough2": (LinearFilter([1, 2, 3], [0.001, 0.05, 1]), LinearFilter.General),
}


class ProcessBench:
    """One SimProcess lowered onto a native program, next to Nengo's own step.

    ``shape`` is the filtered signal's shape; input and output are strided
    views into larger signals, so that view addressing is exercised too.
    """

    def __init__(self, process, shape, mode, dtype, n_trials, with_input=True, seed=0,
                 exact_time=False):
        rng = np.random.RandomState(seed)
        m = int(np.prod(shape))
        self.dtype, self.n_trials, self.shape = np.dtype(dtype), n_trials, shape
        self.t = Signal(np.zeros(1, dtype=dtype), name="t")
        base_in = Signal(np.zeros(2 * m + 1, dtype=dtype), name="in")
        self.input = base_in[1::2].reshape(shape) if with_input else None
        base_out = Signal(rng.randn(m + 3).astype(dtype), name="out")
        self.output = base_out[3:].reshape(shape)
        state = process.make_state(
            shape if with_input else (0,), shape, DT, dtype=dtype
        )
        state = {k: Signal(v.astype(dtype), name=k) for k, v in state.items()}
        self.op = SimProcess(process, self.input, self.output, self.t, mode=mode, state=state)
        written = {base_out, self.t.base} | {s.base for s in state.values()}
        if with_input:
            written.add(base_in)  # another op writes it: one copy per trial
        self.layout = SignalLayout(self.op.all_signals, written, dtype, n_trials, dt=DT)
        key = SimProcessLowering.key(self.op, self.layout)
        assert key is not None, "not lowered natively"
        self.program = Program(SimProcessLowering.lower([self.op], self.layout))
        self.backend = CpuBackend(self.program, self.layout, DT)
        self.tables = TableLoader(self.program, self.backend)

        # Nengo's reference: the same op on plain NumPy signals, one set per trial
        self.ref = [SignalDict() for _ in range(n_trials)]
        for sigs in self.ref:
            for sig in self.op.all_signals:
                if sig.base not in sigs:
                    sigs.init(sig.base)
            if exact_time:  # the float64 time our simulator gives processes in any dtype
                dict.__setitem__(sigs, self.t, np.zeros(1))
        seeds = rng.randint(2**31, size=n_trials)
        self.steps = [
            self.op.make_step(sigs, DT, np.random.RandomState(s))
            for sigs, s in zip(self.ref, seeds)
        ]
        self.tables.reset({(self.op, t): process_seed(self.op.process, np.random.RandomState(s))
                           for t, s in enumerate(seeds)}, n_trials)

    def ours(self, sig, trial):
        return self.layout.signal_dicts[trial][sig]

    def step(self, n_step, u=None):
        """Runs step ``n_step`` (1-based) in both; ``u``: per-trial input."""
        for trial in range(self.n_trials):
            for sigs in (self.ref[trial], self.layout.signal_dicts[trial]):
                sigs[self.t][...] = n_step * DT
                if u is not None:
                    sigs[self.input][...] = u[trial]
        self.tables.before_run(1, n_step - 1)
        self.backend.run(1, [], [])
        self.tables.after_run(1)
        for step in self.steps:
            step()

    def check(self, exact, rtol=0.0):
        for trial in range(self.n_trials):
            sigs = [self.output] + list(self.op.state.values())
            for sig in sigs:
                ours, ref = self.ours(sig, trial), self.ref[trial][sig]
                assert ours.dtype == ref.dtype
                if exact:
                    np.testing.assert_array_equal(ours, ref)
                else:
                    # sums in another order: an element's rounding error scales
                    # with the terms summed (the signal's size), not with the
                    # element (one near zero after cancellation: 1e-13 of 2e3)
                    scale = max(1.0, float(np.abs(ref).max()))
                    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("name", sorted(FILTERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3])
@pytest.mark.parametrize("mode", ["set", "inc", "update"])
@pytest.mark.parametrize("shape", [(1,), (7,), (2, 3)])
def test_linear_filter_steps(name, dtype, n_trials, mode, shape, rng, simd):
    synapse, step_cls = FILTERS[name]
    if step_cls is LinearFilter.General and mode == "inc":
        # Nengo itself cannot increment with General's (1,) + shape output
        X = Signal(synapse.make_state(shape, shape, DT)["X"])
        op = SimProcess(synapse, Signal(np.zeros(shape)), Signal(np.zeros(shape)),
                        Signal(np.zeros(1)), mode=mode, state={"X": X})
        layout = SignalLayout(op.all_signals, {op.output.base}, dtype, n_trials, dt=DT)
        assert SimProcessLowering.key(op, layout) is None
        return
    bench = ProcessBench(synapse, shape, mode, dtype, n_trials, seed=rng.randint(1000))
    # the form Nengo picks (size-1 one-state filters use OneXScalar)
    x = np.zeros(bench.op.state["X"].shape)
    form = type(synapse.make_step(shape, shape, DT, None, {"X": x}))
    assert form is (LinearFilter.OneXScalar if step_cls is LinearFilter.OneX and
                    np.prod(shape) == 1 else step_cls)
    # one-state forms repeat NumPy's arithmetic exactly; state space sums in another order
    exact = FILTER_FORMS[form][0] == "lti_elementwise"
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    for n in range(1, 40):
        bench.step(n, rng.randn(n_trials, *shape) * 2)
        bench.check(exact, rtol)


def test_linear_filter_nonzero_initial_state(rng):
    # y0 != 0 gives X a non-zero initial value that must be used
    for synapse in (nengo.Lowpass(0.01), nengo.Alpha(0.005)):
        bench = ProcessBench(synapse, (5,), "update", np.float64, 2)
        for trial in range(2):
            for sigs in (bench.ref[trial], bench.layout.signal_dicts[trial]):
                sigs[bench.op.state["X"]][...] = 0.3 + trial
        for n in range(1, 10):
            bench.step(n, rng.randn(2, 5))
            bench.check(exact=False, rtol=1e-13)


# Triangle(t) at DT: t / DT + 1 taps.  1 tap (t = 0), 2, 11, 129 (the first
# that NumPy's pairwise sum splits, for size-1 signals) and 301.
TRIANGLE_TAPS = {"t0": 0.0, "t1ms": 0.001, "t10ms": 0.01, "t128ms": 0.128, "t300ms": 0.3}


@pytest.mark.parametrize("t", sorted(TRIANGLE_TAPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3])
@pytest.mark.parametrize("mode", ["set", "inc", "update"])
@pytest.mark.parametrize("shape", [(1,), (7,), (2, 3)])
def test_triangle_steps(t, dtype, n_trials, mode, shape, rng):
    """Bit for bit Nengo's step: the sum of taps in NumPy's order (pairwise for
    size-1 signals, row by row otherwise), float64 coefficients in float32."""
    bench = ProcessBench(Triangle(TRIANGLE_TAPS[t]), shape, mode, dtype, n_trials,
                         seed=rng.randint(1000))
    for n in range(1, 340):
        # inputs over many magnitudes, so that the summation order shows
        u = rng.randn(n_trials, *shape) * 10.0 ** rng.uniform(-4, 4, (n_trials,) + shape)
        bench.step(n, u)
        bench.check(exact=True)


@contextlib.contextmanager
def _rc_precision_bits(bits):
    before = nengo.rc["precision"]["bits"]
    nengo.rc["precision"]["bits"] = bits
    try:
        yield
    finally:
        nengo.rc["precision"]["bits"] = before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_triangle_steps_with_float32_coefficients(dtype, rng):
    """Under Nengo's rc precision of 32 bits, the coefficients are float32
    scalars: float32 signals then multiply in float32."""
    with _rc_precision_bits("32"):
        bench = ProcessBench(Triangle(0.02), (4,), "update", dtype, 2, seed=rng.randint(1000))
        assert list(bench.program)[0].ints["wide"].tolist() == [0]
    for n in range(1, 60):
        bench.step(n, rng.randn(2, 4) * 3)
        bench.check(exact=True)


def test_triangle_nonzero_initial_state_and_merged_operators(rng):
    """Operators merged into one instruction, one with Nengo's y0 state (X and
    Y start at y0), both incrementing one output (elements in order)."""
    tri = [Triangle(0.005), Triangle(0.012)]
    sig_t = Signal(np.zeros(1), name="t")
    out = Signal(np.zeros(3), name="out")
    ops, inputs = [], []
    for k, process in enumerate(tri):
        u = Signal(np.zeros(3), name=f"u{k}")
        state = process.make_state((3,), (3,), DT, y0=0.4 if k else 0)
        state = {name: Signal(v, name=name) for name, v in state.items()}
        ops.append(SimProcess(process, u, out, sig_t, mode="inc", state=state))
        inputs.append(u)
    signals = {sig for op in ops for sig in op.all_signals}
    layout = SignalLayout(signals, {s.base for s in signals}, np.float64, 2, dt=DT)
    assert all(SimProcessLowering.key(op, layout) == ("triangle",) for op in ops)
    program = Program(SimProcessLowering.lower(ops, layout))
    assert [i.kind for i in program] == ["triangle"]
    backend = CpuBackend(program, layout, DT)
    ref = [SignalDict() for _ in range(2)]
    for sigs in ref:
        for sig in signals:
            if sig.base not in sigs:
                sigs.init(sig.base)
    steps = [op.make_step(sigs, DT, np.random.RandomState(0)) for sigs in ref for op in ops]
    for n in range(1, 30):
        for trial in range(2):
            values = rng.randn(len(inputs), 3)
            for sigs in (ref[trial], layout.signal_dicts[trial]):
                sigs[out][...] = 0
                for u, value in zip(inputs, values):
                    sigs[u][...] = value
        backend.run(1, [], [])
        for step in steps:
            step()
        for trial in range(2):
            for sig in [out] + [s for op in ops for s in op.state.values()]:
                np.testing.assert_array_equal(layout.signal_dicts[trial][sig], ref[trial][sig])


@pytest.mark.parametrize("dtype, position", [(np.float64, np.nan), (np.float32, np.nan),
                                             (np.float32, -1.0000001)])
def test_triangle_ring_position_that_names_no_row_leaves_the_ring(dtype, position):
    """A ring position that names no row (NaN: Nengo's int() raises; in
    float32, -1.0000001 + 1 modulo 4 rounds to 4: Nengo's X[4] raises) writes
    no tap: the ring stays as it was, and Xi holds NaN for the run's NaN check
    to report."""
    bench = ProcessBench(Triangle(0.003), (2,), "update", dtype, 1)
    bench.step(1, np.ones((1, 2)))
    xi, ring = bench.op.state["Xi"], bench.op.state["X"]
    bench.layout.signal_dicts[0][xi][...] = position
    before = bench.ours(ring, 0).copy()
    bench.backend.run(1, [], [])
    np.testing.assert_array_equal(bench.ours(ring, 0), before)
    assert np.isnan(bench.ours(xi, 0)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("position", [-5.0, -1.0, 2.5, -3.5, 1e30, -1e30, 2.0**24 + 1])
def test_triangle_user_set_ring_positions(dtype, position):
    """Positions a user may set, moved on as Nengo's `(Xi + 1) % n` (NumPy's
    remainder: +0 where fmod gives -0) and used as `int(Xi)`: bit for bit."""
    bench = ProcessBench(Triangle(0.003), (2,), "update", dtype, 1)
    bench.step(1, np.ones((1, 2)))
    xi = bench.op.state["Xi"]
    for sigs in (bench.ref[0], bench.layout.signal_dicts[0]):
        sigs[xi][...] = position
    for n in range(2, 5):
        bench.step(n, np.full((1, 2), float(n)))
        bench.check(exact=True)
        assert np.signbit(bench.ours(xi, 0)) == np.signbit(bench.ref[0][xi])


def test_triangle_subclass_and_odd_state_stay_callbacks():
    class MyTriangle(Triangle):
        pass

    for process in (MyTriangle(0.01),):
        state = process.make_state((2,), (2,), DT)
        state = {k: Signal(v, name=k) for k, v in state.items()}
        op = SimProcess(process, Signal(np.zeros(2)), Signal(np.zeros(2)), Signal(np.zeros(1)),
                        mode="update", state=state)
        layout = SignalLayout(op.all_signals, {op.output.base}, np.float64, 1, dt=DT)
        assert SimProcessLowering.key(op, layout) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3])
@pytest.mark.parametrize("mode", ["set", "inc"])
@pytest.mark.parametrize("shape", [(1,), (5,), (2, 3)])
def test_white_signal_steps(dtype, n_trials, mode, shape, rng):
    # period 0.0305 s -> 32 rows; run past one period to test the wrap-around
    process = WhiteSignal(period=0.0305, high=100, rms=0.3)
    bench = ProcessBench(process, shape, mode, dtype, n_trials, with_input=False,
                         seed=rng.randint(1000))
    for n in range(1, 80):
        bench.step(n)
        bench.check(exact=True)
    first = [bench.ours(bench.output, t).copy() for t in range(n_trials)]
    if n_trials > 1 and mode == "set":
        assert not np.allclose(first[0], first[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3])
@pytest.mark.parametrize("mode", ["set", "inc"])
@pytest.mark.parametrize(
    "dist", [Gaussian(0.5, 2), Uniform(-1, 1), Exponential(0.3), Uniform(-3, 3, integer=True)]
)
def test_white_noise_steps(dtype, n_trials, mode, dist, rng):
    process = WhiteNoise(dist=dist, scale=mode == "inc")
    bench = ProcessBench(process, (7,), mode, dtype, n_trials, with_input=False,
                         seed=rng.randint(1000))
    for n in range(1, 30):
        bench.step(n)
        bench.check(exact=True)


# time-only processes: presentation times and breakpoints off the step grid, so
# that Nengo's rounding (PresentInput's 1e-7, Piecewise's t + dt / 2) decides
TIMED = {
    "present": lambda m: PresentInput(np.arange(3.0 * m).reshape(3, m) - m, 0.0037),
    "present_images": lambda m: PresentInput(np.cos(np.arange(4.0 * m)).reshape(4, 1, m), 0.002),
    "piecewise_zero": lambda m: Piecewise(
        {0.0035: np.arange(m) + 1.0, 0.0121: -np.ones(m), 0.03: np.linspace(0, 1, m)}
    ),
    "piecewise_linear": lambda m: Piecewise(
        {0: np.zeros(m), 0.0213: np.linspace(-1, 1, m), 0.05: np.ones(m)}, interpolation="linear"
    ),
    "piecewise_cubic": lambda m: Piecewise(
        {0: np.zeros(m), 0.01: np.ones(m), 0.02: -np.ones(m), 0.04: np.arange(m) / m},
        interpolation="cubic",
    ),
}


@pytest.mark.parametrize("name", sorted(TIMED))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3])
@pytest.mark.parametrize("mode", ["set", "inc"])
def test_timed_process_steps(name, dtype, n_trials, mode):
    bench = ProcessBench(TIMED[name](5), (5,), mode, dtype, n_trials, with_input=False,
                         exact_time=True)
    for n in range(1, 80):
        bench.step(n)
        bench.check(exact=True)


@pytest.mark.parametrize("name", sorted(TIMED))
def test_timed_outputs_are_the_steps(name):
    """A run's rows, from any start step, are the step function's outputs at
    Nengo's times (the process called again from the start)."""
    process = TIMED[name](4)
    op = SimProcess(process, None, Signal(np.zeros(4)), Signal(np.zeros(1)), mode="set")
    step = process.make_step((0,), (4,), DT, None, {})
    expected = np.array([step(n * DT) for n in range(1, 121)])
    ours = np.concatenate([timed_outputs(op, DT, start, n) for start, n in
                           ((0, 1), (1, 36), (37, 0), (37, 83))])
    np.testing.assert_array_equal(ours, expected)
    assert len(np.unique(ours, axis=0)) >= 3  # the test sees the output change


def test_an_interpolation_scipy_refuses_fails_when_built_as_in_nengo():
    """nengo.Simulator makes every step function when it is built, so scipy's
    error in a Piecewise's interpolation comes from the Simulator's
    constructor; it came from the first run."""
    pytest.importorskip("scipy")
    with nengo.Network() as net:
        nengo.Node(Piecewise({0.0: [-0.4, -0.9], 0.177: [0.7, -0.05], 0.227: [0.4, 0.75]},
                             interpolation="cubic"))
    errors = []
    for simulator in (nengo.Simulator, nengo_cuda.Simulator):
        with pytest.raises(ValueError) as e:
            simulator(net, progress_bar=False)
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "derivatives" in errors[0]


def test_a_piecewise_step_is_made_once_per_simulator(monkeypatch):
    """As in nengo.Simulator (lowering asked `has_column`, which made one to
    throw away: scipy's 'cubic' warning came twice)."""
    made = []
    original = Piecewise.make_step
    monkeypatch.setattr(Piecewise, "make_step",
                        lambda self, *a, **k: made.append(self) or original(self, *a, **k))
    with nengo.Network() as net:
        nengo.Node(TIMED["piecewise_linear"](2))
    for simulator in (nengo.Simulator, nengo_cuda.Simulator):
        made.clear()
        simulator(net, progress_bar=False).close()
        assert len(made) == 1, simulator


@pytest.mark.parametrize("process", [
    WhiteNoise(), WhiteSignal(1, high=5), PresentInput([[1.0]], 0.1),
    Piecewise({0: [1.0]}), Piecewise({0: [1.0]}, interpolation="linear"),
    Piecewise({0: lambda t: [t]}), nengo.processes.BrownNoise(), nengo.processes.FilteredNoise()])
def test_has_column_says_what_column_for_gives(process):
    op = SimProcess(process, None, Signal(np.zeros(1)), Signal(np.zeros(1)), mode="set")
    assert has_column(op) == (column_for(op, DT) is not None)


def test_piecewise_with_functions_stays_a_callback():
    """A Piecewise with callable values calls user code: it runs as Nengo runs it."""
    calls = []

    def ramp(t):
        calls.append(t)
        return [t, -t]

    with nengo.Network(seed=2) as net:
        u = nengo.Node(Piecewise({0: [0.5, 0.5], 0.02: ramp}))
        p = nengo.Probe(u)
    calls.clear()  # (Piecewise calls it once, to check it)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(40)
    nengo_calls = calls[:]
    calls.clear()
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        assert any(isinstance(op, SimProcess) for i in sim.program if i.is_callback
                   for op in i.ops)
        sim.run_steps(40)
    np.testing.assert_array_equal(sim.data[p], ref.data[p])
    assert calls == nengo_calls and len(calls) == 21  # once a step from 0.02 s on


@pytest.mark.parametrize(
    "dist", [Gaussian(0, 1), Gaussian(1, 0.5), Uniform(-2, 3), Uniform(0, 9, integer=True),
             Choice([[1, 2.5, -1], [0, 3, 4]]), Exponential(2.0)]
)
@pytest.mark.parametrize("scale", [True, False])
def test_white_noise_chunks_equal_nengo_stream(dist, scale):
    # Drawing a run's samples at once must give Nengo's step-by-step stream.
    process = WhiteNoise(dist=dist, scale=scale)
    step = process.make_step((0,), (3,), DT, np.random.RandomState(5), {})
    expected = np.array([step(0.0) for _ in range(20)])
    rng = np.random.RandomState(5)
    ours = np.concatenate(
        [white_noise_samples(process, rng, n, 3, DT) for n in (1, 7, 0, 12)]
    )
    np.testing.assert_array_equal(ours, expected)


def test_white_noise_table_keeps_unused_samples():
    # After an interrupted run, samples not yet used serve the next run.
    process = WhiteNoise()
    op = SimProcess(process, None, Signal(np.zeros(2)), Signal(np.zeros(1)), mode="set")
    source = ProcessTables([op], DT)
    source.reset([[3]])
    first = source.before_run(10, 0)["table"].reshape(10, 2)
    source.after_run(4)
    second = source.before_run(10, 4)["table"].reshape(10, 2)
    source.after_run(10)
    expected = white_noise_samples(process, np.random.RandomState(3), 14, 2, DT)
    np.testing.assert_array_equal(first, expected[:10])
    np.testing.assert_array_equal(second, expected[4:])


def test_white_signal_period_fallback_matches_closure():
    # Without the closure lookup, evaluating the step function gives the same rows.
    process = WhiteSignal(period=0.1, high=20)
    op = SimProcess(process, None, Signal(np.zeros(3)), Signal(np.zeros(1)), mode="set")
    fast = white_signal_period(op, np.random.RandomState(1), DT)
    step = process.make_step((0,), (3,), DT, np.random.RandomState(1), {})
    slow = np.array([step(i * DT) for i in range(fast.shape[0])])
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("seed", [None, 7])
def test_process_seed_is_get_rngs(seed):
    """`process_seed` draws from the parent generator as Nengo's
    ``Process.get_rng`` does, and the generator of that seed is get_rng's."""
    process = WhiteNoise(seed=seed)
    ours, parent = np.random.RandomState(3), np.random.RandomState(3)
    mine = np.random.RandomState(process_seed(process, ours)).rand(4)
    assert np.array_equal(mine, process.get_rng(parent).rand(4))
    assert ours.rand() == parent.rand()  # the parent stream goes on alike


def test_process_table_errors():
    p = RawProgram(np.float64, 0, 4)
    index = p.add("process_table", ints={"Y": [1, 2], "m": [2], "period": [3], "inc": [0],
                                         "shared": [0]}, scalars={"time": 0})
    with pytest.raises(RuntimeError, match="not loaded"):
        p.run()
    with pytest.raises(ValueError, match="does not fit"):
        p.native.set_table(index, "table", np.zeros(5))
    with pytest.raises(ValueError, match="no table 'other'"):
        p.native.set_table(index, "other", np.zeros(6))
    p.write([0], [2 * 0.001])
    p.native.set_table(index, "table", np.arange(6.0))
    p.run()
    np.testing.assert_array_equal(p.view([1, 2]), [4, 5])  # row 2 of 3


def test_process_table_layout():
    """Shared blocks first, once; then each trial's blocks (csrc/kernels/process_table.h)."""
    p = RawProgram(np.float64, 0, 8, n_trials=2)
    p.write([0], [0.0], trial=1)
    p.write([0], [0.0], trial=0)
    p.add("time_update", scalars={"step": 0, "time": 0})
    index = p.add("process_table", ints={"Y": [1, 2, 3, 4, 5], "m": [1, 2, 2],
                                         "period": [0, 3, 0], "inc": [0, 0, 0],
                                         "shared": [0, 1, 0]}, scalars={"time": 0})
    steps = 4
    shared = 100 + np.arange(3 * 2.0)  # op 1: its period, 3 rows of 2
    # per trial: op 0's 4 rows of 1, op 2's 4 rows of 2
    trials = [1000 * (t + 1) + np.arange(steps + steps * 2.0) for t in range(2)]
    table = np.concatenate([shared] + trials)
    with pytest.raises(ValueError, match="does not fit"):
        p.native.set_table(index, "table", table[:-1])
    p.native.set_table(index, "table", table)
    done = 0
    for n in range(1, steps + 1):  # runs of n steps: the last one's rows
        p.native.run(n, [], [])
        done += n
        period_row = done % 3
        for t, rows in enumerate(trials):
            expected = [rows[n - 1], *shared[2 * period_row: 2 * period_row + 2],
                        *rows[steps + 2 * (n - 1): steps + 2 * n]]
            np.testing.assert_array_equal(p.view([1, 2, 3, 4, 5], trial=t), expected)


def test_process_table_indexed_rows():
    """An indexed operator (period -P: a PresentInput's P inputs, loaded once)
    reads the row that the per-run ``rows`` table names for each step; beside
    it a periodic and a per-step operator.  Bad ``rows`` are refused."""
    p = RawProgram(np.float64, 0, 7, n_trials=2)
    p.add("time_update", scalars={"step": 0, "time": 0})
    index = p.add("process_table", ints={"Y": [1, 2, 3, 4, 5, 6], "m": [2, 1, 2, 1],
                                         "period": [-3, 2, -2, 0], "inc": [0, 0, 0, 0],
                                         "shared": [1, 1, 1, 0]}, scalars={"time": 0})
    inputs_a = 10 + np.arange(3 * 2.0)   # op 0: 3 rows of 2
    periodic = np.array([-1.0, -2.0])    # op 1: 2 rows of 1
    inputs_b = 50 + np.arange(2 * 2.0)   # op 2: 2 rows of 2
    steps = 5
    per_step = [1000 * (t + 1) + np.arange(steps, dtype=float) for t in range(2)]  # op 3
    p.native.set_table(index, "table", np.concatenate([inputs_a, periodic, inputs_b] + per_step))
    with pytest.raises(RuntimeError, match="no row index"):
        p.native.run(1, [], [])
    rows_a, rows_b = [2, 0, 1, 1, 2], [1, 1, 0, 1, 0]
    rows = np.array([rows_a, rows_b], dtype=float).T.ravel()  # per step: op 0's, op 2's
    for bad, message in [(rows[:-1], "indexed operators"), (rows + 0.5, "not in"),
                         (np.where(np.arange(10) == 4, 3.0, rows), "not in"),
                         (np.where(np.arange(10) == 5, -1.0, rows), "not in")]:
        with pytest.raises(ValueError, match=message):
            p.native.set_table(index, "rows", bad)
    p.native.set_table(index, "rows", rows)
    for n in range(1, steps + 1):  # one step a run, from the start: step n - 1's rows
        p.native.set_table(index, "rows", rows[2 * (n - 1):])
        p.native.run(1, [], [])
        for t in range(2):
            now = p.view([0], trial=t)[0]  # (the refused run above stepped the time too)
            expected = [*inputs_a[2 * rows_a[n - 1]: 2 * rows_a[n - 1] + 2],
                        periodic[int(round(now / 0.001)) % 2],
                        *inputs_b[2 * rows_b[n - 1]: 2 * rows_b[n - 1] + 2], per_step[t][0]]
            np.testing.assert_array_equal(p.view([1, 2, 3, 4, 5, 6], trial=t), expected)
    p.native.set_table(index, "rows", rows[:2])
    with pytest.raises(RuntimeError, match="no row index for step 1"):
        p.native.run(2, [], [])


@pytest.mark.parametrize("name", [name for name in sorted(TIMED) if name.startswith("present")])
def test_presented_rows_are_the_steps(name):
    """The rows a PresentInput presents in a run, from any start step, are
    those its step function returns at Nengo's times."""
    process = TIMED[name](4)
    step = process.make_step((0,), (4,), DT, None, {})
    expected = np.array([step(n * DT) for n in range(1, 121)])
    rows = np.concatenate([presented_rows(process, DT, start, n) for start, n in
                           ((0, 1), (1, 36), (37, 0), (37, 83))])
    inputs = process.inputs.reshape(len(process.inputs), -1)
    np.testing.assert_array_equal(inputs[rows], expected)
    assert len(np.unique(rows)) == len(inputs)  # the test sees every input


# -- whole networks ------------------------------------------------------------


def _assert_native_processes(sim):
    summary = sim.program.summary()
    for instr in sim.program:
        if instr.is_callback:
            assert not any(isinstance(op, SimProcess) for op in instr.ops), instr.callback
    return summary


def _run_both(net, steps, chunks=None, stateful=True, **kwargs):
    """(nengo.Simulator, our Simulator, our summary) after ``steps`` steps each;
    ours runs them in ``chunks`` (separate run_steps calls); ``stateful``: as
    the network is configured (False: n_steps stays 0, as in NengoDL)."""
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(steps)
    with nengo_cuda.Simulator(net, progress_bar=False, **kwargs) as sim:
        for n in chunks or [steps]:
            sim.run_steps(n)
        summary = _assert_native_processes(sim)
    assert sim.n_steps == (steps if stateful else 0)
    return ref, sim, summary


def _network(seed=3):
    with nengo.Network(seed=seed) as net:
        sig = nengo.Node(WhiteSignal(period=0.5, high=8, rms=0.4), size_out=2)
        noise = nengo.Node(WhiteNoise(dist=Gaussian(0, 0.3)), size_out=3)
        ens = nengo.Ensemble(40, 2, noise=WhiteNoise(dist=Uniform(-0.1, 0.1)))
        nengo.Connection(sig, ens, synapse=nengo.Alpha(0.004))
        out = nengo.Node(size_in=3)
        nengo.Connection(noise, out, synapse=LinearFilter([1], [0.001, 0.05, 1]))
        nengo.Connection(sig[0], out[1], synapse=LinearFilter([0.5, 1], [0.01, 1]))
        nengo.Connection(ens, out[1:], synapse=nengo.Lowpass(0.01))
        filt = nengo.Node(nengo.Lowpass(0.02), size_in=2, size_out=2)  # set mode, with input
        nengo.Connection(sig, filt, synapse=None)
        probes = [nengo.Probe(obj) for obj in (sig, noise, out, filt)]
        probes += [nengo.Probe(ens, synapse=0.01), nengo.Probe(out, synapse=nengo.Alpha(0.01))]
        probes += [nengo.Probe(ens.neurons, "voltage")]
    return net, probes


def test_network_matches_nengo():
    net, probes = _network()
    ref, sim, summary = _run_both(net, 600, chunks=[1, 149, 450], dtype="float64")
    for kind in ("lti_elementwise", "lti_state_space", "process_table"):
        assert kind in summary, summary
    assert summary["lti_elementwise"][1] == 3  # Lowpass: connection, Node, probe
    assert summary["lti_state_space"][1] == 4  # Alpha x2, NoD, General
    assert summary["process_table"] == (1, 3)  # WhiteSignal + 2 WhiteNoise, one table
    for p in probes:
        np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-10, atol=1e-10)


def test_network_reset_reproduces():
    net, probes = _network()
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.run(0.2)
        first = [sim.data[p].copy() for p in probes]
        sim.reset()
        sim.run(0.2)
        for p, data in zip(probes, first):
            np.testing.assert_array_equal(sim.data[p], data)
        sim.reset(seed=sim.seed + 1)
        sim.run(0.2)
        assert not np.allclose(sim.data[probes[0]], first[0])


def test_minibatch_white_signal():
    net, probes = _network()
    sig_probe, filt_probe = probes[0], probes[3]
    ref, sim, _ = _run_both(net, 300, dtype="float64", minibatch_size=3)
    data = sim.data[sig_probe]
    assert data.shape == (3, 300, 2)
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert not np.allclose(data[a], data[b])
    np.testing.assert_array_equal(data[0], ref.data[sig_probe])
    np.testing.assert_allclose(sim.data[filt_probe][0], ref.data[filt_probe], rtol=1e-12)
    for p in probes:
        np.testing.assert_allclose(sim.data[p][0], ref.data[p], rtol=1e-10, atol=1e-10)


def _timed_network(seed=5):
    with nengo.Network(seed=seed) as net:
        nodes = [nengo.Node(TIMED[name](3)) for name in sorted(TIMED)]
        nodes.append(nengo.Node(WhiteSignal(period=0.2, high=10), size_out=3))
        nodes.append(nengo.Node(WhiteNoise(dist=Gaussian(0, 0.1)), size_out=3))
        ens = nengo.Ensemble(60, 3)
        for node in nodes:
            nengo.Connection(node, ens, synapse=0.005)
        probes = [nengo.Probe(node) for node in nodes] + [nengo.Probe(ens, synapse=0.01)]
    return net, probes


def test_timed_network_matches_nengo():
    net, probes = _timed_network()
    ref, sim, summary = _run_both(net, 300, chunks=[1, 99, 200], dtype="float64")
    assert summary["process_table"] == (1, len(TIMED) + 2), summary
    assert "callback" not in summary, summary
    for p in probes:
        np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-10, atol=1e-10)


def test_timed_tables_read_ahead_for_short_runs(monkeypatch):
    """Short runs (a loop of ``sim.step()``) take their rows (and WhiteNoise
    its samples) from a window computed ahead: across its ends, after a reset,
    in a minibatch and in long runs too, the steps are Nengo's."""
    from nengo_cuda.lowering import process_tables

    monkeypatch.setattr(process_tables, "READ_AHEAD_STEPS", 7)
    net, probes = _timed_network()
    chunks = [1] * 10 + [3, 5, 7, 2, 6, 50, 1, 1, 4]
    ref, sim, _ = _run_both(net, sum(chunks), chunks=chunks, dtype="float64")
    for p in probes:
        np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-10, atol=1e-10)
    _, batched, _ = _run_both(net, sum(chunks), chunks=chunks, dtype="float64", minibatch_size=2)
    for p in probes:  # (trial 0: Nengo's streams)
        np.testing.assert_allclose(batched.data[p][0], ref.data[p], rtol=1e-10, atol=1e-10)
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        for n in (5, 1, 1):
            sim.run_steps(n)
        sim.reset()
        for n in (1, 2, 9):
            sim.run_steps(n)
        for p in probes:
            np.testing.assert_allclose(sim.data[p], ref.data[p][:12], rtol=1e-10, atol=1e-10)


def test_timed_network_minibatch_and_reset():
    """Every trial sees the same time-only inputs; a reset starts them again,
    and so does each run that is not stateful."""
    net, probes = _timed_network()
    with net:
        nengo_cuda.configure_settings(stateful=False)
    ref, sim, _ = _run_both(net, 120, chunks=[120], stateful=False, dtype="float64",
                            minibatch_size=3)
    for p in probes[: len(TIMED)]:
        for trial in range(3):
            np.testing.assert_array_equal(sim.data[p][trial], ref.data[p])
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        assert sim.stateful is False  # (NengoDL's attribute: the setting)
        sim.run_steps(50)
        sim.run_steps(50)  # not stateful: starts from the initial state again
        for p in probes[: len(TIMED)]:
            np.testing.assert_array_equal(sim.data[p][50:], ref.data[p][:50])
        sim.reset()
        sim.run_steps(70)
        for p in probes:
            np.testing.assert_allclose(sim.data[p], ref.data[p][:70], rtol=1e-10, atol=1e-10)


def _triangle_network(seed=4, white=True):
    """``white``: the input is white noise (each trial of a minibatch its own),
    else a function of time (all trials alike)."""
    with nengo.Network(seed=seed) as net:
        if white:
            sig = nengo.Node(WhiteSignal(period=0.5, high=8, rms=0.4), size_out=2)
        else:
            sig = nengo.Node(lambda t: [np.cos(5 * t), np.sin(3 * t) ** 2])
        ramp = nengo.Node(lambda t: np.sin(9 * t))
        ens = nengo.Ensemble(30, 2)
        nengo.Connection(sig, ens, synapse=Triangle(0.01))
        out = nengo.Node(size_in=3)
        nengo.Connection(ens, out[:2], synapse=Triangle(0.005))
        nengo.Connection(ramp, out[2], synapse=Triangle(0.15))  # 151 taps, summed pairwise
        nengo.Connection(sig[1], out[2], synapse=Triangle(0))
        probes = [nengo.Probe(out), nengo.Probe(ens, synapse=Triangle(0.02)),
                  nengo.Probe(ens.neurons, "voltage")]
    return net, probes


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
def test_triangle_network_matches_nengo(device):
    net, probes = _triangle_network()
    ref, sim, summary = _run_both(net, 400, chunks=[1, 150, 249], dtype="float64", device=device)
    assert summary["triangle"][1] == 5  # 4 connections and the probe
    for p in probes:
        np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
def test_triangle_network_minibatch_and_reset(device):
    """Each trial's rings are its own: trials with the same inputs agree, and
    a reset starts the rings (and their positions) again."""
    net, probes = _triangle_network(white=False)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(120)
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64", minibatch_size=3,
                              device=device) as sim:
        sim.run_steps(70)
        sim.reset()
        sim.run_steps(120)
        for p in probes:
            for trial in range(3):  # (no noise: every trial is Nengo's run)
                np.testing.assert_allclose(sim.data[p][trial], ref.data[p], rtol=1e-10,
                                           atol=1e-10)


def test_tables_bound_the_steps_of_a_run(monkeypatch):
    """Runs are cut so that probe data and tables stay within _CHUNK_ELEMENTS;
    the cut runs still give Nengo's outputs."""
    net, probes = _timed_network()
    runs = []
    before_run = TableLoader.before_run
    monkeypatch.setattr(TableLoader, "before_run",
                        lambda self, n, start, fed=(): runs.append(n) or before_run(self, n, start, fed))
    monkeypatch.setattr(nengo_cuda.simulator, "_CHUNK_ELEMENTS", 2 * 100 * 24)
    ref, sim, _ = _run_both(net, 250, dtype="float64", minibatch_size=2)
    # per step, 3 values of each probe (the nodes' and the ensemble's) and of
    # WhiteNoise's column for each of the 2 trials, 3 of each time-only
    # column for all trials, and 1 (the row presented) of each PresentInput
    # (not WhiteSignal's periodic table, nor PresentInput's inputs)
    presents = sum(name.startswith("present") for name in TIMED)
    per_step = 2 * 3 * (len(TIMED) + 3) + 2 * 3 + 3 * (len(TIMED) - presents) + presents
    chunk = 2 * 100 * 24 // per_step
    assert chunk < 250 and runs == [chunk] * (250 // chunk) + [250 % chunk][: 250 % chunk], runs
    for p in probes:
        np.testing.assert_allclose(sim.data[p][0], ref.data[p], rtol=1e-10, atol=1e-10)
    for p in probes[: len(TIMED)]:
        np.testing.assert_array_equal(sim.data[p][1], ref.data[p])


def test_tables_alone_bound_the_steps_of_a_run(monkeypatch):
    """The tables of a run stay within _CHUNK_TABLE_VALUES whatever the probes
    (ensemble noise on many neurons drew a table of 8 M values: 260 MB),
    unless runs would be shorter than _CHUNK_TABLE_STEPS."""
    with nengo.Network(seed=2) as net:
        ens = nengo.Ensemble(50, 1, noise=WhiteNoise(dist=Gaussian(0, 0.1)))
        probe = nengo.Probe(ens, synapse=0.01)
    runs = []
    before_run = TableLoader.before_run
    monkeypatch.setattr(TableLoader, "before_run",
                        lambda self, n, start, fed=(): runs.append(n) or before_run(self, n, start, fed))
    monkeypatch.setattr(nengo_cuda.simulator, "_CHUNK_TABLE_VALUES", 50 * 30)
    monkeypatch.setattr(nengo_cuda.simulator, "_CHUNK_TABLE_STEPS", 20)
    ref, sim, _ = _run_both(net, 100, dtype="float64")
    assert runs == [30, 30, 30, 10]
    monkeypatch.setattr(nengo_cuda.simulator, "_CHUNK_TABLE_STEPS", 40)  # (at least 40)
    runs.clear()
    _run_both(net, 100, dtype="float64")
    assert runs == [40, 40, 20]
    np.testing.assert_allclose(sim.data[probe], ref.data[probe], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("process", [WhiteSignal(period=1, high=5), TIMED["present"](1)])
def test_data_replaces_table_node(process):
    with nengo.Network(seed=1) as net:
        sig = nengo.Node(process, size_out=1)
        out = nengo.Node(size_in=1)
        nengo.Connection(sig, out, synapse=nengo.Lowpass(0.01))
        p = nengo.Probe(out)
    values = np.linspace(-1, 1, 50).reshape(1, 50, 1)
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        sim.run_steps(50, data={sig: values})
    filtered = nengo.Lowpass(0.01).filt(values[0], dt=DT, y0=0)
    expected = np.concatenate([[[0.0]], filtered[:-1]])  # the synapse updates one step late
    np.testing.assert_allclose(sim.data[p], expected, rtol=1e-12, atol=1e-12)


def test_data_replaces_one_column_of_a_table():
    """data= for one node of a merged process_table: the table runs (the other
    columns keep Nengo's values) and the data overwrites that node's output."""
    net, probes = _timed_network()
    fed = net.nodes[0]
    values = np.linspace(-1, 1, 3 * 60).reshape(1, 60, 3)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(60)
    with nengo_cuda.Simulator(net, progress_bar=False, dtype="float64") as sim:
        assert sim.program.summary()["process_table"][0] == 1
        sim.run_steps(60, data={fed: values})
        sim.run_steps(60)  # without data: the table's rows again, from step 61
    np.testing.assert_array_equal(sim.data[probes[0]][:60], values[0])
    for p in probes[1:-1]:
        np.testing.assert_array_equal(sim.data[p][:60], ref.data[p])
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(120)
    np.testing.assert_array_equal(sim.data[probes[0]][60:], ref.data[probes[0]][60:])


def test_float32_network_close_to_nengo():
    net, probes = _network()
    ref, sim, _ = _run_both(net, 200, dtype="float32")
    for p in probes[:4]:
        np.testing.assert_allclose(sim.data[p], ref.data[p], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
def test_zero_size_process_nodes_run_as_in_nengo(device):
    """A process Node of no values (a generated network's, say) runs as in
    Nengo, next to a seeded one whose values must not change (it had no table
    rows: a division by zero, or no row for step 0)."""
    with nengo.Network(seed=4) as net:
        for process in (nengo.processes.WhiteNoise(), nengo.processes.BrownNoise(),
                        nengo.processes.FilteredNoise(),
                        nengo.processes.Piecewise({0: np.zeros(0)})):
            nengo.Node(process, size_out=0)
        noise = nengo.Node(nengo.processes.WhiteNoise(seed=3), size_out=2)
        p = nengo.Probe(noise)
    with nengo.Simulator(net, progress_bar=False) as ref:
        ref.run_steps(7)
    with nengo_cuda.Simulator(net, minibatch_size=2, dtype="float64", device=device,
                              progress_bar=False) as sim:
        sim.run_steps(7)
    np.testing.assert_allclose(sim.data[p][0], ref.data[p], rtol=1e-12)
