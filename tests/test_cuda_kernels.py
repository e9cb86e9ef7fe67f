"""Device instructions against the CPU instructions, on identical buffers.

Each test loads the same instructions into a CPU program and a device program
whose pools start equal (random values), runs both and compares the pools.
``device`` is the host emulator of the CUDA backend (always) and the GPU
(skipped without one: it needs a CUDA build, a device and CuPy).
"""

import re
from pathlib import Path

import nengo
import numpy as np
import pytest

import test_kernels_conv as kc
import test_kernels_neurons as kn

from nengo_cuda import _native
from nengo_cuda.backends.select import cuda_status

DEVICES = [
    "cuda-emulator",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not cuda_status()[0], reason=f"no CUDA: {cuda_status()[1]}"),
    ),
]
CPU = {np.float32: _native.ProgramFloat32, np.float64: _native.ProgramFloat64}


class Twin:
    """A CPU program and a device program over equal pools."""

    def __init__(self, device, dtype, n_shared, n_state, n_trials=1, n_int_state=1, seed=0):
        rng = np.random.RandomState(seed)
        self.dtype = np.dtype(dtype)
        self.n_shared, self.n_state, self.n_trials = n_shared, n_state, n_trials
        size = n_shared + n_trials * n_state
        self.f_cpu = rng.uniform(-1, 1, size).astype(self.dtype)
        self.i_cpu = np.arange(n_trials * n_int_state, dtype=np.int64)
        self.f_dev, self.i_dev = self.f_cpu.copy(), self.i_cpu.copy()
        self.cpu = CPU[self.dtype.type](
            self.f_cpu, n_shared, n_state, self.i_cpu, 0, n_int_state, n_trials, 0.001
        )
        self.device = device
        self._mem = {}
        if device == "cuda":
            import cupy  # noqa: PLC0415

            self._cp = cupy
            cls = {np.float32: _native.CudaProgramFloat32, np.float64: _native.CudaProgramFloat64}
        else:
            cls = {
                np.float32: _native.EmulatedProgramFloat32,
                np.float64: _native.EmulatedProgramFloat64,
            }
        pools = [self._alloc(self.f_dev.nbytes), self._alloc(self.i_dev.nbytes)]
        self._pools = {p: self._mem.pop(p) for p in pools}  # ours, not the program's
        self.dev = cls[self.dtype.type](
            self.f_dev, n_shared, n_state, self.i_dev, 0, n_int_state, n_trials, 0.001,
            pools[0], pools[1], self._alloc, self._free, 0,
        )

    def _alloc(self, nbytes):
        if self.device == "cuda":
            arr = self._cp.empty(max(int(nbytes), 1), dtype=self._cp.uint8)
            ptr = int(arr.data.ptr)
        else:
            arr = np.full(max(int(nbytes), 1), 0xFF, dtype=np.uint8)
            ptr = int(arr.ctypes.data)
        self._mem[ptr] = arr
        return ptr

    def _free(self, ptr):
        self._mem.pop(ptr, None)

    def add(self, kind, ints=None, floats=None, scalars=None):
        ints = {k: np.asarray(v, dtype=np.int64).ravel().tolist() for k, v in (ints or {}).items()}
        floats = {
            k: np.asarray(v, dtype=np.float64).ravel().tolist() for k, v in (floats or {}).items()
        }
        scalars = {k: float(v) for k, v in (scalars or {}).items()}
        a = self.cpu.add(kind, ints, floats, scalars)
        b = self.dev.add(kind, ints, floats, scalars)
        assert a == b
        return a

    def set_table(self, index, name, data):
        self.cpu.set_table(index, name, data)
        self.dev.set_table(index, name, data)

    def run(self, n_steps=1):
        self.cpu.run(n_steps, [], [])
        self.dev.run(n_steps, [], [], 0)

    def assert_equal(self, rtol=0.0, atol=0.0):
        np.testing.assert_allclose(self.f_dev, self.f_cpu, rtol=rtol, atol=atol)
        np.testing.assert_array_equal(self.i_dev, self.i_cpu)

    def close(self):
        self.dev.close()
        assert not self._mem, "device buffers left after close"


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.mark.parametrize("inc", [False, True])
def test_copy_overlapping_shift(device, inc):
    t = Twin(device, np.float64, 0, 20, n_trials=2)
    t.add("copy", ints={"src": np.arange(10), "dst": np.arange(1, 11)},
          scalars={"inc": inc, "overlap": 1})
    t.run(3)
    t.assert_equal()
    t.close()


@pytest.mark.parametrize("order", ["reverse", "forward", "shuffle"])
def test_emulator_thread_orders(monkeypatch, order):
    """The emulator runs a launch's logical threads in the order NC_EMU_ORDER
    names (make test-emulator runs the device tests in each): a copy whose
    sources overlap its destinations is right in every order only as two
    phases, all reads before any write, as it must be on a GPU."""
    monkeypatch.setenv("NC_EMU_ORDER", order)
    t = Twin("cuda-emulator", np.float64, 0, 300, n_trials=3)
    t.add("copy", ints={"src": np.arange(250), "dst": np.arange(1, 251)},
          scalars={"inc": 0, "overlap": 1})
    t.add("copy", ints={"src": np.arange(31, 281), "dst": np.arange(30, 280)},
          scalars={"inc": 1, "overlap": 1})
    t.run(5)
    t.assert_equal()
    t.close()


def test_emulator_thread_order_bad_value(monkeypatch):
    monkeypatch.setenv("NC_EMU_ORDER", "sideways")
    t = Twin("cuda-emulator", np.float32, 4, 4)
    t.add("copy", ints={"src": [0, 1], "dst": [2, 3]}, scalars={"inc": 0})
    with pytest.raises(ValueError, match="NC_EMU_ORDER must be reverse, forward or shuffle, "
                                         "not 'sideways'"):
        t.run(1)
    t.close()


def test_copy_inc_repeats_and_batches(device):
    """Repeated destinations accumulate in order; dependent copies stay ordered."""
    t = Twin(device, np.float32, 10, 30, n_trials=3)
    t.add("reset", ints={"dst": [10, 11, 12]}, floats={"value": [0.5, -1, 2]})
    t.add("copy", ints={"src": [10, 11, 0, 12], "dst": [13, 13, 14, 13]}, scalars={"inc": 1})
    t.add("elementwise_inc", ints={"Y": [15, 15, 16], "A": [1, 2, 13], "X": [13, 14, 3]})
    t.add("copy", ints={"src": [15, 16], "dst": [17, 18]}, scalars={"inc": 0})
    t.add("copy_runs", ints={"src": [20, 5], "dst": [30, 33], "length": [3, 2]},
          scalars={"inc": 1})
    t.add("time_update", scalars={"step": 0, "time": 19})
    t.run(4)
    t.assert_equal()
    t.close()


def batch_launches(t):
    """Launches per step of the twin's device program, without the step
    counter's advance."""
    return t.dev.stats()["launches_per_step"] - 1


def test_batches_merge_writes_to_one_address(device, monkeypatch):
    """Consecutive element-wise instructions writing the same addresses run in
    one launch: a set replaces, an increment after a set sums (Nengo's reset
    then copy, or a bias copy then increments); reading what an earlier one
    wrote starts a new launch (phases off, to count the batches)."""
    monkeypatch.setenv("NC_PHASE_MAX", "0")
    t = Twin(device, np.float32, 4, 20, n_trials=3)
    t.add("reset", ints={"dst": [4, 5, 6, 7]}, floats={"value": [0.5, -1, 2, 0]})
    t.add("copy", ints={"src": [0, 1], "dst": [4, 8]}, scalars={"inc": 0})       # set after set
    t.add("copy", ints={"src": [2, 3, 9], "dst": [5, 5, 10]}, scalars={"inc": 1})  # inc after set
    t.add("elementwise_inc", ints={"Y": [7, 10], "A": [0, 1], "X": [11, 12]})     # inc after inc
    t.add("copy", ints={"src": [3], "dst": [6]}, scalars={"inc": 0})              # set after set
    t.add("time_update", scalars={"step": 0, "time": 13})
    t.run(3)
    t.assert_equal()
    assert batch_launches(t) == 1
    t.add("copy", ints={"src": [5], "dst": [14]}, scalars={"inc": 0})  # reads 5: a new launch
    t.run(2)
    t.assert_equal()
    assert batch_launches(t) == 2
    t.close()


@pytest.mark.parametrize("phase_max", [0, 4096])
@pytest.mark.parametrize("seed", range(16))
def test_batches_merge_random(device, seed, phase_max, monkeypatch):
    """Random runs of resets, copies, increments and increments from I (which
    replace what an earlier item wrote) over a few addresses, with repeats,
    merged into launches: the CPU's numbers exactly (float64, the same
    additions in the same order).  No instruction reads its own destinations
    (the planner marks those copies "overlap"; they run alone)."""
    monkeypatch.setenv("NC_PHASE_MAX", str(phase_max))
    rng = np.random.RandomState(seed)
    t = Twin(device, np.float64, 6, 12, n_trials=2, seed=seed)
    addrs = 6 + np.arange(12)
    for _ in range(8):
        kind = rng.choice(["reset", "copy", "copy_inc", "elementwise_inc", "elementwise_from_i"])
        k = rng.randint(1, 5)
        dst = rng.choice(addrs, k)
        src = rng.choice(np.setdiff1d(np.arange(18), dst), k)
        if kind == "elementwise_from_i":  # Y = I + A X (fusion.py): each Y once
            dst = np.unique(dst)
            k = dst.size
            src = rng.choice(np.setdiff1d(np.arange(18), dst), k)
            init = rng.choice(np.setdiff1d(np.arange(18), dst), k)
            t.add("elementwise_inc", ints={"Y": dst, "A": rng.choice(6, k), "X": src, "I": init})
        elif kind == "reset":
            t.add("reset", ints={"dst": np.unique(dst)},
                  floats={"value": rng.uniform(-1, 1, np.unique(dst).size)})
        elif kind == "elementwise_inc":
            t.add("elementwise_inc", ints={"Y": dst, "A": rng.choice(6, k), "X": src})
        else:
            t.add("copy", ints={"src": src, "dst": dst}, scalars={"inc": kind == "copy_inc"})
    t.run(3)
    t.assert_equal()
    t.close()


@pytest.mark.parametrize("phase_max", [0, 4096])
def test_batches_forward_passthrough_chains(device, phase_max, monkeypatch):
    """A chain through passthrough nodes (reset, copy in, scale, copy on, as
    Nengo builds EnsembleArrays) reads what the batch before it wrote; the
    batch's value is passed on (HostBatch::forward), so the chain takes one
    launch, and the results are the CPU's to the bit, a zero's sign included
    (a reset to 0 plus -0.0 is +0.0, also times A).  A dot_inc between the reset and the
    increments does not write the reset addresses, so they stay known zeros;
    a sum of two increments is not passed on."""
    monkeypatch.setenv("NC_PHASE_MAX", str(phase_max))
    t = Twin(device, np.float64, 4, 30, n_trials=2)
    s = 4  # per trial: x at s..s+3, then the chain's signals
    for trial in range(2):
        t.f_cpu[s + trial * 30] = -0.0
    t.f_dev[:] = t.f_cpu
    node, scaled, post, other = s + 4, s + 8, s + 12, s + 16
    t.add("reset", ints={"dst": np.r_[node:node + 4, scaled:scaled + 4, post:post + 4]},
          floats={"value": np.zeros(12)})
    fields = {k: [] for k in ("rows", "cols", "A", "A_rs", "A_cs", "X", "X_s", "Y", "Y_s")}
    dot_block(fields, 2, 2, 0, s, other)  # writes elsewhere: the resets stay known
    t.add("dot_inc", ints=fields)
    t.add("copy", ints={"src": np.arange(s, s + 4), "dst": np.arange(node, node + 4)},
          scalars={"inc": 1})  # node.in = 0 + x
    t.add("elementwise_inc", ints={"Y": np.arange(scaled, scaled + 4), "A": [0, 1, 2, 3],
                                   "X": np.arange(node, node + 4)})  # scaled += A * node
    t.add("copy", ints={"src": np.arange(node, node + 2), "dst": [other + 2, other + 3]},
          scalars={"inc": 0})  # a SET of the 0 + x
    t.add("copy", ints={"src": [other + 2], "dst": [other + 5]}, scalars={"inc": 0})  # and on
    t.add("copy", ints={"src": np.arange(scaled, scaled + 4), "dst": np.arange(post, post + 4)},
          scalars={"inc": 1})  # post = 0 + scaled = 0 + (0 + x) * A
    t.run(3)
    t.assert_equal()
    np.testing.assert_array_equal(np.signbit(t.f_dev), np.signbit(t.f_cpu))
    for trial in range(2):  # (the -0.0 case ran: +0.0 on both sides)
        for a in (node, other + 2, other + 5):
            v = t.f_dev[a + trial * 30]
            assert v == 0 and not np.signbit(v)
    # reset + dot, the chain as one batch, the advance
    assert t.dev.stats()["launches_per_step_alone"] == 4
    # a second increment of node: their sum is not passed on
    t.add("copy", ints={"src": [s + 1], "dst": [node]}, scalars={"inc": 1})
    t.add("copy", ints={"src": [node], "dst": [other + 6]}, scalars={"inc": 0})
    t.run(2)
    t.assert_equal()
    np.testing.assert_array_equal(np.signbit(t.f_dev), np.signbit(t.f_cpu))
    assert t.dev.stats()["launches_per_step_alone"] == 5
    t.close()


def lowpass(t, u, y, x, a=0.9, b=0.1):
    """A lti_elementwise filter (form 1: state x) from addresses u to y."""
    n = len(u)
    t.add("lti_elementwise", ints={"U": u, "Y": y, "X": x, "form": np.ones(n, int),
                                   "inc": np.zeros(n, int)},
          floats={"a": np.full(n, a), "b": np.full(n, b)})


@pytest.mark.parametrize("phase_max", [0, 1, 60, 4096])
def test_phases_share_a_launch(device, phase_max, monkeypatch):
    """Small element-wise launches (batches, filters, a table, the step
    counter) run as phases of one launch (NC_PHASE_MAX, phases.h), in order:
    each reads what the one before wrote.  Launches with more elements than
    NC_PHASE_MAX launch alone; more than 32 phases (kMaxPhases) take another
    launch."""
    monkeypatch.setenv("NC_PHASE_MAX", str(phase_max))
    trials, n, copies = 3, 4, 33
    t = Twin(device, np.float64, 8, 90, n_trials=trials)
    s0 = 8  # per-trial: time at s0, then signals
    t.add("time_update", scalars={"step": 0, "time": s0})
    table = t.add("process_table", ints={"Y": s0 + 1 + np.arange(n), "m": [n], "period": [0],
                                         "inc": [0], "shared": [0]}, scalars={"time": s0})
    lowpass(t, s0 + 1 + np.arange(n), s0 + 10 + np.arange(n), s0 + 20 + np.arange(n))
    src = s0 + 10
    for k in range(copies):  # a chain of copies, each reading the one before
        t.add("copy", ints={"src": [src, 0], "dst": [s0 + 40 + k, s0 + 80]}, scalars={"inc": 1})
        src = s0 + 40 + k
    lowpass(t, [src], [s0 + 81], [s0 + 82])
    steps = 60  # graphs of many steps (the table's row is the step) and of one
    rng = np.random.RandomState(1)
    t.set_table(table, "table", rng.uniform(-1, 1, (trials, steps * n)))
    t.run(steps)
    t.assert_equal()
    # launch groups (time, table, filter, the copies, filter) and the step
    # counter's advance; a launch holds at most 32 phases
    groups = 4 + copies
    alone = groups + 1
    expected = {0: alone, 1: alone, 60: 2, 4096: 2}[phase_max]
    stats = t.dev.stats()
    assert stats["launches_per_step"] == expected
    # a graph of many steps: its groups and one advance, 32 phases a launch
    spg = stats["steps_per_graph"]
    assert spg > 1
    phases = groups * spg + 1
    assert stats["launches_per_graph"] == (phases if expected == alone else -(-phases // 32))
    t.close()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3])
@pytest.mark.parametrize("shared_output", [False, True])
def test_triangle_synapses(device, dtype, n_trials, shared_output):
    """Triangle synapses of 1 to 200 taps (size-1 signals sum pairwise, past 128
    taps as a tree), in set and inc mode, the device's two launches (elements,
    then the ring positions) equal to the CPU's loop; ``shared_output``: two
    operators increment one output (one thread per trial, in order)."""
    rng = np.random.RandomState(5)
    shapes = [(1, 1), (2, 1), (11, 3), (129, 1), (200, 1), (7, 5), (3, 2)]
    n_state = sum(n * m + 2 * m + 1 for n, m in shapes) + 2 * sum(m for _, m in shapes) + 8
    t = Twin(device, dtype, 4, n_state, n_trials=n_trials, seed=2)
    fields = {k: [] for k in ("n", "m", "X", "Xi", "inc", "wide", "U", "Y", "state")}
    floats = {"n0": [], "ndiff": []}
    nxt = 4
    def alloc(k):
        nonlocal nxt
        nxt += k
        return np.arange(nxt - k, nxt)
    common = alloc(5)  # the output two operators increment (shared_output)
    for j, (n, m) in enumerate(shapes):
        x, xi, u, state = alloc(n * m), alloc(1), alloc(m), alloc(m)
        inc = j % 2 == 1 or (shared_output and j >= 5)
        y = common[:m] if shared_output and j >= 5 else alloc(m)
        for trial in range(n_trials):  # a ring position in [0, n)
            position = rng.randint(n)
            for f in (t.f_cpu, t.f_dev):
                f[xi + trial * n_state] = position
        for key, value in (("n", [n]), ("m", [m]), ("X", [x[0]]), ("Xi", xi), ("inc", [inc]),
                           ("wide", [j != 2]), ("U", u), ("Y", y), ("state", state)):
            fields[key].append(np.asarray(value))
        num = np.arange(n, 0, -1.0) / np.arange(n, 0, -1.0).sum()
        floats["n0"].append([num[0]])
        floats["ndiff"].append([num[-1]])
    t.add("triangle", ints={k: np.concatenate(v) for k, v in fields.items()},
          floats={k: np.concatenate(v) for k, v in floats.items()})
    t.run(250)
    t.assert_equal()
    assert t.dev.stats()["launches_per_step_alone"] == 2 + 1  # (and the step counter)
    t.close()


def dot_block(fields, rows, cols, a, x, y, y_s=1, i=None, i_s=1):
    """Appends a block to a dot_inc's fields: A row-major at ``a``, X contiguous
    at ``x``, Y at ``y`` (stride ``y_s``), starting from I at ``i`` (when given
    and the fields have "I")."""
    for key, value in (("rows", rows), ("cols", cols), ("A", a), ("A_rs", cols), ("A_cs", 1),
                       ("X", x), ("X_s", 1), ("Y", y), ("Y_s", y_s)):
        fields[key].append(value)
    if "I" in fields:
        fields["I"].append(-1 if i is None else i)
        fields["I_s"].append(0 if i is None else i_s)


def run_dot_inc(t, fields, dtype, keep=False):
    """Runs one dot_inc of ``fields`` for two steps on both sides; compares;
    returns the twin open with ``keep``, else closes it."""
    t.add("dot_inc", ints=fields)
    t.run(2)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    t.assert_equal(rtol=tol, atol=tol)
    if keep:
        return t
    t.close()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3, 9])
def test_dot_inc_ragged_blocks(device, dtype, n_trials):
    ragged_dot_inc(device, dtype, n_trials)


@pytest.mark.parametrize("cols_per_lane, max_trials, min_tiles",
                         [(1, 1, 0), (2, 2, 0), (4, 8, 0), (5, 4, 0), (2000, 8, 0), (16, 8, 40),
                          (16, 8, 1 << 30)])
def test_dot_inc_tiling_knobs(device, monkeypatch, cols_per_lane, max_trials, min_tiles):
    """Every tile shape the tuning knobs give (1 to 32 lanes per row, 1 to 8
    trials per tile, fewer trials for more tiles) computes the same products."""
    monkeypatch.setenv("NC_DOT_COLS_PER_LANE", str(cols_per_lane))
    monkeypatch.setenv("NC_DOT_TRIALS", str(max_trials))
    monkeypatch.setenv("NC_DOT_MIN_TILES", str(min_tiles))
    ragged_dot_inc(device, np.float64, 11)


@pytest.mark.parametrize("name, value", [("NC_DOT_TRIALS", "0"), ("NC_DOT_TRIALS", "9"),
                                         ("NC_DOT_COLS_PER_LANE", "x"), ("NC_DOT_DENSE", "3"),
                                         ("NC_DOT_DENSE_TRIALS", "3")])
def test_dot_inc_bad_knob(device, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    t = Twin(device, np.float32, 4, 4)
    with pytest.raises(ValueError, match=f"{name}='{value}': expected an integer"):
        t.dev.add("dot_inc", {"rows": [1], "cols": [1], "A": [0], "A_rs": [1], "A_cs": [1],
                              "X": [1], "X_s": [1], "Y": [4], "Y_s": [1]}, {}, {})
    t.close()


def test_knob_table_matches_docs():
    """docs/cuda.md's table of tuning knobs lists exactly the device
    program's knobs (csrc/cuda/knobs.h), each with its default."""
    text = (Path(__file__).parents[1] / "docs" / "cuda.md").read_text()
    section = text.split("\n## Tuning knobs", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(NC_\w+)` \| (\d+)", section, re.M)
    knobs = _native.device_knobs()
    words = "twelve thirteen fourteen fifteen sixteen seventeen eighteen".split()
    assert f"reads {words[len(knobs) - 12]} integers" in section
    assert sorted((name, int(default)) for name, default in documented) == sorted(
        (name, default) for name, default, _, _ in knobs)
    for name, default, lo, hi in knobs:
        assert lo <= default <= hi, name


@pytest.mark.parametrize("value", ["-1", "x", "65537"])
def test_bad_phase_blocks_knob(device, monkeypatch, value):
    """NC_PHASE_BLOCKS is read when a program is made (on the emulator too)."""
    monkeypatch.setenv("NC_PHASE_BLOCKS", value)
    with pytest.raises(ValueError, match=f"NC_PHASE_BLOCKS='{value}': expected an integer"):
        Twin(device, np.float32, 4, 4)


@pytest.mark.parametrize("name, value", [("NC_NEURON_TRIALS", "9"), ("NC_NEURON_DEFER", "2")])
def test_bad_neuron_knobs(device, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"{name}='{value}': expected an integer"):
        neuron_twin(device, nengo.LIF, np.float32, n_trials=2)


def ragged_dot_inc(device, dtype, n_trials, keep=False, shapes=None):
    # (rows, cols): encoder-like, decoder-like, scalar, empty, wide (several X chunks)
    shapes = shapes or [(40, 3), (3, 70), (1, 1), (0, 5), (4, 0), (5, 1100), (130, 17)]
    n_shared = sum(r * c for r, c in shapes) + 10
    n_state = sum(r + c for r, c in shapes) * 2 + sum(r * c for r, c in shapes) + 10
    t = Twin(device, dtype, n_shared, n_state, n_trials=n_trials, seed=n_trials)
    fields = {k: [] for k in ("rows", "cols", "A", "A_rs", "A_cs", "X", "X_s", "Y", "Y_s")}
    sh, st = 0, n_shared
    for b, (r, c) in enumerate(shapes):
        if b % 2 == 0:  # shared matrix, row-major
            a, a_rs, a_cs = sh, c, 1
            sh += r * c
        else:  # per-trial matrix (learned weights), column-major
            a, a_rs, a_cs = st, 1, max(r, 1)
            st += r * c
        x_s = 1 + b % 2
        fields["rows"].append(r)
        fields["cols"].append(c)
        fields["A"].append(a)
        fields["A_rs"].append(a_rs)
        fields["A_cs"].append(a_cs)
        fields["X"].append(st)
        fields["X_s"].append(x_s)
        st += max(c * x_s, 1)
        fields["Y"].append(st + max(r, 1) - 1)  # a reversed view: negative stride
        fields["Y_s"].append(-1)
        st += max(r, 1)
    assert sh <= n_shared and st <= n_shared + n_state
    return run_dot_inc(t, fields, dtype, keep)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3, 9])
def test_dot_inc_from_init(device, dtype, n_trials):
    dot_inc_from_init(device, dtype, n_trials)


def dot_inc_from_init(device, dtype, n_trials, keep=False, shapes=None):
    """Blocks that start from I (fusion.CopyThenDotInc) next to blocks that add:
    a shared I (a bias) and a reversed per-trial I; tiles of several rows and
    trials and a wide block (several X chunks)."""
    shapes = shapes or [(40, 3), (3, 70), (5, 1100), (130, 17)]
    n_shared = sum(r * c + r for r, c in shapes) + 10
    n_state = sum(3 * r + c for r, c in shapes) + 10
    t = Twin(device, dtype, n_shared, n_state, n_trials=n_trials, seed=n_trials + 7)
    fields = {k: [] for k in ("rows", "cols", "A", "A_rs", "A_cs", "X", "X_s", "Y", "Y_s",
                              "I", "I_s")}
    sh, st = 0, n_shared
    for b, (r, c) in enumerate(shapes):
        a, x, y = sh, st, st + c
        sh, st = sh + r * c, st + c + r
        if b == 0:  # adds to Y
            dot_block(fields, r, c, a, x, y)
        elif b % 2:  # a shared constant
            dot_block(fields, r, c, a, x, y, i=sh)
            sh += r
        else:  # per trial, reversed
            dot_block(fields, r, c, a, x, y, i=st + 2 * r - 1, i_s=-2)
            st += 2 * r
    assert sh <= n_shared and st <= n_shared + n_state
    return run_dot_inc(t, fields, dtype, keep)


@pytest.mark.parametrize("cols_per_lane", [16, 64])
@pytest.mark.parametrize("build", [ragged_dot_inc, dot_inc_from_init], ids=["ragged", "init"])
def test_dot_rows_as_phases_equal_tiles(device, monkeypatch, build, cols_per_lane):
    """A mat-vec small enough to be a phase (NC_PHASE_MAX; one thread per row
    and trial, DotRows) sums in its tile's order: the tiled kernel's bits for
    1 to 16 lanes per row (32 never run as phases), shared and per-trial
    matrices, strided X, reversed Y, from I or adding."""
    monkeypatch.setenv("NC_DOT_COLS_PER_LANE", str(cols_per_lane))
    # 1 to 16 lanes per row at 16 columns per lane
    shapes = [(40, 3), (3, 70), (1, 1), (7, 17), (5, 40), (2, 200), (6, 130)]
    runs = {}
    for phase_max in (0, 1 << 20):
        monkeypatch.setenv("NC_PHASE_MAX", str(phase_max))
        t = build(device, np.float32, 3, keep=True, shapes=shapes)
        runs[phase_max] = (t.f_dev.copy(), t.dev.stats()["launches_per_graph"])
        t.close()
    np.testing.assert_array_equal(runs[1 << 20][0], runs[0][0])
    assert runs[1 << 20][1] < runs[0][1]  # the product ran as a phase


# (rows, cols) of dense mat-vecs, by the rows per tile they get: 128 rows (8
# trials a tile), 16 (64 trials) and 8 (128 trials); columns past one chunk of
# shared memory (32 float32 or 16 float64 columns), partial chunks, one column
DENSE_SHAPES = {
    "rt128": [(40, 3), (33, 70), (1, 1), (130, 17), (0, 5), (4, 0), (128, 33)],
    "rt16": [(16, 500), (9, 1), (13, 31), (16, 16)],
    "rt8": [(8, 100), (3, 40), (1, 1), (7, 17)],
}


def dense_dot_inc(device, dtype, n_trials, shapes, keep=False):
    """A mat-vec of shared matrices (dense tiles need them): row- and
    column-major A, strided X, reversed Y, from a shared I, from a reversed
    per-trial I, and adding to Y."""
    n_shared = sum(r * c + r for r, c in shapes) + 10
    n_state = sum(2 * c + 3 * r for r, c in shapes) + 10
    t = Twin(device, dtype, n_shared, n_state, n_trials=n_trials, seed=n_trials + 3)
    fields = {k: [] for k in ("rows", "cols", "A", "A_rs", "A_cs", "X", "X_s", "Y", "Y_s",
                              "I", "I_s")}
    sh, st = 0, n_shared
    for b, (r, c) in enumerate(shapes):
        a_rs, a_cs = (c, 1) if b % 2 == 0 else (1, max(r, 1))
        x, x_s = st, 1 + b % 2
        y, y_s = st + 2 * c + max(r, 1) - 1, -1
        for key, value in (("rows", r), ("cols", c), ("A", sh), ("A_rs", a_rs), ("A_cs", a_cs),
                           ("X", x), ("X_s", x_s), ("Y", y), ("Y_s", y_s)):
            fields[key].append(value)
        sh, st = sh + r * c, st + 2 * c + max(r, 1)
        if b % 3 == 0 or r * c == 0:  # adds to Y (an empty block must)
            fields["I"].append(-1)
            fields["I_s"].append(0)
        elif b % 3 == 1:  # a shared constant
            fields["I"].append(sh)
            fields["I_s"].append(1)
            sh += r
        else:  # per trial, reversed
            fields["I"].append(st + 2 * max(r, 1) - 1)
            fields["I_s"].append(-2)
            st += 2 * max(r, 1)
    assert sh <= n_shared and st <= n_shared + n_state
    return run_dot_inc(t, fields, dtype, keep)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3, 9, 70])
@pytest.mark.parametrize("shapes", sorted(DENSE_SHAPES))
@pytest.mark.parametrize("tpt", [2, 4, 8])
def test_dense_dot_inc(device, monkeypatch, dtype, n_trials, shapes, tpt):
    """Dense tiles (NC_DOT_DENSE=2: wherever the weights are shared) give the
    CPU's products for every tile shape (rows, trials per thread): rows and
    trials past the last tile's, several column chunks through a ring of stage
    buffers (fewer buffers than chunks: rt128, rt16), strided and reversed
    views, from I or adding."""
    monkeypatch.setenv("NC_DOT_DENSE", "2")
    monkeypatch.setenv("NC_DOT_DENSE_TRIALS", str(tpt))
    monkeypatch.setenv("NC_PHASE_MAX", "0")
    t = dense_dot_inc(device, dtype, n_trials, DENSE_SHAPES[shapes], keep=True)
    stats = t.dev.stats()
    assert stats["dense_products"] == 1
    assert 2 <= stats["dense_stages"] <= 8  # every shape has blocks of several chunks
    t.close()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_stages(device, monkeypatch, dtype):
    """A dense tile keeps as many chunks in flight as its shared memory
    budget allows, at most 8 and at most one a chunk: the chain's decoders'
    shape (16 rows of 500 columns, 2 trials a thread, 4.7 KB a stage) gets 8;
    8 trials a thread (10.8 KB a stage in float32) fewer; one chunk, one
    stage."""
    monkeypatch.setenv("NC_DOT_DENSE", "2")
    monkeypatch.setenv("NC_PHASE_MAX", "0")
    stages = {}
    for tpt, shapes in ((2, [(16, 500)]), (8, [(16, 500)]), (2, [(16, 16), (9, 1)])):
        monkeypatch.setenv("NC_DOT_DENSE_TRIALS", str(tpt))
        t = dense_dot_inc(device, dtype, 16, shapes, keep=True)
        stages[tpt, len(shapes)] = t.dev.stats()["dense_stages"]
        t.close()
    assert stages[2, 1] == 8
    assert 2 <= stages[8, 1] < 8
    assert stages[2, 2] == 1


@pytest.mark.parametrize("n_trials, shapes, dense", [
    # 64 rows a tile; 2 trials a thread (4 a tile) for 128 tiles, which 64 blocks
    # of one row tile do not reach: 2 trials fill half a tile, 1 does not
    (2, [(40, 3)] * 64, True),
    (1, [(40, 3)] * 64, False),
    # 16 rows a tile, 8 trials a thread (64 a tile): 2 trial tiles of 64 blocks
    (65, [(16, 20)] * 64, True),
    # 16 rows, 2 trials a thread (16 a tile): at least 8 trials
    (8, [(16, 20)] * 64, True),
    (7, [(16, 20)] * 64, False),
    (16, [(16, 20)] * 63, False),  # 63 tiles: fewer than 64
    (32, [(16, 20)] * 32, True),  # 2 trial tiles of 32 blocks: 64
    (8, [(40, 3)] * 64 + [(65, 3)], False),  # 128 rows a tile, fewer than half used
], ids=["rows40-2", "rows40-1", "rows16-65", "rows16-8", "rows16-7", "63tiles", "64tiles",
        "halfempty"])
def test_dense_dot_inc_where_it_pays(device, monkeypatch, n_trials, shapes, dense):
    """With NC_DOT_DENSE=1 a mat-vec of shared matrices runs as dense tiles
    when its trials fill at least half of a tile's, its tiles at least half
    their rows and there are at least 64 tiles (trials per thread 8, 4 or 2:
    the most that give 128 tiles); per-trial matrices never do, nor anything
    by default (NC_DOT_DENSE=0 until timed on a GPU)."""
    t = dense_dot_inc(device, np.float32, 70, DENSE_SHAPES["rt16"], keep=True)
    assert t.dev.stats()["dense_products"] == 0
    t.close()
    monkeypatch.setenv("NC_DOT_DENSE", "1")
    t = dense_dot_inc(device, np.float32, n_trials, shapes, keep=True)
    assert t.dev.stats()["dense_products"] == int(dense)
    t.close()
    monkeypatch.setenv("NC_DOT_DENSE", "2")
    t = ragged_dot_inc(device, np.float32, 9, keep=True)  # (some matrices per trial)
    assert t.dev.stats()["dense_products"] == 0
    t.close()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", ["rt128", "rt8"])
def test_dense_rows_as_phases_equal_tiles(device, monkeypatch, dtype, shapes):
    """A dense mat-vec run as a phase (DotRows, one lane a row) gives the dense
    tiles' bits."""
    monkeypatch.setenv("NC_DOT_DENSE", "2")
    runs = {}
    for phase_max in (0, 1 << 20):
        monkeypatch.setenv("NC_PHASE_MAX", str(phase_max))
        t = dense_dot_inc(device, dtype, 9, DENSE_SHAPES[shapes], keep=True)
        runs[phase_max] = (t.f_dev.copy(), t.dev.stats()["launches_per_graph"])
        t.close()
    np.testing.assert_array_equal(runs[1 << 20][0], runs[0][0])
    assert runs[1 << 20][1] < runs[0][1]  # the product ran as a phase


def test_sparse_dot_inc(device):
    """CSR mat-vec; its values replaced between runs (table "data": training,
    load_params), a table of the wrong size refused on both backends."""
    t = Twin(device, np.float64, 0, 40, n_trials=2)
    index = t.add("sparse_dot_inc", ints={"indptr": [0, 2, 2, 5], "indices": [0, 3, 1, 2, 3]},
                  floats={"data": [0.5, -1, 2, 0.25, 1]},
                  scalars={"X": 10, "X_s": 2, "Y": 30, "Y_s": 1, "cols": 4})
    t.run(3)
    t.assert_equal(rtol=1e-12, atol=1e-12)
    before = t.f_cpu.copy()
    t.set_table(index, "data", np.array([1.5, 2, -3, 0.5, 4.0]))
    t.run(2)
    t.assert_equal(rtol=1e-12, atol=1e-12)
    y = before[30:33]  # (the X elements read stay as they were: only Y changes)
    x = before[10:18:2]
    dense = np.array([[1.5, 0, 0, 2], [0, 0, 0, 0], [0, -3, 0.5, 4.0]])
    np.testing.assert_allclose(t.f_cpu[30:33], y + 2 * dense @ x, rtol=1e-12)
    for backend in (t.cpu, t.dev):
        with pytest.raises(ValueError, match="sparse_dot_inc: data of 4 values for 5 nonzeros"):
            backend.set_table(index, "data", np.zeros(4))
    t.close()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_trials, shared_w", [(1, True), (3, True), (9, True), (3, False)])
@pytest.mark.parametrize("set_", [False, True], ids=["inc", "set"])
@pytest.mark.parametrize("dims", [(1, 2), (3,)], ids=["1d2d", "3d"])
def test_conv_inc(device, dtype, n_trials, shared_w, set_, dims):
    """Random (transposed, grouped, strided) convolutions: the device sums each
    output's terms in the CPU kernel's order (csrc/kernels/conv.h), in tiles of
    1, 2 or 4 filters and 1, 4 or 8 trials (shared weights) or one output
    element per thread (per-trial weights); adding to Y or, with ``set``,
    writing it.  The CPU kernel fuses multiply-adds, so each sum of at most
    4 x 4 taps x 3 channels terms of size <= 1 (4 x 4 x 4 taps in 3-D) may
    differ by about that many float32 roundings."""
    rng = np.random.RandomState(5 + n_trials)
    max_terms = 4 ** len(kc.random_conv(rng, dims=dims).kernel_size) * 3
    for _ in range(12):
        conv = kc.random_conv(rng, filters_per_group=(1, 2, 3, 4, 6, 8), dims=dims)
        n_w = int(np.prod(conv.kernel_shape))
        n_io = 2 * conv.size_in + conv.size_out
        if shared_w:
            t = Twin(device, dtype, n_w, n_io, n_trials=n_trials)
            w, x = 0, n_w
        else:
            t = Twin(device, dtype, 0, n_io + n_w, n_trials=n_trials)
            w, x = n_io, 0
        y = x + n_io - 1  # X strided, Y reversed
        ints, scalars = kc.conv_fields(conv, x, 2, y, -1, w)
        t.add("conv_inc", ints=ints, scalars={**scalars, "set": int(set_)})
        t.run(2)
        eps = np.finfo(dtype).eps
        t.assert_equal(rtol=0, atol=max_terms * eps)
        t.close()


@pytest.mark.parametrize("min_threads", [1 << 12, 1 << 30])
def test_conv_inc_min_threads(device, monkeypatch, min_threads):
    """NC_CONV_MIN_THREADS: smaller register tiles (fewer trials, then fewer
    filters a thread) until a launch has that many threads; the same sums."""
    monkeypatch.setenv("NC_CONV_MIN_THREADS", str(min_threads))
    test_conv_inc(device, np.float32, 9, True, False, (1, 2))


def conv_pools(device, monkeypatch, dtype, n_trials, conv, dense, set_=False):
    """The device pools after two steps of ``conv`` (shared weights, X strided,
    Y reversed) with NC_CONV_DENSE=``dense``; checked against the CPU to
    float rounding (its kernel fuses multiply-adds); the program's stats."""
    monkeypatch.setenv("NC_CONV_DENSE", str(dense))
    n_w = int(np.prod(conv.kernel_shape))
    n_io = 2 * conv.size_in + conv.size_out
    t = Twin(device, dtype, n_w, n_io, n_trials=n_trials, seed=7)
    ints, scalars = kc.conv_fields(conv, n_w, 2, n_w + n_io - 1, -1, 0)
    t.add("conv_inc", ints=ints, scalars={**scalars, "set": int(set_)})
    t.run(2)
    terms = int(np.prod(conv.kernel_size)) * conv.input_shape.n_channels // conv.groups
    t.assert_equal(rtol=0, atol=terms * np.finfo(dtype).eps * 4)
    out = t.f_dev.copy(), t.dev.stats()
    t.close()
    return out


# convolutions of many terms (several chunks), filters past one tile of 64,
# several filter tiles a group, a partial last one
CONV_DENSE_CASES = {
    "convnet": lambda: nengo.Convolution(64, (13, 13, 32), strides=(2, 2)),
    "groups": lambda: nengo.Convolution(140, (5, 7, 6), kernel_size=(3, 2), groups=2,
                                        padding="same"),
    "first": lambda: nengo.Convolution(32, (1, 9, 9), kernel_size=(3, 3), channels_last=False),
    "transpose": lambda: nengo.transforms.ConvolutionTranspose(
        12, (4, 4, 10), kernel_size=(3, 3), strides=(2, 2)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_trials", [1, 3, 9, 70])
@pytest.mark.parametrize("case", sorted(CONV_DENSE_CASES))
def test_conv_dense(device, monkeypatch, dtype, n_trials, case):
    """NC_CONV_DENSE=2: a convolution with shared weights as dense tiles
    (kernel_conv_dense.h) gives the register tiles' bits (NC_CONV_DENSE=0):
    every sum over its terms in order from zero, whatever the tile shape
    (8 to 64 filters, 1 to 8 trials a thread), chunks of terms through the
    ring of stage buffers, trials past the minibatch, filters past a group."""
    conv = CONV_DENSE_CASES[case]()
    tiles, _ = conv_pools(device, monkeypatch, dtype, n_trials, conv, 0)
    dense, stats = conv_pools(device, monkeypatch, dtype, n_trials, conv, 2)
    assert stats["dense_convolutions"] == 1
    np.testing.assert_array_equal(dense, tiles)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("set_", [False, True], ids=["inc", "set"])
def test_conv_dense_random(device, monkeypatch, dtype, set_):
    """Random (transposed, grouped, strided) convolutions as dense tiles: the
    register tiles' bits, adding to Y or setting it."""
    rng = np.random.RandomState(11)
    for _ in range(10):
        conv = kc.random_conv(rng, filters_per_group=(1, 2, 3, 4, 6, 8, 9), dims=(1, 2))
        tiles, _ = conv_pools(device, monkeypatch, dtype, 5, conv, 0, set_)
        dense, stats = conv_pools(device, monkeypatch, dtype, 5, conv, 2, set_)
        assert stats["dense_convolutions"] == 1
        np.testing.assert_array_equal(dense, tiles)


@pytest.mark.parametrize("value", ["3", "-1", "x"])
def test_conv_dense_bad_knob(device, monkeypatch, value):
    with pytest.raises(ValueError, match=f"NC_CONV_DENSE='{value}': expected an integer"):
        conv_pools(device, monkeypatch, np.float32, 3, CONV_DENSE_CASES["first"](), value)


@pytest.mark.parametrize("n_trials, dense", [(64, True), (16, True), (4, False), (1, False)])
def test_conv_dense_where_it_pays(device, monkeypatch, n_trials, dense):
    """NC_CONV_DENSE=1 takes dense tiles where they fill at least half of a
    tile's trials (the convnet's second layer: 64 filters, 8 trial lanes of 1
    to 8 trials) and filters, with at least 64 tiles; nothing by default."""
    conv = CONV_DENSE_CASES["convnet"]()
    _, stats = conv_pools(device, monkeypatch, np.float32, n_trials, conv, 0)
    assert stats["dense_convolutions"] == 0
    _, stats = conv_pools(device, monkeypatch, np.float32, n_trials, conv, 1)
    assert stats["dense_convolutions"] == int(dense)
    small = nengo.Convolution(3, (9, 9, 4), kernel_size=(3, 3))  # 3 of a tile's 8 filters
    _, stats = conv_pools(device, monkeypatch, np.float32, n_trials, small, 1)
    assert stats["dense_convolutions"] == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_learning_rls(device, dtype):
    """RLS's three device launches (P r, the gain, the updates) against the CPU
    kernel; delta transposed, P symmetric and well conditioned, 2 trials."""
    n, m, trials = 7, 3, 2
    t = Twin(device, dtype, 0, n * n + n + m + m * n, n_trials=trials)
    size = t.n_state
    for k in range(trials):
        P = t.f_cpu[k * size: k * size + n * n].reshape(n, n)
        P[...] = (P + P.T) / 2 + 3 * np.eye(n)
    t.f_dev[:] = t.f_cpu
    d = n * n + n + m
    t.add("learning_rls", scalars=dict(n=n, m=m, P=0, P_rs=n, P_cs=1, r=n * n, r_s=1,
                                       error=n * n + n, error_s=1, delta=d, delta_rs=1,
                                       delta_cs=m))
    t.run(3)
    t.assert_equal(rtol=0, atol=64 * np.finfo(dtype).eps)
    t.close()


def test_neurons_lif(device):
    n = 50
    t = Twin(device, np.float32, 0, 4 * n, n_trials=2)
    rng = np.random.RandomState(1)
    for trial in range(2):  # refractory times >= 0, currents around threshold
        base = trial * 4 * n
        t.f_cpu[base + 3 * n: base + 4 * n] = rng.uniform(0, 0.002, n)
        t.f_cpu[base: base + n] = rng.uniform(0, 5, n)
    t.f_dev[:] = t.f_cpu
    t.add("neurons_lif",
          ints={"J": np.arange(n), "out": np.arange(n, 2 * n),
                "voltage": np.arange(2 * n, 3 * n), "refractory_time": np.arange(3 * n, 4 * n)},
          floats={"tau_rc": np.full(n, 0.02), "tau_ref": np.full(n, 0.002),
                  "min_voltage": np.zeros(n), "spike_height": np.full(n, 1000.0)})
    t.run(20)
    t.assert_equal(rtol=1e-5, atol=1e-5)
    t.close()


def dot_then_lif(device, dtype, fuse, cover, monkeypatch, recurrent=False, dense=0):
    """A ragged mat-vec from a bias (I) writing the LIF inputs J (one block
    reversed), then the LIF update: returns (twin after 10 steps, launches per
    step, which neurons spiked).  ``cover`` neurons of 45 get their input from
    the mat-vec; ``recurrent``: the first block reads the outputs of neurons
    20-22 (whose rows are in another tile); ``dense``: dense tiles of that
    many trials per thread (else lane tiles)."""
    monkeypatch.setenv("NC_FUSE_NEURONS", str(fuse))
    monkeypatch.setenv("NC_PHASE_MAX", "0")  # (both would be phases of one launch)
    monkeypatch.setenv("NC_DOT_DENSE", "2" if dense else "0")
    monkeypatch.setenv("NC_DOT_DENSE_TRIALS", str(dense))
    n, trials = 45, 3
    shapes = [(20, 3), (5, 70), (cover - 25, 1)]
    n_shared = sum(r * c + r for r, c in shapes)
    n_state = 74 + 4 * n
    t = Twin(device, dtype, n_shared, n_state, n_trials=trials, seed=cover)
    xs, j0 = n_shared, n_shared + 74  # X: 74 state elements; then J, out, V, ref
    for trial in range(trials):  # refractory times >= 0
        base = n_shared + trial * n_state + 74
        t.f_cpu[base + 3 * n: base + 4 * n] = np.abs(t.f_cpu[base + 3 * n: base + 4 * n]) / 500
    t.f_cpu[:n_shared] *= 3  # currents of a few units: some neurons spike
    t.f_dev[:] = t.f_cpu
    fields = {k: [] for k in ("rows", "cols", "A", "A_rs", "A_cs", "X", "X_s", "Y", "Y_s",
                              "I", "I_s")}
    sh, x, row0 = 0, xs, 0
    for b, (r, c) in enumerate(shapes):
        reverse = b == 0
        dot_block(fields, r, c, sh, j0 + n + 20 if recurrent and b == 0 else x,
                  j0 + row0 + (r - 1 if reverse else 0), y_s=-1 if reverse else 1, i=sh + r * c)
        sh, x, row0 = sh + r * c + r, x + c, row0 + r
    t.add("dot_inc", ints=fields)
    t.add("neurons_lif",
          ints={"J": j0 + np.arange(n), "out": j0 + n + np.arange(n),
                "voltage": j0 + 2 * n + np.arange(n), "refractory_time": j0 + 3 * n + np.arange(n)},
          floats={"tau_rc": np.full(n, 0.02), "tau_ref": np.full(n, 0.002),
                  "min_voltage": np.zeros(n), "spike_height": np.full(n, 1000.0)})
    spiked = np.zeros(n, dtype=bool)  # any trial, any step
    for _ in range(10):
        t.run(1)
        out = t.f_dev[n_shared:].reshape(trials, n_state)[:, 74 + n: 74 + 2 * n]
        spiked |= np.any(out > 0, axis=0)
    assert t.dev.stats()["dense_products"] == int(dense > 0)
    return t, t.dev.stats()["launches_per_step"], spiked


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dense", [0, 2, 4, 8])
def test_dot_then_neurons_fused(device, dtype, dense, monkeypatch):
    """NC_FUSE_NEURONS=1: the LIF update runs inside the mat-vec that writes all
    its inputs (one launch fewer) and gives the CPU's numbers, the very bits of
    the two apart; when the mat-vec writes only some inputs the two stay
    apart.  With dense tiles (3 trials: 2, 4 or 8 a thread, the last group
    partial or past the last trial) a thread updates its trials of a neuron
    at once (NeuronEpilogue::trials)."""
    tol = 1e-4 if dtype == np.float32 else 1e-12
    launches, state = {}, {}
    for fuse, cover in [(0, 45), (1, 45), (1, 40)]:
        t, launches[fuse, cover], spiked = dot_then_lif(device, dtype, fuse, cover, monkeypatch,
                                                        dense=dense)
        t.assert_equal(rtol=tol, atol=tol)
        assert 0 < spiked.sum() < len(spiked)  # spiking and silent neurons
        state[fuse, cover] = t.f_dev.copy()
        t.close()
    np.testing.assert_array_equal(state[1, 45], state[0, 45])
    assert launches[1, 45] == launches[0, 45] - 1
    assert launches[1, 40] == launches[0, 45]
    # inputs from the neurons' own outputs: the update must wait for every tile
    t, fused_launches, _ = dot_then_lif(device, dtype, 1, 45, monkeypatch, recurrent=True,
                                        dense=dense)
    t.assert_equal(rtol=tol, atol=tol)
    t.close()
    assert fused_launches == launches[0, 45]


def dot_then_filters(device, dtype, fuse, monkeypatch, rest=True, recurrent=False):
    """A ragged mat-vec writing 26 outputs (one block reversed, 3 trials), then a
    lowpass of each; with ``rest``, one more lowpass of an output and one of an
    address the mat-vec does not write (both left to a launch after it);
    ``recurrent``: the mat-vec reads a filter's output.  Phases off, so each
    launch counts.  Returns (twin after 7 steps, launches per step)."""
    monkeypatch.setenv("NC_FUSE_FILTERS", str(fuse))
    monkeypatch.setenv("NC_PHASE_MAX", "0")
    shapes = [(20, 3), (5, 70), (1, 40)]
    n_out, n_in = 26, 113
    n_shared = sum(r * c for r, c in shapes)
    # state: X (n_in), outputs, one more input, filter states and outputs
    n_filters = n_out + (2 if rest else 0)
    xs, ys, extra = n_shared, n_shared + n_in, n_shared + n_in + n_out
    states, outs = extra + 1, extra + 1 + n_filters
    t = Twin(device, dtype, n_shared, n_in + n_out + 1 + 2 * n_filters, n_trials=3)
    fields = {k: [] for k in ("rows", "cols", "A", "A_rs", "A_cs", "X", "X_s", "Y", "Y_s")}
    sh, x, row0 = 0, xs, 0
    for b, (r, c) in enumerate(shapes):
        reverse = b == 0
        dot_block(fields, r, c, sh, outs + n_filters - c if recurrent and b == 2 else x,
                  ys + row0 + (r - 1 if reverse else 0), y_s=-1 if reverse else 1)
        sh, x, row0 = sh + r * c, x + c, row0 + r
    t.add("dot_inc", ints=fields)
    u = list(ys + np.arange(n_out)) + ([ys + 7, extra] if rest else [])
    lowpass(t, u, outs + np.arange(n_filters), states + np.arange(n_filters))
    for _ in range(7):
        t.run(1)
    return t, t.dev.stats()["launches_per_step"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dot_then_filters_fused(device, dtype, monkeypatch):
    """NC_FUSE_FILTERS=1: a filter of a mat-vec's outputs runs inside the
    mat-vec's kernel (one launch fewer), bit for bit as apart; elements whose
    input the mat-vec does not write (or whose input another element already
    filters in the kernel) run in a launch after it; a filter whose output
    the mat-vec reads stays apart."""
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for rest in (False, True):
        runs = {}
        for fuse in (0, 1):
            t, launches = dot_then_filters(device, dtype, fuse, monkeypatch, rest=rest)
            t.assert_equal(rtol=tol, atol=tol)
            runs[fuse] = (t.f_dev.copy(), launches)
            t.close()
        np.testing.assert_array_equal(runs[1][0], runs[0][0])
        assert runs[1][1] == runs[0][1] - (0 if rest else 1)
    t, launches = dot_then_filters(device, dtype, 1, monkeypatch, recurrent=True)
    t.assert_equal(rtol=tol, atol=tol)
    t.close()
    assert launches == runs[0][1]


def neuron_twin(device, neuron_type, dtype, n_trials, scattered=False, shared_input=False):
    """A twin with one update of ``neuron_type`` over 37 neurons: random currents
    (held for 6 steps) and states, two parameter sets; ``scattered``: the
    neurons' addresses in reverse order (read from an address array);
    ``shared_input``: the currents at shared addresses, one for all trials."""
    kind, state_names, param_names = kn.NEURON_KERNELS[neuron_type]
    n = 37
    rng = np.random.RandomState(5)
    width = (2 + len(state_names)) * n
    n_shared = n if shared_input else 0
    t = Twin(device, dtype, n_shared, width, n_trials=n_trials)
    if shared_input:
        t.f_cpu[:n] = kn.random_currents(rng, n, neuron_type)
    for trial in range(n_trials):
        base = n_shared + trial * width
        t.f_cpu[base: base + n] = kn.random_currents(rng, n, neuron_type)
        for i, name in enumerate(state_names):
            start = base + (2 + i) * n
            t.f_cpu[start: start + n] = kn.random_state(rng, n, name, neuron_type)
    t.f_dev[:] = t.f_cpu
    types = [neuron_type(**params) for params in kn.PARAMS[neuron_type]]
    floats = kn.split_params(types, param_names, n)
    order = np.arange(n)[::-1] if scattered else np.arange(n)
    # (with shared_input: the state addresses after the shared ones, J in them)
    ints = {"J": order, "out": n_shared + n + order}
    ints.update({name: n_shared + (2 + i) * n + order for i, name in enumerate(state_names)})
    t.add(kind, ints=ints, floats=floats)
    t.run(6)
    return t


# the same math on both sides; the device's transcendentals may differ by an
# ulp or two (docs/cuda.md, "Precision"), which a spike threshold can amplify
# only by a whole spike: none at these seeded inputs
NEURON_TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("neuron_type", kn.TYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_neuron_kernels_equal_cpu(device, neuron_type, dtype):
    """Every neuron kernel on the device against its CPU twin (an odd size, 2 trials)."""
    t = neuron_twin(device, neuron_type, dtype, n_trials=2)
    t.assert_equal(rtol=NEURON_TOL[dtype], atol=NEURON_TOL[dtype])
    t.close()


@pytest.mark.parametrize("neuron_type", kn.TYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_trials, n_trials, expect", [(2, 5, 2), (8, 9, 8), (8, 3, 4),
                                                          (3, 9, 2)])
def test_neuron_trials(device, monkeypatch, neuron_type, dtype, max_trials, n_trials, expect):
    """NC_NEURON_TRIALS: a thread updates a neuron in several trials (the least
    power of two covering the minibatch, at most the knob, rounded down to a
    power of two), with a partial last group; the CPU's numbers and the very
    bits of one trial a thread, on consecutive and scattered addresses."""
    monkeypatch.setenv("NC_PHASE_MAX", "0")  # a launch of its own, not a phase
    runs = {}
    for knob in (1, max_trials):
        monkeypatch.setenv("NC_NEURON_TRIALS", str(knob))
        for scattered in (False, True):
            t = neuron_twin(device, neuron_type, dtype, n_trials, scattered=scattered)
            assert t.dev.stats()["neuron_trials"] == (expect if knob == max_trials else 1)
            t.assert_equal(rtol=NEURON_TOL[dtype], atol=NEURON_TOL[dtype])
            runs[knob, scattered] = t.f_dev.copy()
            t.close()
    for scattered in (False, True):
        np.testing.assert_array_equal(runs[max_trials, scattered], runs[1, scattered])


DEFERRABLE = [nengo.LIF, nengo.AdaptiveLIF]


@pytest.mark.parametrize("neuron_type", kn.TYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_trials, n_trials", [(2, 5), (8, 9), (8, 19), (4, 3)])
def test_neuron_defer(device, monkeypatch, neuron_type, dtype, max_trials, n_trials):
    """NC_NEURON_DEFER=1: a thread of several trials of a LIF-like neuron runs
    the rare branches (expm1 of a partial step, the spike time) once for each
    trial that needs them, after the common stages of all its trials: the
    CPU's numbers and the very bits of the per-trial order, on consecutive and
    scattered addresses, partial last groups included.  Other neuron types
    ignore the knob."""
    monkeypatch.setenv("NC_PHASE_MAX", "0")  # a launch of its own, not a phase
    monkeypatch.setenv("NC_NEURON_TRIALS", str(max_trials))
    deferrable = neuron_type in DEFERRABLE
    for scattered in (False, True):
        runs = {}
        for defer in (0, 1):
            monkeypatch.setenv("NC_NEURON_DEFER", str(defer))
            t = neuron_twin(device, neuron_type, dtype, n_trials, scattered=scattered)
            assert t.dev.stats()["deferred_neurons"] == int(defer and deferrable)
            t.assert_equal(rtol=NEURON_TOL[dtype], atol=NEURON_TOL[dtype])
            runs[defer] = t.f_dev.copy()
            t.close()
        np.testing.assert_array_equal(runs[1], runs[0])
    if deferrable and n_trials >= 9:  # rare branches taken, by several trials of a neuron
        kind, state_names, _ = kn.NEURON_KERNELS[neuron_type]
        width = (2 + len(state_names)) * 37
        per_trial = runs[0].reshape(n_trials, width)
        spikes = per_trial[:, 37:74] > 0
        assert spikes.any(axis=0).sum() >= 3 and (spikes.sum(axis=0) >= 2).any()


@pytest.mark.parametrize("neuron_type", [nengo.LIF, nengo.SpikingRectifiedLinear, nengo.Tanh],
                         ids=lambda t: t.__name__)
@pytest.mark.parametrize("knobs", [("1", "0"), ("8", "0"), ("8", "1"), ("4", "1")])
def test_neuron_trials_shared_input(device, monkeypatch, neuron_type, knobs):
    """A neuron update whose currents are at shared addresses (one value for
    all trials; the states per trial), in trial groups with and without
    deferred rare branches: the CPU's numbers."""
    monkeypatch.setenv("NC_PHASE_MAX", "0")
    monkeypatch.setenv("NC_NEURON_TRIALS", knobs[0])
    monkeypatch.setenv("NC_NEURON_DEFER", knobs[1])
    t = neuron_twin(device, neuron_type, np.float32, 7, scattered=True, shared_input=True)
    t.assert_equal(rtol=NEURON_TOL[np.float32], atol=NEURON_TOL[np.float32])
    t.close()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dense", [2, 8])
def test_dense_neuron_epilogue_defers(device, dtype, dense, monkeypatch):
    """NC_NEURON_DEFER=1 with dense tiles fused with the LIF update: each tile
    thread defers the rare branches over its trials; the same bits."""
    state = {}
    for defer in (0, 1):
        monkeypatch.setenv("NC_NEURON_DEFER", str(defer))
        t, _, spiked = dot_then_lif(device, dtype, 1, 45, monkeypatch, dense=dense)
        assert 0 < spiked.sum() < len(spiked)
        assert t.dev.stats()["deferred_neurons"] == defer
        state[defer] = t.f_dev.copy()
        t.close()
    np.testing.assert_array_equal(state[1], state[0])


def test_process_table(device):
    """Periodic (WhiteSignal) and per-step (WhiteNoise) rows per trial, per-step
    rows shared by all trials (PresentInput), re-set between runs."""
    t = Twin(device, np.float64, 0, 12, n_trials=2, n_int_state=1)
    t.f_cpu[0::12] = 0.0
    t.f_dev[:] = t.f_cpu
    t.add("time_update", scalars={"step": 0, "time": 0})
    i = t.add("process_table", ints={"Y": [1, 2, 3, 4, 5, 6, 7], "m": [2, 3, 2],
                                    "period": [4, 0, 0], "inc": [0, 1, 0], "shared": [0, 0, 1]},
              scalars={"time": 0})
    rng = np.random.RandomState(3)
    for steps in (3, 5):
        size = steps * 2 + 2 * (4 * 2 + steps * 3)
        t.set_table(i, "table", rng.uniform(-1, 1, size))
        t.run(steps)
        t.assert_equal()
    t.close()


def test_process_table_indexed(device):
    """An indexed block (PresentInput's inputs, period -P) loaded once, beside
    a per-trial per-step block; the rows it presents re-set before each run,
    as the CPU reads them; bad rows refused, and a run past them."""
    t = Twin(device, np.float64, 0, 12, n_trials=2, n_int_state=1)
    t.f_cpu[0::12] = 0.0
    t.f_dev[:] = t.f_cpu
    t.add("time_update", scalars={"step": 0, "time": 0})
    i = t.add("process_table", ints={"Y": [1, 2, 3, 4, 5], "m": [3, 2], "period": [-4, 0],
                                    "inc": [1, 0], "shared": [1, 0]}, scalars={"time": 0})
    rng = np.random.RandomState(4)
    inputs = rng.uniform(-1, 1, 4 * 3)
    for steps in (3, 5):
        t.set_table(i, "table", np.concatenate([inputs, rng.uniform(-1, 1, 2 * steps * 2)]))
        t.set_table(i, "rows", rng.randint(0, 4, steps).astype(float))
        t.run(steps)
        t.assert_equal()
    with pytest.raises(ValueError, match="not in"):
        t.dev.set_table(i, "rows", np.array([0.0, 4.0]))
    t.dev.set_table(i, "rows", np.zeros(2))
    with pytest.raises(RuntimeError, match="no row index"):
        t.dev.run(5, [], [], 0)
    t.close()


def test_bad_input_raises(device):
    t = Twin(device, np.float64, 0, 4)
    with pytest.raises((IndexError, ValueError)):
        t.dev.add("copy", {"src": [0], "dst": [99]}, {}, {"inc": 0.0})
    with pytest.raises(ValueError, match="unknown instruction kind"):
        t.dev.add("no_such_kind", {}, {}, {})
    with pytest.raises(ValueError, match="missing"):
        t.dev.add("dot_inc", {"rows": [1]}, {}, {})
    t.close()
    with pytest.raises(RuntimeError, match="closed"):
        t.dev.run(1, [], [], 0)
