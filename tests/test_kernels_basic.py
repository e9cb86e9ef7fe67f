"""Basic kernels (copy, elementwise_inc, reset, dot_inc) against NumPy."""

import numpy as np
import pytest

from kernel_harness import RawProgram


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3])
def test_copy_inc_with_repeats(dtype, n_trials, rng):
    n = 37
    p = RawProgram(dtype, 0, 2 * n, n_trials)
    src, dst = p.alloc(n), p.alloc(n)
    idx = rng.randint(0, n, size=51)  # repeated destinations accumulate
    for t in range(n_trials):
        p.write(src, rng.randn(n), t)
        p.write(dst, rng.randn(n), t)
    expected = [p.view(dst, t).astype(np.float64) for t in range(n_trials)]
    for t in range(n_trials):
        np.add.at(expected[t], idx, p.view(src, t)[idx % n])
    p.add("copy", ints={"src": src[idx % n], "dst": dst[idx]}, scalars={"inc": 1})
    p.run()
    for t in range(n_trials):
        np.testing.assert_allclose(p.view(dst, t), expected[t], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_copy_overlapping_shift(dtype):
    # dst[1:] = src[:-1] within one signal: NumPy semantics read before writing.
    n = 9
    p = RawProgram(dtype, 0, n)
    x = p.alloc(n)
    p.write(x, np.arange(n))
    p.add("copy", ints={"src": x[:-1], "dst": x[1:]}, scalars={"inc": 0, "overlap": 1})
    p.run()
    np.testing.assert_array_equal(p.view(x), [0] + list(range(n - 1)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_inc_broadcast(dtype, rng):
    n = 13
    p = RawProgram(dtype, 1, 2 * n, 2)
    a = p.alloc(1, shared=True)
    x, y = p.alloc(n), p.alloc(n)
    p.write(a, 0.5)
    for t in range(2):
        p.write(x, rng.randn(n), t)
        p.write(y, 0.0, t)
    p.add("elementwise_inc", ints={"Y": y, "A": np.repeat(a, n), "X": x})
    p.run()
    for t in range(2):
        np.testing.assert_allclose(p.view(y, t), 0.5 * p.view(x, t), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (33, 65), (5, 0)])
def test_dot_inc_blocks(dtype, shape, rng):
    m, k = shape
    p = RawProgram(dtype, 2 * m * k, 2 * (k + m), n_trials=2)
    A1, A2 = p.alloc(m * k, shared=True), p.alloc(m * k, shared=True)
    x1, x2, y = p.alloc(k), p.alloc(k), p.alloc(m)
    a1, a2 = rng.randn(m, k), rng.randn(k, m)  # A2 stored transposed (column strides)
    p.write(A1, a1.ravel())
    p.write(A2, a2.ravel())
    for t in range(2):
        p.write(x1, rng.randn(k), t)
        p.write(x2, rng.randn(k), t)
        p.write(y, rng.randn(m), t)
    expected = [
        p.view(y, t) + a1 @ p.view(x1, t) + a2.T @ p.view(x2, t) for t in range(2)
    ]
    for A, x, rs, cs in [(A1, x1, k, 1), (A2, x2, 1, m)]:
        p.add("dot_inc", ints=dict(rows=[m], cols=[k], A=[A[0] if A.size else 0],
                                   A_rs=[rs], A_cs=[cs], X=[x[0] if k else 0], X_s=[1],
                                   Y=[y[0] if m else 0], Y_s=[1]))
    p.run()
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for t in range(2):
        np.testing.assert_allclose(p.view(y, t), expected[t], rtol=tol, atol=tol)


def test_bad_addresses_raise():
    p = RawProgram(np.float64, 0, 4)
    with pytest.raises(IndexError, match="outside buffer"):
        p.add("copy", ints={"src": [0], "dst": [99]}, scalars={"inc": 0})
    with pytest.raises(ValueError, match="length"):
        p.add("copy", ints={"src": [0, 1], "dst": [2]}, scalars={"inc": 0})
    with pytest.raises(ValueError, match="unknown instruction"):
        p.add("no_such_kernel")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inc", [0, 1])
def test_copy_runs_match_element_copy(dtype, inc, rng, simd):
    from nengo_cuda.lowering.basic import contiguous_runs

    n_shared, n = 10, 40
    p = RawProgram(dtype, n_shared, n, n_trials=2)
    shared = p.alloc(n_shared, shared=True)
    state = p.alloc(n)
    p.write(shared, rng.randn(n_shared))
    # runs from shared and state sources into state destinations, odd lengths
    src = np.concatenate([shared[2:9], state[0:5], state[20:33]])
    dst = np.concatenate([state[5:12], state[12:17], state[33:40] if False else state[27:40]])
    runs = contiguous_runs(src, dst, n_shared)
    assert runs is not None and len(runs[0]) <= 4
    expected = []
    for t in range(2):
        p.write(state, rng.randn(n), t)
        mem = {a: v for a, v in zip(state, p.view(state, t))}
        mem.update(zip(shared, p.view(shared)))
        for s_, d_ in zip(src, dst):
            mem[d_] = mem[d_] + mem[s_] if inc else mem[s_]
        expected.append(np.array([mem[a] for a in state]))
    p.add("copy_runs", ints={"src": runs[0], "dst": runs[1], "length": runs[2]},
          scalars={"inc": inc})
    p.run()
    for t in range(2):
        np.testing.assert_allclose(p.view(state, t), expected[t], rtol=1e-6)


def test_copy_runs_never_cross_shared_boundary():
    from nengo_cuda.lowering.basic import contiguous_runs

    src = np.arange(8, 16)  # crosses address 10 = n_shared
    dst = np.arange(100, 108)
    starts, _, lengths = contiguous_runs(src, dst, 10)
    assert list(starts) == [8, 10] and list(lengths) == [2, 6]
    p = RawProgram(np.float64, 10, 10)
    with pytest.raises(ValueError, match="crosses"):
        p.add("copy_runs", ints={"src": [8], "dst": [12], "length": [4]}, scalars={"inc": 0})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(16, 3), (5, 70)])  # packed A^T, and strided rows
def test_dot_inc_sees_changed_shared_weights(dtype, shape, rng):
    """Kernels that keep packed copies of shared weights re-read them every run
    (training, load_params and sim.signals write the shared buffer in place)."""
    m, k = shape
    p = RawProgram(dtype, m * k, k + m)
    A, x, y = p.alloc(m * k, shared=True), p.alloc(k), p.alloc(m)
    p.write(x, rng.randn(k))
    # column-major A (A_cs = m) so the rows kernel packs it too
    p.add("dot_inc", ints=dict(rows=[m], cols=[k], A=[A[0]], A_rs=[1], A_cs=[m], X=[x[0]],
                               X_s=[1], Y=[y[0]], Y_s=[1]))
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for _ in range(2):
        a = rng.randn(k, m)  # stored column-major: element (r, c) at c * m + r
        p.write(A, a.ravel())
        p.write(y, 0.0)
        p.run()
        np.testing.assert_allclose(p.view(y), a.T @ p.view(x), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3])
def test_reset_and_elementwise_inc_runs(dtype, n_trials, rng, simd):
    """Consecutive addresses run as segments (memcpy / pointer loops): runs of
    odd lengths, a gap between them that must stay untouched (poisoned), a
    shared A, and repeated outputs that accumulate in order."""
    n, gap = 37, 5
    p = RawProgram(dtype, n, 4 * n + 2 * gap, n_trials)
    a = p.alloc(n, shared=True)
    x, y = p.alloc(n), p.alloc(n)
    r1, hole, r2 = p.alloc(n - 12), p.alloc(gap), p.alloc(12)
    p.write(a, rng.randn(n))
    for t in range(n_trials):
        p.write(x, rng.randn(n), t)
        p.write(y, rng.randn(n), t)
        for sig in (r1, hole, r2):
            p.write(sig, np.nan, t)
    values = rng.randn(n)
    y_before = [p.view(y, t).astype(np.float64) for t in range(n_trials)]
    p.add("reset", ints={"dst": np.concatenate([r1, r2])}, floats={"value": values})
    # the second half of y twice: in order, so it gets a*x added twice
    ys = np.concatenate([y, y[20:]])
    p.add("elementwise_inc", ints={"Y": ys, "A": np.concatenate([a, a[20:]]),
                                   "X": np.concatenate([x, x[20:]])})
    p.run()
    av = p.view(a).astype(np.float64)
    for t in range(n_trials):
        np.testing.assert_array_equal(p.view(r1, t), values[: n - 12].astype(dtype))
        np.testing.assert_array_equal(p.view(r2, t), values[n - 12:].astype(dtype))
        assert np.isnan(p.view(hole, t)).all()
        inc = av * p.view(x, t)
        inc[20:] *= 2
        np.testing.assert_allclose(p.view(y, t), y_before[t] + inc, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3])
def test_elementwise_inc_from_init(dtype, n_trials, rng, simd):
    """Y = I + A * X (fusion.py): a contiguous run (segments) and scattered
    addresses, a shared I, poisoned Y (never read: it must not show), the same
    rounding as Y = I; Y += A * X."""
    n = 37
    p = RawProgram(dtype, 2 * n, 3 * n + 9, n_trials)
    a, init = p.alloc(n, shared=True), p.alloc(n, shared=True)
    x, y, scattered = p.alloc(n), p.alloc(n), p.alloc(9)
    p.write(a, rng.randn(n)), p.write(init, rng.randn(n))
    for t in range(n_trials):
        p.write(x, rng.randn(n), t)
        p.write(y, np.nan, t), p.write(scattered, np.nan, t)
    order = rng.permutation(9)
    ys = np.concatenate([y, scattered[order]])
    p.add("elementwise_inc", ints={"Y": ys, "A": np.concatenate([a, a[:9]]),
                                   "X": np.concatenate([x, x[:9]]),
                                   "I": np.concatenate([init, init[:9]])})
    p.run()
    av, iv = p.view(a), p.view(init)
    for t in range(n_trials):
        xv = p.view(x, t)
        expected = iv + av * xv  # in dtype: one rounding of the product, one of the sum
        np.testing.assert_array_equal(p.view(y, t), expected)
        np.testing.assert_array_equal(p.view(scattered, t)[order], expected[:9])


def test_elementwise_inc_from_init_needs_unique_outputs():
    p = RawProgram(np.float64, 4, 8)
    a, x, y = p.alloc(2, shared=True), p.alloc(2), p.alloc(2)
    with pytest.raises(ValueError, match="with I, each Y address must appear once"):
        p.add("elementwise_inc", ints={"Y": [y[0], y[0]], "A": a, "X": x, "I": a})
    with pytest.raises(ValueError, match="elementwise_inc"):
        p.add("elementwise_inc", ints={"Y": y, "A": a, "X": x, "I": a[:1]})


@pytest.mark.parametrize("device", ["cpu", "cuda-emulator"])
def test_add_checks_its_arrays(device):
    """Instruction arrays are copied from NumPy's memory: integer fields must
    hold integers, every field is 1-D; errors name the kind and the field."""
    if device == "cpu":
        native = RawProgram(np.float64, 4, 8).native
    else:
        from test_cuda_kernels import Twin  # noqa: PLC0415

        native = Twin(device, np.float64, 4, 8).dev
    with pytest.raises(TypeError, match="copy: int array 'src' must hold integers"):
        native.add("copy", {"src": np.array([0.5]), "dst": [5]}, {}, {"inc": 0})
    with pytest.raises(TypeError, match="copy: int array 'dst' must be a 1-D array"):
        native.add("copy", {"src": [4], "dst": np.array([[5]])}, {}, {"inc": 0})
    with pytest.raises(TypeError, match="reset: float array 'value' must hold numbers"):
        native.add("reset", {"dst": [5]}, {"value": np.array(["a"])}, {})
    native.add("copy", {"src": np.array([4], dtype=np.int32), "dst": [5]}, {}, {"inc": True})
    native.add("reset", {"dst": np.zeros(0)}, {"value": []}, {})  # empty: any dtype


@pytest.mark.parametrize("n_trials", [1, 3])
def test_probes_record_any_addresses(n_trials, rng):
    """A probe's addresses are copied in runs of consecutive ones that stay in
    one region: runs split where the addresses jump, go backwards, repeat or
    cross from the shared region into the state; every trial its own state,
    the shared values in every trial's record; samples where the mask says."""
    n_shared, n_state = 6, 8
    p = RawProgram(np.float64, n_shared, n_state, n_trials)
    p.write(np.arange(n_shared), 100 + np.arange(n_shared))
    for t in range(n_trials):
        p.write(n_shared + np.arange(n_state), 1000 * (t + 1) + np.arange(n_state), t)
    p.add("copy", ints={"src": [n_shared + 1], "dst": [n_shared]}, scalars={"inc": 1})
    addrs = np.array([4, 5, 6, 7, 8, 2, 3, 3, 12, 11, 0, 13, 6], dtype=np.int64)
    mask = np.array([1, 0, 1, 1], dtype=np.uint8)
    out = np.full((n_trials, 3, len(addrs)), np.nan)
    p.native.run(4, [], [(addrs, mask, out)])
    for t in range(n_trials):
        state = 1000 * (t + 1) + np.arange(n_state, dtype=float)
        for sample, step in enumerate([1, 3, 4]):
            values = np.concatenate([100 + np.arange(n_shared), state])
            values[n_shared] = state[0] + step * state[1]  # the copy increments it each step
            np.testing.assert_array_equal(out[t, sample], values[addrs])


@pytest.mark.parametrize("n_trials", [1, 3])
def test_feeds_write_any_addresses(n_trials, rng):
    """A feed's addresses are written in runs of consecutive ones (split where
    they jump, go backwards or repeat: the later value wins, as written one by
    one); each trial its own values; a copy after the feed sees them."""
    n_shared, n_state = 2, 10
    p = RawProgram(np.float64, n_shared, n_state, n_trials)
    p.add("copy", ints={"src": [n_shared + 3], "dst": [n_shared + 9]}, scalars={"inc": 0})
    addrs = np.array([2, 3, 4, 6, 5, 5, 8], dtype=np.int64)
    steps = 3
    data = rng.randn(n_trials, steps, len(addrs))
    seen = np.zeros((n_trials, 1, 1))
    p.native.run(steps, [(-1, addrs, data)], [(np.array([n_shared + 9]),
                                                np.array([0, 0, 1], np.uint8), seen)])
    for t in range(n_trials):
        expected = {}
        for k, a in enumerate(addrs):
            expected[a] = data[t, -1, k]  # the last step's; a repeated address: its last value
        np.testing.assert_array_equal(p.view(sorted(expected), t),
                                      [expected[a] for a in sorted(expected)])
        assert seen[t, 0, 0] == expected[n_shared + 3]  # the copy's source, address 5
