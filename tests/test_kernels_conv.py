"""conv_inc (ConvInc, ConvTransposeInc) against Nengo's own step functions.

The reference is the operator's ``make_step`` (nengo/builder/transforms.py), so
these tests check our geometry (nengo_cuda/lowering/conv.py) and the kernel
together; the pairs the kernel computes from the geometry are also checked one
by one against a loop over the convolution's definition (`reference_pairs`).  Nengo's step runs 1-D and 2-D convolutions only; for 3-D ones the
reference is the convolution's definition in NumPy (`definition_increment`),
itself checked against Nengo's step on 1-D and 2-D convolutions and against
TensorFlow's on 3-D ones.  Operands sit in a NaN-poisoned pool with gaps (the
input is strided) and a reversed output, so a read of a wrong element or a
skipped output shows.
"""

import nengo
import numpy as np
import pytest
from nengo.builder.signal import Signal, SignalDict
from nengo.builder.transforms import ConvInc, ConvTransposeInc

from kernel_harness import RawProgram
from nengo_cuda import _native
from nengo_cuda.lowering.conv import conv_fields, geometry
from nengo_cuda.testing import simd_level


def random_conv(rng, filters_per_group=(1, 2, 3), dims=(1, 2)):
    """A random Convolution or ConvolutionTranspose with one of ``dims``
    spatial dimensions (odd sizes, strides, both paddings, channels first or
    last, groups, output shapes), with one of ``filters_per_group`` filters
    per group."""
    while True:
        n_dims = int(rng.choice(dims))
        spatial = tuple(int(s) for s in rng.randint(1, 8 if n_dims < 3 else 6, size=n_dims))
        kernel = tuple(int(min(rng.randint(1, 5), s)) for s in spatial)
        strides = tuple(int(s) for s in rng.randint(1, 6, size=n_dims))  # some past the kernel
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


def definition_increment(conv, W, X):
    """What a (transposed) convolution adds to a zero output, by its definition,
    for any number of spatial axes: a forward convolution from ``n`` to ``m``
    positions (kernel ``k``, stride ``s``) reads, for output ``o`` and tap
    ``t``, padded position ``o s + t`` (``p`` zeros before the input: half of
    ``max((m - 1) s + k - n, 0)``, rounded down, for "same"), channels of
    filter ``f``'s group only; a transposed one is its adjoint."""
    transpose = isinstance(conv, nengo.transforms.ConvolutionTranspose)
    x_shape, y_shape = conv.input_shape, conv.output_shape
    fwd_in, fwd_out = (y_shape, x_shape) if transpose else (x_shape, y_shape)
    n, m = fwd_in.spatial_shape, fwd_out.spatial_shape
    k, s = conv.kernel_size, conv.strides
    total = [max((mi - 1) * si + ki - ni, 0) if conv.padding == "same" else 0
             for ni, mi, ki, si in zip(n, m, k, s)]
    inner = tuple(slice(ti // 2, ti // 2 + ni) for ti, ni in zip(total, n))
    padded = tuple(max(ni + ti, (mi - 1) * si + ki) for ni, mi, ki, si, ti in
                   zip(n, m, k, s, total))
    x = np.asarray(X, dtype=np.float64).reshape(x_shape.shape)
    x = x if conv.channels_last else np.moveaxis(x, 0, -1)
    W = np.asarray(W, dtype=np.float64).reshape(conv.kernel_shape)
    groups = getattr(conv, "groups", 1)
    cg, fpg = x.shape[-1] // groups, conv.n_filters // groups
    if transpose:  # scatter into the padded input of the forward convolution
        y = np.zeros(padded + (conv.n_filters,))
    else:
        xp = np.zeros(padded + (x.shape[-1],))
        xp[inner] = x
        y = np.zeros(tuple(m) + (conv.n_filters,))
    for t in np.ndindex(*k):
        window = tuple(slice(ti, ti + (mi - 1) * si + 1, si) for ti, mi, si in zip(t, m, s))
        for g in range(groups):
            c, f = slice(g * cg, (g + 1) * cg), slice(g * fpg, (g + 1) * fpg)
            if transpose:
                y[window + (f,)] += x[..., c] @ W[t][c, f]
            else:
                y[..., f] += xp[window + (c,)] @ W[t][:, f]
    y = y[inner] if transpose else y
    return (y if conv.channels_last else np.moveaxis(y, -1, 0)).ravel()


def reference_increment(conv, W, X):
    """Nengo's increment, or the definition's where Nengo's step does not run (3-D)."""
    return (nengo_increment if conv.dimensions <= 2 else definition_increment)(conv, W, X)


def test_definition_matches_nengo(rng):
    """The 3-D reference follows Nengo's conventions (padding, strides,
    groups, transposes, channels first) where Nengo's own step runs."""
    for _ in range(60):
        conv = random_conv(rng)
        W = rng.uniform(-1, 1, conv.kernel_shape)
        X = rng.uniform(-1, 1, conv.size_in)
        np.testing.assert_allclose(definition_increment(conv, W, X),
                                   nengo_increment(conv, W, X),
                                   rtol=1e-12, atol=1e-12, err_msg=str(conv))


def test_definition_matches_tensorflow_3d(rng):
    """... and TensorFlow's on 3-D ones: forward convolutions (groups one by
    one) and transposed ones (TensorFlow's kernel has the channel axes
    swapped), channels first moved to last.  TensorFlow's CPU convolution
    (Eigen: float64, or float32 without oneDNN) shifts the input of a "same"
    3-D convolution whose total padding on an axis would be -2 or less (a
    stride exceeding the kernel); its padding is given explicitly here."""
    tf = pytest.importorskip("tensorflow")
    for _ in range(30):
        conv = random_conv(rng, dims=(3,))
        W = rng.uniform(-1, 1, conv.kernel_shape)
        X = rng.uniform(-1, 1, conv.size_in)
        x = X.reshape(conv.input_shape.shape)
        x = tf.constant((x if conv.channels_last else np.moveaxis(x, 0, -1))[None])
        if isinstance(conv, nengo.transforms.ConvolutionTranspose):
            out = conv.output_shape
            y = tf.nn.conv_transpose(x, np.swapaxes(W, -1, -2),
                                     (1,) + out.spatial_shape + (out.n_channels,),
                                     strides=conv.strides, padding=conv.padding.upper())
        else:
            if conv.padding == "same":
                total = [max((m - 1) * s + k - n, 0) for n, m, k, s in zip(
                    conv.input_shape.spatial_shape, conv.output_shape.spatial_shape,
                    conv.kernel_size, conv.strides)]
                x = tf.pad(x, [(0, 0)] + [(t // 2, t - t // 2) for t in total] + [(0, 0)])
            y = tf.concat([tf.nn.convolution(xg, wg, strides=conv.strides, padding="VALID")
                           for xg, wg in zip(tf.split(x, conv.groups, axis=-1),
                                             np.split(W, conv.groups, axis=-1))], axis=-1)
        y = y.numpy()[0]
        y = (y if conv.channels_last else np.moveaxis(y, -1, 0)).ravel()
        np.testing.assert_allclose(definition_increment(conv, W, X), y, rtol=1e-12,
                                   atol=1e-12, err_msg=str(conv))


def reference_pairs(conv):
    """Per output position of ``conv``, its (input position, kernel tap) pairs
    in the order Nengo sums them (taps in C order), by looping over the
    definition: a forward convolution's output ``o`` reads input ``o s - p + t``
    along each axis (``p`` the padding before, half of ``max((m - 1) s + k -
    n, 0)`` rounded down for "same"); a transposed one's output ``r`` reads the
    forward outputs ``o`` with ``o s - p + t = r``.  Positions and taps
    flattened in C order."""
    transpose = isinstance(conv, nengo.transforms.ConvolutionTranspose)
    x, y = conv.input_shape.spatial_shape, conv.output_shape.spatial_shape
    n, m = (y, x) if transpose else (x, y)  # the forward convolution's in and out
    k, s = conv.kernel_size, conv.strides
    p = [max((mi - 1) * si + ki - ni, 0) // 2 if conv.padding == "same" else 0
         for ni, mi, ki, si in zip(n, m, k, s)]
    rows = []
    for r in np.ndindex(*y):
        pairs = []
        for t in np.ndindex(*k):
            if transpose:
                o = [(ri + pi - ti) / si for ri, pi, ti, si in zip(r, p, t, s)]
                inside = all(oi == int(oi) and 0 <= oi < mi for oi, mi in zip(o, m))
                col = tuple(int(oi) for oi in o)
            else:
                col = tuple(ri * si - pi + ti for ri, si, pi, ti in zip(r, s, p, t))
                inside = all(0 <= ci < ni for ci, ni in zip(col, n))
            if inside:
                pairs.append((np.ravel_multi_index(col, x), np.ravel_multi_index(t, k)))
        rows.append(pairs)
    return rows


def native_pairs(conv):
    """What the kernels compute for ``conv``, in the form of `reference_pairs`."""
    counts, pos, tap = _native.conv_pairs(*geometry(conv))
    ends = np.cumsum(counts)
    return [list(zip(pos[e - c:e].tolist(), tap[e - c:e].tolist())) for c, e in zip(counts, ends)]


@pytest.mark.parametrize("dims", [(1,), (2,), (3,)])
def test_pairs_follow_the_definition(dims, rng):
    """Each output position's pairs, computed from the geometry alone (no
    tables), are the definition's, in its order: forward and transposed,
    strides larger and smaller than the kernel, both paddings, output shapes
    of transposed convolutions that leave positions unread."""
    for _ in range(40 if dims != (3,) else 20):
        conv = random_conv(rng, dims=dims)
        assert native_pairs(conv) == reference_pairs(conv), conv


def test_pairs_of_large_kernels():
    """A kernel as large as its input (every position reads every other one
    with "same" padding) and strides past the kernel, forward and transposed."""
    convs = [nengo.Convolution(1, (9, 9, 1), kernel_size=(9, 9), padding="same"),
             nengo.Convolution(2, (1, 11, 7), kernel_size=(5, 2), strides=(4, 3),
                               padding="same", channels_last=False),
             nengo.transforms.ConvolutionTranspose(1, (3, 4, 1), kernel_size=(2, 3),
                                                   strides=(5, 4), padding="same"),
             nengo.transforms.ConvolutionTranspose(1, (4, 1), kernel_size=(7,), strides=(2,),
                                                   padding="valid")]
    for conv in convs:
        assert native_pairs(conv) == reference_pairs(conv), conv


@pytest.mark.parametrize("n_trials", [1, 2])
def test_transposed_with_unread_outputs(n_trials, rng):
    """Transposed convolutions whose strides exceed their kernels leave output
    positions that read nothing (they stay 0): the CPU's runs of positions
    that share their pairs must not take such a position into a run of one
    that reads (kernel and stride differing by axis, so that empty positions
    have patterns of their own)."""
    T = nengo.transforms.ConvolutionTranspose
    for conv in [T(1, (1, 6, 1), kernel_size=(4, 1), strides=(5, 5), output_shape=(4, 26, 1)),
                 T(2, (3, 5, 2), kernel_size=(3, 1), strides=(4, 5), padding="same"),
                 T(1, (4, 3, 1), kernel_size=(5, 1), strides=(2, 5))]:
        p, w, x, y = conv_program(conv, np.float64, n_trials, rng, set_=True)
        p.run(1)
        W = p.view(w).reshape(conv.kernel_shape)
        for t in range(n_trials):
            np.testing.assert_allclose(p.view(y, t), reference_increment(conv, W, p.view(x, t)),
                                       rtol=1e-12, atol=1e-12, err_msg=str(conv))


def test_conv_geometry_checked():
    """The native side refuses a geometry it cannot index."""
    axes, transpose = geometry(nengo.Convolution(1, (5, 5, 1), kernel_size=(3, 3)))
    with pytest.raises(ValueError, match="5 values for each of 3 spatial axes"):
        _native.conv_pairs(axes[:-1], transpose)
    for field, value in [(0, 0), (2, 0), (3, 0), (4, -1), (1, 1 << 30)]:
        bad = axes.copy()
        bad[5 + field] = value
        with pytest.raises(ValueError, match="must lie in"):
            _native.conv_pairs(bad, transpose)
    big = axes.copy()
    big[[0, 5, 10]] = 1 << 11  # 2^33 output positions
    with pytest.raises(ValueError, match="more than 2.31 positions"):
        _native.conv_pairs(big, transpose)


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
        conv = random_conv(rng, dims=(1, 2, 3))
        n_trials = int(rng.choice([1, 2, 5]))  # 5: a tile of 4 trials and a single one
        p, w, x, y, = conv_program(conv, dtype, n_trials, rng)
        W = p.view(w).astype(np.float64).reshape(conv.kernel_shape)
        before = [p.view(y, t).astype(np.float64) for t in range(n_trials)]
        p.run(2)  # an increment: twice the product
        for t in range(n_trials):
            X = p.view(x, t).astype(np.float64)
            expected = before[t] + 2 * reference_increment(conv, W, X)
            got = p.view(y, t)
            assert np.isfinite(got).all(), f"{conv}: read a poisoned element"
            if dtype == np.float64:
                np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, err_msg=str(conv))
            else:
                # float32 sums of at most taps * channels terms of size <= 1:
                # error <= terms * eps32 * sum |terms|; bounded by the |W| * |X| product
                scale = reference_increment(conv, np.abs(W), np.abs(X))
                np.testing.assert_array_less(np.abs(got - expected), 1e-5 * (2 * scale + 1))


WIDE = [  # enough filters per group for the CPU kernel's vector tiles and its tails
    nengo.Convolution(37, (6, 5, 3), kernel_size=(3, 2), padding="same"),
    nengo.Convolution(38, (4, 3, 7), strides=(2, 1), channels_last=False, groups=2),
    nengo.transforms.ConvolutionTranspose(21, (4, 3, 5), strides=(2, 2), padding="same"),
    nengo.Convolution(70, (9, 2), kernel_size=(4,), strides=(2,)),
    # AVX-512 float32: 2 vectors, a half vector (8), 5 left; float64 4 + 1 + half + 1
    nengo.Convolution(45, (5, 4, 2), kernel_size=(2, 2)),
    # 3-D: strided, grouped, channels first, transposed
    nengo.Convolution(40, (4, 5, 3, 2), kernel_size=(2, 3, 2), strides=(1, 2, 1),
                      padding="same", groups=2),
    nengo.Convolution(21, (3, 4, 3, 5), kernel_size=(2, 2, 3), strides=(1, 1, 1),
                      channels_last=False),
    nengo.transforms.ConvolutionTranspose(19, (3, 2, 4, 3), kernel_size=(2, 3, 2),
                                          strides=(2, 1, 2), padding="same"),
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
        expected = before[t] + reference_increment(conv, W, X)
        scale = reference_increment(conv, np.abs(W), np.abs(X))
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
    for conv in WIDE + [random_conv(rng, dims=(1, 2, 3)) for _ in range(20)]:
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


def test_conv_inc_rejects_bad_geometry(rng):
    conv = nengo.Convolution(2, (5, 5, 1), kernel_size=(3, 3))
    p = RawProgram(np.float64, int(np.prod(conv.kernel_shape)), conv.size_in * 2 + conv.size_out)
    _, _, _, ints, scalars = place(p, conv, rng)

    def add(ints=ints, **changes):
        p.add("conv_inc", ints=ints, scalars={**scalars, **changes})

    with pytest.raises(ValueError, match="conv_inc: axes must hold"):
        add(ints={"axes": ints["axes"][:10]})
    larger = ints["axes"].copy()
    larger[2] += 1  # a kernel larger than W
    with pytest.raises(ValueError, match="shared/state boundary"):
        add(ints={"axes": larger})
    with pytest.raises(ValueError, match="channels, filters or groups"):
        add(groups=3)  # does not divide the channels
    with pytest.raises(IndexError, match="outside buffer"):
        add(X=p.n_shared + p.n_state - 3)
    with pytest.raises(ValueError, match="shared/state boundary"):
        add(W=p.n_shared - 2)
