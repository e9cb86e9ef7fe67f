"""conv_inc (ConvInc, ConvTransposeInc) against Nengo's own step functions.

The reference is the operator's ``make_step`` (nengo/builder/transforms.py), so
these tests check our tables (nengo_cuda/lowering/conv.py) and the kernel
together.  Operands sit in a NaN-poisoned pool with gaps (the input is strided)
and a reversed output, so a read of a wrong element or a skipped output shows.
"""

import nengo
import numpy as np
import pytest
from nengo.builder.signal import Signal, SignalDict
from nengo.builder.transforms import ConvInc, ConvTransposeInc

from kernel_harness import RawProgram
from nengo_cuda import _native
from nengo_cuda.lowering.conv import conv_fields
from nengo_cuda.testing import simd_level


def random_conv(rng, filters_per_group=(1, 2, 3)):
    """A random 1-D or 2-D Convolution or ConvolutionTranspose (odd sizes,
    strides, both paddings, channels first or last, groups, output shapes),
    with one of ``filters_per_group`` filters per group."""
    while True:
        dims = int(rng.choice([1, 2]))
        spatial = tuple(int(s) for s in rng.randint(1, 8, size=dims))
        kernel = tuple(int(min(rng.randint(1, 5), s)) for s in spatial)
        strides = tuple(int(s) for s in rng.randint(1, 4, size=dims))
        padding = str(rng.choice(["same", "valid"]))
        last = bool(rng.rand() < 0.5)
        transpose = rng.rand() < 0.4
        groups = 1 if transpose else int(rng.choice([1, 1, 2, 3]))
        chans, filters = groups * rng.randint(1, 4), groups * int(rng.choice(filters_per_group))
        shape = spatial + (chans,) if last else (chans,) + spatial
        kw = dict(kernel_size=kernel, strides=strides, padding=padding, channels_last=last)
        try:
            if not transpose:
                return nengo.Convolution(filters, shape, groups=groups, **kw)
            conv = nengo.transforms.ConvolutionTranspose(filters, shape, **kw)
            if rng.rand() < 0.5:  # a larger output shape that maps to the same input
                out = tuple(s + rng.randint(0, st) for s, st in
                            zip(conv.output_shape.spatial_shape, strides))
                out = out + (filters,) if last else (filters,) + out
                conv = nengo.transforms.ConvolutionTranspose(filters, shape, output_shape=out, **kw)
            return conv
        except nengo.exceptions.ValidationError:
            continue  # e.g. "valid" with a kernel larger than the input


def nengo_increment(conv, W, X):
    """What Nengo's operator adds to a zero output."""
    sigs = [Signal(np.asarray(v, dtype=np.float64)) for v in (W, X, np.zeros(conv.size_out))]
    cls = ConvTransposeInc if isinstance(conv, nengo.transforms.ConvolutionTranspose) else ConvInc
    op = cls(*sigs, conv)
    signals = SignalDict()
    for s in sigs:
        signals.init(s)
    op.make_step(signals, 0.001, np.random)()
    return signals[sigs[2]].copy()


def place(p, conv, rng, x_s=2, y_s=-1):
    """W (shared), X (strided, gaps left NaN) and Y (reversed, or contiguous
    with ``y_s=1``) in a RawProgram; returns their addresses and the
    instruction's fields."""
    w = p.alloc(int(np.prod(conv.kernel_shape)), shared=True)
    x = p.alloc(conv.size_in * x_s)[::x_s]
    y = p.alloc(conv.size_out)[::y_s]
    ints, scalars = conv_fields(conv, x[0], x_s, y[0], y_s, w[0])
    return w, x, y, ints, scalars


def conv_program(conv, dtype, n_trials, rng, y_s=-1, set_=False):
    n_state = conv.size_in * 2 + conv.size_out
    p = RawProgram(dtype, int(np.prod(conv.kernel_shape)), n_state, n_trials)
    w, x, y, ints, scalars = place(p, conv, rng, y_s=y_s)
    p.write(w, rng.uniform(-1, 1, w.size))
    for t in range(n_trials):
        p.write(x, rng.uniform(-1, 1, x.size), t)
        p.write(y, rng.uniform(-1, 1, y.size), t)
    p.add("conv_inc", ints=ints, scalars={**scalars, "set": int(set_)})
    return p, w, x, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conv_inc_matches_nengo(dtype, rng, simd):
    for _ in range(60):
        conv = random_conv(rng)
        n_trials = int(rng.choice([1, 2, 5]))  # 5: a tile of 4 trials and a single one
        p, w, x, y, = conv_program(conv, dtype, n_trials, rng)
        W = p.view(w).astype(np.float64).reshape(conv.kernel_shape)
        before = [p.view(y, t).astype(np.float64) for t in range(n_trials)]
        p.run(2)  # an increment: twice the product
        for t in range(n_trials):
            X = p.view(x, t).astype(np.float64)
            expected = before[t] + 2 * nengo_increment(conv, W, X)
            got = p.view(y, t)
            assert np.isfinite(got).all(), f"{conv}: read a poisoned element"
            if dtype == np.float64:
                np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=str(conv))
            else:
                # float32 sums of at most taps * channels terms of size <= 1:
                # error <= terms * eps32 * sum |terms|; bounded by the |W| * |X| product
                scale = nengo_increment(conv, np.abs(W), np.abs(X))
                np.testing.assert_array_less(np.abs(got - expected), 1e-5 * (2 * scale + 1))


WIDE = [  # enough filters per group for the CPU kernel's vector tiles and its tails
    nengo.Convolution(37, (6, 5, 3), kernel_size=(3, 2), padding="same"),
    nengo.Convolution(38, (4, 3, 7), strides=(2, 1), channels_last=False, groups=2),
    nengo.transforms.ConvolutionTranspose(21, (4, 3, 5), strides=(2, 2), padding="same"),
    nengo.Convolution(70, (9, 2), kernel_size=(4,), strides=(2,)),
    # AVX-512 float32: 2 vectors, a half vector (8), 5 left; float64 4 + 1 + half + 1
    nengo.Convolution(45, (5, 4, 2), kernel_size=(2, 2)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("conv", WIDE, ids=lambda c: f"{type(c).__name__}{c.n_filters}")
@pytest.mark.parametrize("n_trials", [6, 2])
@pytest.mark.parametrize("y_s", [-1, 1])
def test_conv_inc_many_filters(conv, dtype, n_trials, y_s, rng, simd):
    """6 trials in one view: a tile of 4 trials, then 2 single ones; 2 trials:
    tiles of 4 output positions that are shifts of each other, then single ones.
    Y contiguous (y_s=1): channels-last outputs take whole vectors."""
    p, w, x, y = conv_program(conv, dtype, n_trials, rng, y_s=y_s)
    p.native.set_trial_threads(1)
    W = p.view(w).astype(np.float64).reshape(conv.kernel_shape)
    before = [p.view(y, t).astype(np.float64) for t in range(n_trials)]
    p.run()
    for t in range(n_trials):
        X = p.view(x, t).astype(np.float64)
        expected = before[t] + nengo_increment(conv, W, X)
        scale = nengo_increment(conv, np.abs(W), np.abs(X))
        eps = np.finfo(dtype).eps
        np.testing.assert_array_less(np.abs(p.view(y, t) - expected), 4 * eps * (scale + 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("conv", WIDE, ids=lambda c: f"{type(c).__name__}{c.n_filters}")
def test_conv_inc_same_with_avx2_and_avx512(conv, dtype):
    """Lanes are filters: every output sums its terms in the same order with
    AVX-512 (16 floats, tiles of 4 vectors) as with AVX2 (8 floats, tiles of
    2), and both fuse multiply-adds, so results agree bit for bit."""
    if _native.cpu_simd_level() != "avx512":
        pytest.skip("the CPU has no AVX-512")
    results = []
    for level in ("avx2", "avx512"):
        with simd_level(level):
            p, w, x, y = conv_program(conv, dtype, 6, np.random.RandomState(5))
            p.run()
            results.append([p.view(y, t).copy() for t in range(6)])
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_trials", [1, 2, 6])
@pytest.mark.parametrize("y_s", [-1, 1])
def test_conv_inc_set_equals_reset_then_increment(dtype, n_trials, y_s, rng, simd):
    """With ``set`` (a `~nengo_cuda.fusion.ConvSet`: Nengo's reset fused in)
    the output, poisoned with NaN before, holds exactly what an increment of
    a zeroed output holds: the sum starts from +0 either way."""
    for conv in WIDE + [random_conv(rng) for _ in range(20)]:
        results = []
        for set_ in (False, True):
            p, w, x, y = conv_program(conv, dtype, n_trials, np.random.RandomState(3), y_s=y_s,
                                      set_=set_)
            for t in range(n_trials):
                p.write(y, np.full(y.size, np.nan if set_ else 0.0), t)
            p.run(2 if set_ else 1)  # set twice: still one sum, not two
            results.append([p.view(y, t).copy() for t in range(n_trials)])
        assert np.isfinite(results[1]).all(), f"{conv}: an output was not written"
        np.testing.assert_array_equal(results[1], results[0], err_msg=str(conv))


def test_conv_inc_grouped_filters_use_their_channels(rng):
    """A depthwise convolution (groups == channels == filters): filter f sees
    only channel f, so zeroing one channel zeroes exactly one output channel."""
    conv = nengo.Convolution(3, (4, 4, 3), kernel_size=(3, 3), padding="same", groups=3)
    p, w, x, y = conv_program(conv, np.float64, 1, rng)
    xv = p.view(x).reshape(4, 4, 3)
    xv[..., 1] = 0
    p.write(x, xv.ravel())
    y0 = p.view(y).reshape(4, 4, 3)
    p.run()
    change = p.view(y).reshape(4, 4, 3) - y0
    assert np.all(change[..., 1] == 0)
    assert np.all(change[..., [0, 2]] != 0)


def test_conv_inc_rejects_bad_tables(rng):
    conv = nengo.Convolution(2, (5, 5, 1), kernel_size=(3, 3))
    p = RawProgram(np.float64, int(np.prod(conv.kernel_shape)), conv.size_in * 2 + conv.size_out)
    _, _, _, ints, scalars = place(p, conv, rng)

    def add(ints=ints, **changes):
        p.add("conv_inc", ints=ints, scalars={**scalars, **changes})

    bad_pos = dict(ints, pos=np.where(ints["pos"] == 0, 25, ints["pos"]))
    with pytest.raises(ValueError, match="position or tap out of range"):
        add(ints=bad_pos)
    with pytest.raises(ValueError, match="malformed tables"):
        add(ints=dict(ints, indptr=ints["indptr"][:-1]))
    with pytest.raises(ValueError, match="channels, filters, groups"):
        add(groups=3)  # does not divide the channels
    with pytest.raises(IndexError, match="outside buffer"):
        add(X=p.n_shared + p.n_state - 3)
    with pytest.raises(ValueError, match="shared/state boundary"):
        add(W=p.n_shared - 2)
