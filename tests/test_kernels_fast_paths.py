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

import os
import subprocess
import sys

import nengo
import numpy as np
import pytest

from kernel_harness import RawProgram
import nengo_cuda
from nengo_cuda import _native
from nengo_cuda.testing import simd_level
from nengo_cuda.lowering.neurons import NEURON_KERNELS, parameter_values
from test_kernels_neurons import DT, TYPES, check_kernel_against_step


@pytest.mark.parametrize("neuron_type", TYPES, ids=lambda t: t.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n, n_trials", [(8, 1), (67, 3), (2500, 2)])
def test_contiguous_neurons_match_nengo_step(neuron_type, dtype, n, n_trials, rng, simd):
    check_kernel_against_step(neuron_type, dtype, n, n_trials, rng, contiguous=True)


def _float32_ulps(x, exact):
    """|x - exact| in ulps of float32 at ``exact`` (a float64 result)."""
    return abs(x.astype(np.float64) - exact) / np.spacing(abs(exact).astype(np.float32))


@pytest.mark.parametrize("tau_rc", [0.02, 0.01, 0.004, 0.001])
def test_lif_float32_as_accurate_as_nengo_float32(tau_rc, rng, simd):
    """float32 LIF computes expm1/log1p in vector lanes, as accurately as Nengo's
    float32 step (NumPy on libm's functions) computes.  dt / tau_rc picks the
    tier: <= 1/16 the short float series, <= 1/8 the long one, beyond that
    double-precision lanes (csrc/cpu/simd_math.h), beyond 1/4 libm (tau_rc = 0.001:
    the float series there would be off by 2e-5).

    Both are compared with float64 arithmetic on the same float32 inputs.  Not
    with each other: the refractory time tau_ref + (dt + tau_rc log1p(...))
    cancels, so both are up to 9 ulps from the float64 result (tau_rc = 0.02),
    in either direction.  The series are faithful (an ulp); an ulp of expm1 or
    log1p moves v and the refractory time by up to 2 ulps (measured over 40
    seeds: at most 2.0 more than Nengo's float32 error, element by element).
    """
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
          floats={k: parameter_values(lif, k, n, DT)
                  for k in NEURON_KERNELS[nengo.LIF][2]})
    p.run(1)
    exact = dict(out=np.zeros(n), voltage=volts.astype(np.float64),
                 refractory_time=refs.astype(np.float64))
    lif.step(DT, currents.astype(np.float64), exact["out"], exact["voltage"],
             exact["refractory_time"])
    nengo32 = dict(out=np.zeros(n, np.float32), voltage=volts, refractory_time=refs)
    lif.step(DT, currents.copy(), nengo32["out"], volts, refs)
    # same spikes, of the same height (amplitude / dt computed in float64 by both)
    np.testing.assert_array_equal(p.view(out), nengo32["out"])
    _assert_lif_states_as_accurate(p, dict(voltage=v, refractory_time=ref), exact, nengo32,
                                   _float32_ulps, 2.5)


def _assert_lif_states_as_accurate(p, addrs, exact, nengo, ulps, slack):
    """Each LIF state of the program ``p`` is at most ``slack`` ulps further
    from ``exact`` than Nengo's step (``nengo``) is, element by element; the
    states Nengo sets to exactly 0 (v after a spike, ref after its period)
    are 0."""
    for name, addr in addrs.items():
        nonzero = exact[name] != 0
        ours = ulps(p.view(addr)[nonzero], exact[name][nonzero])
        theirs = ulps(nengo[name][nonzero], exact[name][nonzero])
        assert np.all(ours <= theirs + slack), f"{name}: {np.max(ours - theirs):.2f} ulps worse"
        np.testing.assert_array_equal(p.view(addr)[~nonzero], 0)


def _float64_ulps(x, exact):
    """|x - exact| in ulps of float64 at ``exact`` (a long double result)."""
    return np.abs(x.astype(np.longdouble) - exact) / np.spacing(np.abs(exact).astype(np.float64))


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 60, reason="long double is float64 here")
@pytest.mark.parametrize("tau_rc", [0.02, 0.01, 0.004, 0.001])
def test_lif_float64_as_accurate_as_nengo(tau_rc, rng, simd):
    """float64 LIF computes the expm1/log1p of spiking and partly refractory
    neurons with a faithful series (SimdF64Series, |argument| <= 1/16; libm
    beyond: tau_rc = 0.004 and 0.001) and is as accurate as Nengo's float64
    step (NumPy: libm's functions, or SVML's on AVX-512 CPUs): both compared
    with the same step in long double on the same inputs.  The refractory
    time tau_ref + (dt + tau_rc log1p(...)) cancels, so an ulp of log1p moves
    it by more than an ulp (measured at most 1.0 more than Nengo's error over
    40 seeds, voltages 0.0); spikes are the same."""
    n = 4096
    lif = nengo.LIF(tau_rc=tau_rc)
    p = RawProgram(np.float64, 0, 4 * n, dt=DT)
    J, out, v, ref = (p.alloc(n) for _ in range(4))
    volts = rng.uniform(0, 1, n)
    refs = rng.choice([0, 0.0003, 0.0007, 0.0012, 0.002], n)
    currents = rng.uniform(1.5, 30, n)  # many spikes
    for addr, x in ((v, volts), (ref, refs), (J, currents)):
        p.write(addr, x)
    p.add("neurons_lif", ints=dict(J=J, out=out, voltage=v, refractory_time=ref),
          floats={k: parameter_values(lif, k, n, DT)
                  for k in NEURON_KERNELS[nengo.LIF][2]})
    p.run(1)
    exact = dict(out=np.zeros(n, np.longdouble), voltage=volts.astype(np.longdouble),
                 refractory_time=refs.astype(np.longdouble))
    lif.step(DT, currents.astype(np.longdouble), exact["out"], exact["voltage"],
             exact["refractory_time"])
    nengo64 = dict(out=np.zeros(n), voltage=volts.copy(), refractory_time=refs.copy())
    lif.step(DT, currents.copy(), nengo64["out"], nengo64["voltage"], nengo64["refractory_time"])
    np.testing.assert_array_equal(p.view(out), nengo64["out"])
    _assert_lif_states_as_accurate(p, dict(voltage=v, refractory_time=ref), exact, nengo64,
                                   _float64_ulps, 2)


def test_lif_rate_float32_within_3_ulps(rng, simd):
    """float32 LIFRate computes log1p(1 / (J - 1)) in double lanes, rounded once
    to float32 (an ulp at most), then three float32 operations (half an ulp
    each) on float32 parameters (0.02 is half an ulp off): within 3 ulps of
    float64 arithmetic on the same inputs (measured at most 2.63 over 200,000
    currents, as Nengo's own float32 step: NumPy's float32 log1p is not libm's
    either), from just above the threshold (1 / (J - 1) up to 1e7) to large
    currents (down to 1e-4), and 0 below it (the last n % 8 neurons run libm)."""
    n = 20003
    lif = nengo.LIFRate(tau_rc=0.02, tau_ref=0.002, amplitude=0.7)
    currents = np.concatenate([1 + 10 ** rng.uniform(-7, 4, n - 3), [1.0, 0.5, np.inf]])
    currents = rng.permutation(currents).astype(np.float32)
    p = RawProgram(np.float32, 0, 2 * n, dt=DT)
    J, out = p.alloc(n), p.alloc(n)
    p.write(J, currents)
    p.add("neurons_lif_rate", ints=dict(J=J, out=out),
          floats={k: np.full(n, getattr(lif, k)) for k in ("tau_rc", "tau_ref", "amplitude")})
    p.run(1)
    exact = np.zeros(n)
    with np.errstate(divide="ignore"):
        lif.step(DT, currents.astype(np.float64), exact)
    ours = p.view(out)
    firing = exact > 0
    np.testing.assert_array_equal(ours[~firing], 0)
    ulps = _float32_ulps(ours[firing], exact[firing])
    assert np.all(ulps <= 3), f"{ulps.max():.2f} ulps from float64"


def _add_block(p, A_addr, rs, cs, x_addr, y_addr, m, k, x_s=1, y_s=1):
    return dict(rows=m, cols=k, A=A_addr, A_rs=rs, A_cs=cs, X=x_addr, X_s=x_s, Y=y_addr, Y_s=y_s)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 5])
@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (37, 16), (300, 5), (16, 300), (9, 70)])
def test_dot_inc_kernels(dtype, n_trials, shape, rng, simd):
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


LEVELS = ["baseline", "avx2", "avx512"]


def _rows_product(rng, level):
    """A float32 64 x 300 product (rows kernel) computed at SIMD ``level``, and
    the exact one."""
    m, k = 64, 300
    a, x = rng.randn(m, k).astype(np.float32), rng.randn(k).astype(np.float32)
    with simd_level(level):
        p = RawProgram(np.float32, m * k, k + m)
        A, X, Y = p.alloc(m * k, shared=True), p.alloc(k), p.alloc(m)
        p.write(A, a.ravel()), p.write(X, x), p.write(Y, np.zeros(m))
        p.add("dot_inc", ints=_add_block(p, A[0], k, 1, X[0], Y[0], m, k))
        p.run()
        return p.view(Y).copy(), a.astype(np.float64) @ x


def test_baseline_simd_switches_kernels():
    """The `simd` fixture's baseline really runs other code: the AVX2 product
    kernel fuses multiply-adds (one rounding), the baseline one does not."""
    if _native.cpu_simd_level() == "baseline":
        pytest.skip("the CPU has no AVX2 and FMA")
    results = [_rows_product(np.random.RandomState(3), level) for level in ("baseline", "avx2")]
    for got, exact in results:
        np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-4)
    assert np.any(results[0][0] != results[1][0]), "baseline and AVX2 computed the same roundings"


def test_simd_level_caps_the_cpu_level():
    """`set_simd_level` caps what the kernels use (never above the CPU's level)
    and returns the old cap; a bad name is an error naming the choices."""
    best = LEVELS.index(_native.cpu_simd_level())
    for level in LEVELS:
        with simd_level(level):
            assert _native.simd_level() == LEVELS[min(best, LEVELS.index(level))]
    with pytest.raises(ValueError, match="'baseline', 'avx2' or 'avx512', got 'sse9'"):
        _native.set_simd_level("sse9")
    assert _native.simd_level() == LEVELS[best]


@pytest.mark.parametrize("value, level", [("avx2", "avx2"), ("baseline", "baseline"), ("", None)])
def test_simd_level_from_environment(value, level):
    """NC_SIMD caps the level when the module loads; empty: no cap."""
    code = "from nengo_cuda import _native; print(_native.simd_level())"
    env = dict(os.environ, NC_SIMD=value)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()[-1]
    best = LEVELS.index(_native.cpu_simd_level())
    assert out == LEVELS[min(best, LEVELS.index(level or "avx512"))]


def test_simd_level_from_environment_bad_value():
    code = "from nengo_cuda import _native; print(_native.simd_level())"
    env = dict(os.environ, NC_SIMD="avx1024")
    res = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                         capture_output=True, text=True, check=True)
    assert "NC_SIMD=avx1024 is not 'baseline', 'avx2' or 'avx512'" in res.stderr
    assert res.stdout.split()[-1] == _native.cpu_simd_level()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 2, 3, 32])
@pytest.mark.parametrize("shape", [(8, 1), (9, 1), (31, 2), (33, 3), (67, 1), (129, 5),
                                   (257, 64), (4100, 1)])
def test_dot_inc_columns_kernel(dtype, n_trials, shape, rng, simd):
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
def test_lti_elementwise_segments(dtype, n_trials, rng, simd):
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
def test_lti_elementwise_uniform_means_bit_equal(dtype, simd):
    """A segment reads its coefficients once only where they are one value bit
    for bit: 0.0 and -0.0 coefficients (equal as numbers) give zeros of their own
    sign, as per element."""
    n = 40
    p = RawProgram(dtype, 0, 3 * n)
    U, Y, X = p.alloc(n), p.alloc(n), p.alloc(n)
    a = np.where(np.arange(n) % 3 == 0, -0.0, 0.0)
    p.add("lti_elementwise", ints=dict(U=U, Y=Y, X=X, form=np.ones(n), inc=np.zeros(n)),
          floats=dict(a=a, b=np.zeros(n)))
    p.write(X, np.linspace(1, 2, n))
    p.write(U, np.linspace(-1, 1, n))
    p.run()
    expected = np.linspace(1, 2, n).astype(dtype) * a.astype(dtype)  # + 0 * u
    expected += np.zeros(n, dtype) * np.linspace(-1, 1, n).astype(dtype)
    np.testing.assert_array_equal(np.signbit(p.view(X)), np.signbit(expected))
    np.testing.assert_array_equal(np.signbit(p.view(Y)), np.signbit(expected))
    assert np.signbit(expected).any() and not np.signbit(expected).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape", [(16, 500), (33, 40), (64, 3000), (300, 200), (8, 37), (12, 129), (7, 64)])
@pytest.mark.parametrize("density", [0.0, 0.05, 0.2, 0.5])
def test_dot_inc_sparse_inputs(dtype, shape, density, rng, simd):
    """Mostly-zero inputs (spikes) into a shared A of 8 rows or more add only
    the nonzero columns (listed 8 or 16 at a time, then one by one: odd column
    counts); denser inputs take the dense kernel; both match NumPy."""
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
def test_dot_inc_starts_from_init(dtype, n_trials, shape, rng, simd):
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


SMALL_BLOCK_ROWS = [1, 2, 3, 1, 1, 2, 3, 3, 1, 2, 1]


def _small_blocks_program(dtype, n_trials, cols, a_shared, a_state, xs, ys0, inits, together):
    """Blocks of 1-3 rows (decoders of low-dimensional ensembles): shared A, A
    per trial, two blocks adding to the same outputs, blocks that start from I.
    ``together``: one instruction; else an instruction per block."""
    rows = SMALL_BLOCK_ROWS
    total = sum(rows)
    p = RawProgram(dtype, total * cols + total, 2 * total * cols + 2 * total, n_trials)
    A_sh, I_sh = p.alloc(total * cols, shared=True), p.alloc(total, shared=True)
    A_st, X, Y = p.alloc(total * cols), p.alloc(total * cols), p.alloc(2 * total)
    p.write(A_sh, a_shared), p.write(I_sh, inits)
    for t in range(n_trials):
        p.write(A_st, a_state[t], t), p.write(X, xs[t], t)
        p.write(Y[::2], ys0[t], t)  # Y at every other element; the rest stays NaN
    blocks, r0 = [], 0
    for i, m in enumerate(rows):
        A = A_st if i >= 8 else A_sh  # the last three blocks: A per trial
        y = r0 if i != 4 else 0  # block 4 adds to block 0's output too
        block = dict(_add_block(p, A[r0 * cols], cols, 1, X[r0 * cols], Y[2 * y], m, cols,
                                y_s=2), I=-1, I_s=0)
        if i in (2, 7):
            block.update(I=I_sh[r0], I_s=1)
        blocks.append(block)
        r0 += m
    for group in [blocks] if together else [[b] for b in blocks]:
        p.add("dot_inc", ints={f: [b[f] for b in group] for f in group[0]})
    p.run()
    return p, blocks, Y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 3, 5])
@pytest.mark.parametrize("cols", [1, 7, 50, 100])
def test_dot_inc_small_blocks_batched(dtype, n_trials, cols, rng, simd):
    """Small rows-kernel blocks of one instruction run as row batches (rows of
    several blocks four at a time; shared A: trials in fours first): bit for bit
    what each block computes alone, and NumPy's products within rounding."""
    total = sum(SMALL_BLOCK_ROWS)
    a_shared = rng.randn(total * cols)
    a_state = [rng.randn(total * cols) for _ in range(n_trials)]
    xs = [rng.randn(total * cols) for _ in range(n_trials)]
    ys0 = [rng.randn(total) for _ in range(n_trials)]
    inits = rng.randn(total)
    args = (dtype, n_trials, cols, a_shared, a_state, xs, ys0, inits)
    batched, blocks, Y = _small_blocks_program(*args, together=True)
    alone, _, _ = _small_blocks_program(*args, together=False)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for t in range(n_trials):
        np.testing.assert_array_equal(batched.view(Y, t), alone.view(Y, t))
        assert np.isnan(batched.view(Y[1::2], t)).all()
        expected = ys0[t].astype(dtype).astype(np.float64)
        r0 = 0
        for i, b in enumerate(blocks):
            m = b["rows"]
            a = (a_state[t] if i >= 8 else a_shared).astype(dtype)[r0 * cols:(r0 + m) * cols]
            x = xs[t].astype(dtype)[r0 * cols:(r0 + 1) * cols]  # X: the block's first row's
            dots = a.reshape(m, cols).astype(np.float64) @ x
            y = (b["Y"] - Y[0]) // 2
            if b["I"] >= 0:
                expected[y:y + m] = inits.astype(dtype)[r0:r0 + m]
            expected[y:y + m] += dots
            r0 += m
        np.testing.assert_allclose(batched.view(Y[::2], t), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("init, rows, message", [(-2, 3, "address or -1"),
                                                 (0, 0, "empty block")])
def test_dot_inc_rejects_bad_init(init, rows, message):
    p = RawProgram(np.float64, 4, 8)
    with pytest.raises(ValueError, match=message):
        p.add("dot_inc", ints=dict(rows=[rows], cols=[1], A=[0], A_rs=[1], A_cs=[1], X=[4],
                                   X_s=[1], Y=[5], Y_s=[1], I=[init], I_s=[1]))


def _special_currents(rng, n):
    """Currents over the float32 range: ordinary, tiny (normal numbers: float32
    runs flush denormals, csrc/cpu/fp_mode.h), large enough that exp overflows
    or tanh is 1, and inf / NaN."""
    tiny = rng.choice([-1, 1], n // 4) * 10.0 ** rng.uniform(-37, 0, n // 4)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 88.7, -88.7, 89.0, -89.0, 103.9, -103.9,
                150.0, -150.0, 150.1, -150.1, 9.1, -9.1, 1 / 64, -1 / 64, 20.0, 3e38, -3e38]
    J = np.concatenate([rng.uniform(-200, 200, n // 4), rng.normal(0, 3, n // 4), tiny,
                        rng.uniform(-0.05, 0.05, n // 4 - len(specials)), specials])
    return rng.permutation(J).astype(np.float32)


def _soft_lif_rate(js, f, one, tau_rc, tau_ref, amplitude, sigma):
    """NengoDL's SoftLIFRate (csrc/kernels/neurons.h, soft_lif_q) on js = (J - 1) / sigma."""
    z = np.where(js > 30, js, f.log1p(f.exp(js))) * sigma
    q = np.where(js > -20, f.log1p(one / z), -js - f.log(sigma))
    return amplitude / (tau_ref + tau_rc * q)


# Each rate neuron's step with its parameters as float32 (as float32 runs store
# them), in the kernels' order of operations: ``f`` is exp, tanh or log1p.
RATE_STEPS = {
    "Sigmoid": ("neurons_sigmoid", dict(tau_ref=0.0025),
                lambda J, f, one, tau_ref: (one / tau_ref) / (one + f.exp(-J))),
    "Tanh": ("neurons_tanh", dict(tau_ref=0.004),
             lambda J, f, one, tau_ref: (one / tau_ref) * f.tanh(J)),
    "SoftLIFRate": ("neurons_soft_lif_rate",
                    dict(tau_rc=0.02, tau_ref=0.002, amplitude=1.0, sigma=0.05),
                    lambda J, f, one, tau_rc, tau_ref, amplitude, sigma: _soft_lif_rate(
                        (J - one) / sigma, f, one, tau_rc, tau_ref, amplitude, sigma)),
    "LIFRate": ("neurons_lif_rate", dict(tau_rc=0.02, tau_ref=0.002, amplitude=1.0),
                lambda J, f, one, tau_rc, tau_ref, amplitude: np.where(
                    J > one, amplitude / (tau_ref + tau_rc * f.log1p(one / (J - one))), 0)),
}


@pytest.mark.parametrize("name", sorted(RATE_STEPS))
def test_rate_float32_as_accurate_as_numpy_float32(name, rng, simd):
    """float32 Sigmoid, Tanh, SoftLIFRate and LIFRate compute exp, tanh and
    log1p in double lanes rounded to float (csrc/cpu/simd_math.h, SimdF32Math) and
    the rest in float as before.  Against
    float64 arithmetic on the same float32 inputs, ours is at most 2 ulps worse
    than the same formula on NumPy's float32 functions (Nengo's float32 step):
    a function's result may differ by an ulp, and the operations after it may
    then round to the other side once more (SoftLIFRate chains three
    functions: 2.0 at most over 30 seeds, as LIFRate).  Infinities, NaNs and
    zeros are the same."""
    n = 4096
    kind, params, formula = RATE_STEPS[name]
    currents = _special_currents(rng, n)
    if name == "LIFRate":
        currents = np.abs(currents) + np.float32(1)  # the interesting side of the threshold
    p = RawProgram(np.float32, 0, 2 * n, dt=DT)
    J, out = p.alloc(n), p.alloc(n)
    p.write(J, currents)
    p.add(kind, ints=dict(J=J, out=out), floats={k: np.full(n, v) for k, v in params.items()})
    p.run(1)
    ours = p.view(out)
    p32 = {k: np.float32(v) for k, v in params.items()}
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        exact = formula(currents.astype(np.float64), np, 1.0,
                        **{k: np.float64(v) for k, v in p32.items()})
        numpy32 = formula(currents, np, np.float32(1), **p32).astype(np.float32)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(numpy32))
    finite = np.isfinite(numpy32) & (numpy32 != 0) & (exact != 0)
    np.testing.assert_array_equal(ours[~finite & ~np.isnan(ours)],
                                  numpy32[~finite & ~np.isnan(numpy32)])
    ulps = lambda x: _float32_ulps(x[finite], exact[finite])  # noqa: E731
    assert finite.sum() > n // 2
    assert np.all(ulps(ours) <= ulps(numpy32) + 2), np.max(ulps(ours) - ulps(numpy32))


@pytest.mark.skipif(_native.cpu_simd_level() != "avx512", reason="the CPU has no AVX-512")
@pytest.mark.parametrize(
    "neuron_type",
    [nengo.LIF(), nengo.AdaptiveLIF(), nengo.LIFRate(), nengo.Tanh(), nengo.Sigmoid(),
     nengo_cuda.SoftLIFRate(sigma=0.1)],
    ids=lambda t: type(t).__name__,
)
@pytest.mark.parametrize("n, n_trials, dt", [(67, 1, 0.001), (700, 3, 0.001), (700, 2, 0.004)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_neurons_at_avx512_equal_avx2(neuron_type, n, n_trials, dt, dtype):
    """The neuron kernels at AVX-512's width (16 float32, 8 float64 lanes) give
    AVX2's results bit for bit: lanes are neurons, each lane computes what it
    would in a narrower vector, and a segment's last n % W neurons run at half
    the width (docs/benchmarks.md items 21, 22).  Rates up to 400 Hz and
    dt = 4 ms reach LIF's double-lane tier (dt / tau_rc > 1/8, overshoots),
    odd sizes the tails."""
    with nengo.Network(seed=3) as net:
        stim = nengo.Node(lambda t: [np.sin(40 * t) * 2, np.cos(23 * t)])
        # (a Sigmoid's rates lie between half its limit 1 / tau_ref and that)
        rates = (250, 390) if isinstance(neuron_type, nengo.Sigmoid) else (50, 400)
        ens = nengo.Ensemble(n, 2, neuron_type=neuron_type,
                             max_rates=nengo.dists.Uniform(*rates))
        nengo.Connection(stim, ens)
        probes = [nengo.Probe(ens.neurons, synapse=None)]
        if isinstance(neuron_type, nengo.LIF):
            probes.append(nengo.Probe(ens.neurons, "voltage", synapse=None))
    results = []
    for level in ["avx2", "avx512"]:
        with simd_level(level):
            with nengo_cuda.Simulator(net, dt=dt, dtype=dtype, minibatch_size=n_trials,
                                      progress_bar=False) as sim:
                sim.run_steps(60)
                results.append([sim.data[p] for p in probes])
    assert np.any(results[0][0] != 0)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def _columns_program(dtype, m, k, n_trials, a, xs, ys0, init, y_stride):
    """One columns-kernel block Y (= I) + A X of shared A (m x k), every trial."""
    p = RawProgram(dtype, m * k + m, k + m * y_stride, n_trials)
    A, I = p.alloc(m * k, shared=True), p.alloc(m, shared=True)
    x, y = p.alloc(k), p.alloc(m * y_stride)
    p.write(A, a.ravel())
    p.write(I, init)
    for t in range(n_trials):
        p.write(x, xs[t], t)
        p.write(y, ys0[t], t)
    ints = dict(rows=[m], cols=[k], A=[A[0]], A_rs=[k], A_cs=[1], X=[x[0]], X_s=[1],
                Y=[y[0]], Y_s=[y_stride])
    if init is not None:
        ints.update(I=[I[0]], I_s=[1])
    p.add("dot_inc", ints=ints)
    p.run()
    return [p.view(y, t)[::y_stride] for t in range(n_trials)]


@pytest.mark.skipif(_native.cpu_simd_level() != "avx512", reason="the CPU has no AVX-512")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [4, 7, 32])
@pytest.mark.parametrize("shape", [(500, 16), (37, 8), (70, 40), (130, 9), (10, 12), (64, 8)])
@pytest.mark.parametrize("from_init, y_stride", [(True, 1), (False, 1), (False, 3)])
def test_dot_inc_columns_at_avx512_equal_avx2(dtype, n_trials, shape, from_init, y_stride, rng):
    """Encoders of 8 columns or more in minibatches of 4 trials or more run at
    AVX-512's width, four trials at a time, and the rows after the last whole
    tile in tiles too, through a buffer (docs/benchmarks.md item 30): each row
    is still its multiply-adds in column order, so AVX2's results bit for bit,
    and NumPy's within rounding.  Odd trial counts take the two- and one-trial
    tiles; a strided Y the scalar stores."""
    m, k = shape
    a = rng.randn(m, k).astype(dtype)
    xs = [rng.randn(k).astype(dtype) for _ in range(n_trials)]
    ys0 = [rng.randn(m * y_stride).astype(dtype) for _ in range(n_trials)]
    init = rng.randn(m).astype(dtype) if from_init else None
    results = {}
    for level in ["avx2", "native"]:
        if level == "native":
            results[level] = _columns_program(dtype, m, k, n_trials, a, xs, ys0, init, y_stride)
        else:
            with simd_level(level):
                results[level] = _columns_program(dtype, m, k, n_trials, a, xs, ys0, init,
                                                  y_stride)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for t in range(n_trials):
        np.testing.assert_array_equal(results["native"][t], results["avx2"][t])
        start = init if from_init else ys0[t][::y_stride]
        expected = start.astype(np.float64) + a.astype(np.float64) @ xs[t]
        np.testing.assert_allclose(results["native"][t], expected, rtol=tol, atol=tol * 10)


def _rows_program(dtype, a, xs, ys0):
    """One rows-kernel block Y += A X of shared A, a trial per entry of xs."""
    m, k = a.shape
    n_trials = len(xs)
    p = RawProgram(dtype, m * k, k + m, n_trials)
    A, x, y = p.alloc(m * k, shared=True), p.alloc(k), p.alloc(m)
    p.write(A, a.ravel())
    for t in range(n_trials):
        p.write(x, xs[t], t)
        p.write(y, ys0[t], t)
    p.add("dot_inc", ints=dict(rows=[m], cols=[k], A=[A[0]], A_rs=[k], A_cs=[1], X=[x[0]],
                               X_s=[1], Y=[y[0]], Y_s=[1], A_volatile=[0]))
    p.run()
    return [p.view(y, t) for t in range(n_trials)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [4, 5, 9])
@pytest.mark.parametrize("shape", [(4, 100), (5, 129), (7, 300), (10, 100), (16, 500), (33, 257)])
@pytest.mark.parametrize("x_kind", ["dense", "spikes", "spikes first"])
def test_dot_inc_rows_trials_equal_one_by_one(dtype, n_trials, shape, x_kind, rng, simd):
    """A shared A of more than 64 columns (decoders, a dense layer's weights)
    runs four trials at a time where X is dense (sharing A's loads; at
    AVX-512's width two rows' AVX2 vectors in one; the rows after the last
    tile of 4 or 8 in one tile), and lists the nonzero columns
    of spikes (8 rows and more; a listing that meets mostly nonzeros in the
    first columns stops and runs the dense kernel).  Each (row, trial) sum is
    the same as with one trial: bit for bit; and NumPy's within rounding."""
    m, k = shape
    a = rng.randn(m, k).astype(dtype)
    xs = []
    for t in range(n_trials):
        if x_kind == "dense":
            xv = rng.randn(k)
        elif x_kind == "spikes":
            xv = np.where(rng.rand(k) < 0.05, 1000.0, 0.0)
        else:  # most of the first 80 columns, then nothing: a quarter or less in all
            xv = np.where((np.arange(k) < 80) & (rng.rand(k) < 0.9), 1000.0, 0.0)
        xs.append(xv.astype(dtype))
    ys0 = [rng.randn(m).astype(dtype) for _ in range(n_trials)]
    together = _rows_program(dtype, a, xs, ys0)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for t in range(n_trials):
        alone = _rows_program(dtype, a, xs[t:t + 1], ys0[t:t + 1])[0]
        np.testing.assert_array_equal(together[t], alone)
        expected = ys0[t].astype(np.float64) + a.astype(np.float64) @ xs[t]
        scale = np.abs(a).astype(np.float64) @ np.abs(xs[t]) + 1
        np.testing.assert_allclose(together[t], expected, rtol=0, atol=tol * scale.max())


@pytest.mark.skipif(_native.cpu_simd_level() != "avx512", reason="the CPU has no AVX-512")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_trials", [1, 5])
@pytest.mark.parametrize("shape", [(8, 37), (16, 500), (12, 129), (33, 40), (100, 64), (64, 3000)])
@pytest.mark.parametrize("density", [0.05, 0.2, 1.0])
def test_dot_inc_sparse_at_avx512_equal_avx2(dtype, n_trials, shape, density, rng):
    """Spikes into a shared A of 8 rows or more run at AVX-512's width at any
    minibatch size: 16 columns listed at a time (AVX-512's compress), the
    listed columns' multiply-adds 16 rows at a time.  Each row's sums are the
    listed columns in order, in the same two sums: AVX2's results bit for bit
    (X of density 0.2 and 1.0 takes the dense kernel in some or all trials)."""
    m, k = shape
    a = rng.randn(m, k).astype(dtype)
    xs = [np.where(rng.rand(k) < density, rng.randn(k) * 1000, 0.0).astype(dtype)
          for _ in range(n_trials)]
    ys0 = [rng.randn(m).astype(dtype) for _ in range(n_trials)]
    with simd_level("avx2"):
        narrow = _rows_program(dtype, a, xs, ys0)
    wide = _rows_program(dtype, a, xs, ys0)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    for t in range(n_trials):
        np.testing.assert_array_equal(wide[t], narrow[t])
        expected = ys0[t].astype(np.float64) + a.astype(np.float64) @ xs[t]
        scale = np.abs(a).astype(np.float64) @ np.abs(xs[t]) + 1
        np.testing.assert_allclose(wide[t], expected, rtol=0, atol=tol * scale.max())


@pytest.mark.parametrize("n_trials", [1, 3])
@pytest.mark.parametrize("merged", [False, True])
def test_lif_rate_computes_neurons_above_threshold(n_trials, merged, simd):
    """float32 LIFRate computes only the neurons above threshold in vectors
    (compacted with their indices, as LIF stages its spiking lanes; the
    others output 0), each lane as it would in place.  Against the rates of
    the currents our run gave them, in float64, within float32 rounding: a
    neuron given another's rate, J or parameters would be far off.  Merged
    ensembles of different parameters and odd sizes (parameters gathered by
    index) or one ensemble (one value each), inputs that cross the
    threshold, a neuron at J exactly 1."""
    types = [nengo.LIFRate(tau_rc=0.02, tau_ref=0.002),
             nengo.LIFRate(tau_rc=0.05, tau_ref=0.001, amplitude=0.5)]
    with nengo.Network(seed=5) as net:
        stim = nengo.Node(lambda t: [np.sin(30 * t) * 1.5, np.cos(17 * t)])
        sizes = [37, 300] if merged else [1001]
        ens = [nengo.Ensemble(n, 2, neuron_type=t) for n, t in zip(sizes, types)]
        for e in ens:
            nengo.Connection(stim, e)
        exact = nengo.Node([1.0])  # J = 1 exactly: rate 0
        one = nengo.Ensemble(1, 1, neuron_type=types[0], gain=[1.0], bias=[0.0])
        nengo.Connection(exact, one.neurons, synapse=None)
        ens.append(one)
        rates = [nengo.Probe(e.neurons, synapse=None) for e in ens]
        currents = [nengo.Probe(e.neurons, "input", synapse=None) for e in ens]
    with nengo_cuda.Simulator(net, dtype="float32", minibatch_size=n_trials,
                              progress_bar=False) as sim:
        sim.run_steps(50)
    active = []
    for e, pr, pj in zip(ens, rates, currents):
        ours, J = sim.data[pr], sim.data[pj].astype(np.float64)
        lif = e.neuron_type
        with np.errstate(divide="ignore"):
            expected = np.where(J > 1, lif.amplitude / (
                lif.tau_ref + lif.tau_rc * np.log1p(1 / np.maximum(J - 1, 0))), 0.0)
        np.testing.assert_array_equal(ours == 0, expected == 0)
        np.testing.assert_allclose(ours, expected, rtol=2e-6)
        active.append((J > 1).ravel())
    assert 0.2 < np.mean(np.concatenate(active[:-1])) < 0.8  # below and above threshold
    assert not active[-1].any() and np.all(sim.data[rates[-1]] == 0)
