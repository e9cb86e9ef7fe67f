"""The vectorised fast paths of the CPU kernels against the reference results.

Kernels switch to faster code when operands are laid out favourably:
neuron groups whose operands are consecutive in memory run vectorised
(`csrc/cpu/instr_neurons.cpp`, `segments.h`), and dot products pick a columns,
rows or strided kernel per block (`csrc/cpu/instr_dot.cpp`).  The other kernel
tests use scattered addresses or small shapes; these use consecutive
addresses, lengths around the vector widths and minibatches, and compare with
NumPy (dot products) and the neuron types' own ``step`` (float64: bit for bit
for spiking types, as the scattered path).
"""

import nengo
import numpy as np
import pytest

from kernel_harness import RawProgram
from test_kernels_neurons import DT, TYPES, check_kernel_against_step


@pytest.mark.parametrize("neuron_type", TYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, n_trials", [(8, 1), (67, 3), (2500, 2)])
def test_contiguous_neurons_match_nengo_step(neuron_type, dtype, n, n_trials, rng):
    check_kernel_against_step(neuron_type, dtype, n, n_trials, rng, contiguous=True)


@pytest.mark.parametrize("tau_rc", [0.02, 0.01, 0.004])
def test_lif_float32_spike_times_within_an_ulp(tau_rc, rng):
    """float32 LIF computes expm1/log1p in vector lanes: state stays within ~1 ulp.
    dt / tau_rc picks the tier: <= 1/16 the short float series, <= 1/8 the long
    one, beyond that double-precision lanes (csrc/cpu/simd.h)."""
    n = 4096
    lif = nengo.LIF(tau_rc=tau_rc)
    p = RawProgram(np.float32, 0, 4 * n, dt=DT)
    J, out, v, ref = (p.alloc(n) for _ in range(4))
    volts = rng.uniform(0, 1, n).astype(np.float32)
    refs = rng.choice([0, 0.0003, 0.0007, 0.0012, 0.002], n).astype(np.float32)
    p.write(v, volts)
    p.write(ref, refs)
    currents = rng.uniform(1.5, 30, n).astype(np.float32)  # many spikes
    p.write(J, currents)
    p.add("neurons_lif", ints=dict(J=J, out=out, voltage=v, refractory_time=ref),
          floats={k: np.full(n, getattr(lif, k)) for k in ("tau_rc", "tau_ref", "min_voltage",
                                                           "amplitude")})
    p.run(1)
    ref_out = np.zeros(n, np.float32)
    lif.step(DT, currents.copy(), ref_out, volts, refs)
    # same spikes; amplitude / dt is computed in float32 here, in float64 by Nengo
    np.testing.assert_array_equal(p.view(out) > 0, ref_out > 0)
    np.testing.assert_allclose(p.view(out), ref_out, rtol=1e-7)
    np.testing.assert_allclose(p.view(v), volts, rtol=3e-7, atol=1e-7)
    np.testing.assert_allclose(p.view(ref), refs, rtol=3e-7, atol=1e-9)


def _add_block(p, A_addr, rs, cs, x_addr, y_addr, m, k, x_s=1, y_s=1):
    return dict(rows=m, cols=k, A=A_addr, A_rs=rs, A_cs=cs, X=x_addr, X_s=x_s, Y=y_addr, Y_s=y_s)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 5])
@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (37, 16), (300, 5), (16, 300), (9, 70)])
def test_dot_inc_kernels(dtype, n_trials, shape, rng):
    """Shared row-major A (columns or rows kernel), shared transposed A, per-trial A
    (rows kernel), and strided X and Y (strided kernel), all in one instruction."""
    m, k = shape
    p = RawProgram(dtype, 2 * m * k, m * k + 4 * k + 4 * m, n_trials)
    A_row, A_col = p.alloc(m * k, shared=True), p.alloc(m * k, shared=True)
    A_state = p.alloc(m * k)
    x, xs = p.alloc(k), p.alloc(2 * k)
    ys = p.alloc(4 * m)  # four outputs interleaved: y_j[r] at ys[4 r + j]
    a_row, a_col = rng.randn(m, k), rng.randn(k, m)
    p.write(A_row, a_row.ravel())
    p.write(A_col, a_col.ravel())
    a_state = [rng.randn(m, k) for _ in range(n_trials)]
    for t in range(n_trials):
        p.write(A_state, a_state[t].ravel(), t)
        p.write(x, rng.randn(k), t)
        p.write(xs, rng.randn(2 * k), t)
        p.write(ys, rng.randn(4 * m), t)
    before = [p.view(ys, t).reshape(m, 4) for t in range(n_trials)]
    blocks = [
        _add_block(p, A_row[0], k, 1, x[0], ys[0], m, k, y_s=4),
        _add_block(p, A_col[0], 1, m, x[0], ys[1], m, k, y_s=4),
        _add_block(p, A_state[0], k, 1, x[0], ys[2], m, k, y_s=4),
        _add_block(p, A_row[0], k, 1, xs[0], ys[3], m, k, x_s=2, y_s=4),
    ]
    p.add("dot_inc", ints={f: [b[f] for b in blocks] for f in blocks[0]})
    p.run()
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for t in range(n_trials):
        xv, xsv = p.view(x, t), p.view(xs, t)[::2]
        expected = before[t] + np.stack(
            [a_row @ xv, a_col.T @ xv, a_state[t] @ xv, a_row @ xsv], axis=1)
        np.testing.assert_allclose(p.view(ys, t).reshape(m, 4), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 2, 3, 32])
@pytest.mark.parametrize("shape", [(8, 1), (9, 1), (31, 2), (33, 3), (67, 1), (129, 5),
                                   (257, 64), (4100, 1)])
def test_dot_inc_columns_kernel(dtype, n_trials, shape, rng):
    """Shared A with few columns (encoders): the columns kernel, tiles of rows for all
    trials two at a time, then single vectors and single rows (odd row counts), jobs
    of several thousand rows.  Contiguous Y; strided Y and X; an X shared by all
    trials.  Elements between strided outputs stay poisoned (NaN)."""
    m, k = shape
    p = RawProgram(dtype, m * k + k, 4 * m + 4 * k, n_trials)
    A, x_shared = p.alloc(m * k, shared=True), p.alloc(k, shared=True)
    y, y2 = p.alloc(m), p.alloc(2 * m)  # y2: output at every other element
    x, x3 = p.alloc(k), p.alloc(3 * k)  # x3: input at every third element
    y3 = p.alloc(m)
    a = rng.randn(m, k)
    p.write(A, a.ravel())
    p.write(x_shared, rng.randn(k))
    for t in range(n_trials):
        p.write(x, rng.randn(k), t)
        p.write(x3[::3], rng.randn(k), t)
        p.write(y, rng.randn(m), t)
        p.write(y2[::2], rng.randn(m), t)
        p.write(y3, rng.randn(m), t)
    before = [(p.view(y, t), p.view(y2[::2], t), p.view(y3, t)) for t in range(n_trials)]
    blocks = [
        _add_block(p, A[0], k, 1, x[0], y[0], m, k),
        _add_block(p, A[0], k, 1, x3[0], y2[0], m, k, x_s=3, y_s=2),
        _add_block(p, A[0], k, 1, x_shared[0], y3[0], m, k),
    ]
    p.add("dot_inc", ints={f: [b[f] for b in blocks] for f in blocks[0]})
    p.run()
    tol = 1e-4 if dtype == np.float32 else 1e-12
    a_t = a.astype(dtype)
    for t in range(n_trials):
        y0, y20, y30 = before[t]
        np.testing.assert_allclose(p.view(y, t), y0 + a_t @ p.view(x, t), rtol=tol, atol=tol)
        np.testing.assert_allclose(p.view(y2[::2], t), y20 + a_t @ p.view(x3[::3], t),
                                   rtol=tol, atol=tol)
        np.testing.assert_allclose(p.view(y3, t), y30 + a_t @ p.view(x_shared), rtol=tol,
                                   atol=tol)
        assert np.isnan(p.view(y2[1::2], t)).all()
        assert np.isnan(p.view(x3[1::3], t)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3])
def test_lti_elementwise_segments(dtype, n_trials, rng):
    """Runs of consecutive elements with one form and mode take the pointer path;
    incremented outputs shared by two runs accumulate in order, as element by element."""
    n = 40
    p = RawProgram(dtype, 0, 6 * n, n_trials)
    U, Y, X = p.alloc(2 * n), p.alloc(2 * n), p.alloc(2 * n)
    # runs: OneX set (0..n), NoX inc into Y[0..n) again, OneX inc into Y[n..2n)
    u = np.concatenate([U[:n], U[n:], U[n:]])
    y = np.concatenate([Y[:n], Y[:n], Y[n:]])
    x = np.concatenate([X[:n], np.full(n, -1), X[n:]])
    form = np.repeat([1, 0, 1], n)
    inc = np.repeat([0, 1, 1], n)
    a = np.concatenate([np.full(n, 0.9), np.zeros(n), rng.uniform(0.5, 1, n)])
    b = np.concatenate([np.full(n, 0.1), rng.randn(n), rng.uniform(0, 0.5, n)])
    p.add("lti_elementwise", ints=dict(U=u, Y=y, X=x, form=form, inc=inc),
          floats=dict(a=a, b=b))
    state = [rng.randn(2 * n).astype(dtype) for _ in range(n_trials)]
    out = [rng.randn(2 * n).astype(dtype) for _ in range(n_trials)]
    for t in range(n_trials):
        p.write(X, state[t], t)
        p.write(Y, out[t], t)
    av, bv = a.astype(dtype), b.astype(dtype)
    for step in range(5):
        for t in range(n_trials):
            uv = rng.randn(2 * n).astype(dtype)
            p.write(U, uv, t)
            xs, ys = state[t], out[t]
            xs[:n] *= av[:n]
            xs[:n] += bv[:n] * uv[:n]
            ys[:n] = xs[:n]
            ys[:n] += bv[n:2 * n] * uv[n:]
            xs[n:] *= av[2 * n:]
            xs[n:] += bv[2 * n:] * uv[n:]
            ys[n:] += xs[n:]
        p.run()
        for t in range(n_trials):
            np.testing.assert_array_equal(p.view(X, t), state[t])
            np.testing.assert_array_equal(p.view(Y, t), out[t])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(16, 500), (33, 40), (64, 3000), (300, 200)])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.5])
def test_dot_inc_sparse_inputs(dtype, shape, density, rng):
    """Mostly-zero inputs (spikes) into a shared A of many rows add only the
    nonzero columns; denser inputs take the dense kernel; both match NumPy."""
    m, k = shape
    n_trials = 3
    p = RawProgram(dtype, m * k, k + m, n_trials)
    A, x, y = p.alloc(m * k, shared=True), p.alloc(k), p.alloc(m)
    a = rng.randn(m, k)
    p.write(A, a.ravel())
    xs = []
    for t in range(n_trials):
        xv = np.where(rng.rand(k) < density, rng.randn(k) * 100, 0.0)
        if t == 1 and k > 3:
            xv[3] = np.nan  # nonzero: must reach the output
        xs.append(xv.astype(dtype))
        p.write(x, xs[t], t)
        p.write(y, np.zeros(m), t)
    p.add("dot_inc", ints=dict(rows=[m], cols=[k], A=[A[0]], A_rs=[k], A_cs=[1], X=[x[0]],
                               X_s=[1], Y=[y[0]], Y_s=[1]))
    p.run()
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for t in range(n_trials):
        expected = a.astype(dtype) @ xs[t]
        np.testing.assert_allclose(p.view(y, t), expected, rtol=tol, atol=tol * 100)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3, 32])
@pytest.mark.parametrize("shape", [(1, 1), (37, 16), (300, 5), (16, 300), (4100, 1), (70, 40)])
def test_dot_inc_starts_from_init(dtype, n_trials, shape, rng):
    """Blocks with an ``I`` (fusion.CopyThenDotInc): Y = I + A @ X whatever Y held
    (poisoned with NaN here), in every kernel: columns, rows, sparse inputs
    (X mostly zero), strided; a shared I (a bias), a strided per-trial I; a block
    without I (I = -1) in the same instruction still adds to Y."""
    m, k = shape
    p = RawProgram(dtype, m * k + 2 * m, 5 * m + 3 * k, n_trials)
    A, bias = p.alloc(m * k, shared=True), p.alloc(m, shared=True)
    x, x_sparse = p.alloc(k), p.alloc(k)
    y, y_strided, y_plain = p.alloc(m), p.alloc(2 * m), p.alloc(m)
    init_strided = p.alloc(m)  # per trial, read at every element (I_s = 1), reversed below
    a = rng.randn(m, k)
    p.write(A, a.ravel())
    p.write(bias, rng.randn(m))
    for t in range(n_trials):
        p.write(x, rng.randn(k), t)
        p.write(x_sparse, rng.randn(k) * (rng.rand(k) < 0.1), t)
        p.write(y, np.full(m, np.nan), t)
        p.write(y_strided, np.full(2 * m, np.nan), t)
        p.write(y_plain, rng.randn(m), t)
        p.write(init_strided, rng.randn(m), t)
    before_plain = [p.view(y_plain, t) for t in range(n_trials)]

    def block(x_addr, y_addr, y_s, init, init_s):
        return dict(_add_block(p, A[0], k, 1, x_addr, y_addr, m, k, y_s=y_s), I=init, I_s=init_s)

    blocks = [
        block(x[0], y[0], 1, bias[0], 1),
        block(x_sparse[0], y_strided[0], 2, init_strided[-1], -1),
        block(x[0], y_plain[0], 1, -1, 0),
    ]
    p.add("dot_inc", ints={f: [b[f] for b in blocks] for f in blocks[0]})
    p.run()
    tol = 1e-4 if dtype == np.float32 else 1e-12
    a_t = a.astype(dtype)
    for t in range(n_trials):
        np.testing.assert_allclose(p.view(y, t), p.view(bias) + a_t @ p.view(x, t),
                                   rtol=tol, atol=tol)
        np.testing.assert_allclose(p.view(y_strided[::2], t),
                                   p.view(init_strided, t)[::-1] + a_t @ p.view(x_sparse, t),
                                   rtol=tol, atol=tol)
        assert np.isnan(p.view(y_strided[1::2], t)).all()  # between outputs: untouched
        np.testing.assert_allclose(p.view(y_plain, t), before_plain[t] + a_t @ p.view(x, t),
                                   rtol=tol, atol=tol)


@pytest.mark.parametrize("init, rows, message", [(-2, 3, "address or -1"),
                                                 (0, 0, "empty block")])
def test_dot_inc_rejects_bad_init(init, rows, message):
    p = RawProgram(np.float64, 4, 8)
    with pytest.raises(ValueError, match=message):
        p.add("dot_inc", ints=dict(rows=[rows], cols=[1], A=[0], A_rs=[1], A_cs=[1], X=[4],
                                   X_s=[1], Y=[5], Y_s=[1], I=[init], I_s=[1]))
