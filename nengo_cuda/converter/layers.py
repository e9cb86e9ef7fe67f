"""One converter per Keras layer type: the layer's math as Nengo objects.

A converter is ``convert(ctx, layer, inputs, out_shapes) -> [Tensor]``: ``inputs``
are the converted input tensors, ``out_shapes`` the layer's output shapes
(without the batch axis); it builds Nengo objects through ``ctx`` (the
`nengo_cuda.converter.Converter`) and returns one `Tensor` per output.  It
raises `Unconvertible` when this layer's configuration has no native form; the
converter then falls back to a TensorNode (or refuses, see ``allow_fallback``).

Keras and Nengo store tensors alike (C order of the shape without the batch
axis; Keras' channels_first/channels_last is Nengo's ``channels_last``), and a
Keras convolution kernel ``kernel_size + (in_channels / groups, filters)`` is a
Nengo kernel, so reshapes are free and convolutions map one to one.

A Conv3D layer is a 3-D `nengo.Convolution`, as in NengoDL (our simulator runs
it; Nengo's reference simulator runs 1-D and 2-D convolutions only).  The other
3-D layers are built from what runs everywhere: a 3-D transposed convolution is
one 2-D `nengo.Convolution` over a restacked copy of its input (`_conv3d`), 3-D
pooling a constant sparse averaging map.
"""

from collections import namedtuple

import nengo
import numpy as np

from .activations import leaky_relu
from ..training.tensor_node import INFERENCE_IDENTITIES

Tensor = namedtuple("Tensor", ["obj", "shape"])  # a Nengo object to connect from

CONVERTERS = {}  # Keras layer class name -> converter


class Unconvertible(Exception):
    """This layer (as configured) has no native Nengo form; the message says why."""


def register(*names):
    def decorator(fn):
        for name in names:
            CONVERTERS[name] = fn
        return fn
    return decorator


def _size(shape):
    return int(np.prod(shape))


def _single(layer, inputs):
    if len(inputs) != 1:
        raise Unconvertible(f"{type(layer).__name__} with {len(inputs)} inputs")
    return inputs[0]


def _value_axis(ctx, axis, shape):
    """Keras axis ``axis`` (counting the batch axis, and the time axis of a
    temporal model) of a tensor whose values per item (per step) have
    ``shape``, as an axis of ``shape``; None for the batch (time) axis."""
    axis = int(axis)
    full = axis if axis >= 0 else axis + len(shape) + ctx.lead
    return None if full < ctx.lead else full - ctx.lead


def _lead_names(ctx):
    return "batch or time" if ctx.lead == 2 else "batch"


def _channels_last(layer):
    fmt = getattr(layer, "data_format", "channels_last") or "channels_last"
    return fmt == "channels_last"


def _channel_of(shape, channels_last):
    """Each element's channel, for a tensor of ``shape``."""
    return np.indices(shape)[-1 if channels_last else 0].ravel()


# -- inputs, reshapes ----------------------------------------------------------
@register("Flatten")
def flatten(ctx, layer, inputs, out_shapes):
    inp = _single(layer, inputs)
    if not _channels_last(layer) and len(inp.shape) > 1:
        raise Unconvertible("Flatten with data_format='channels_first' reorders elements")
    return [Tensor(inp.obj, out_shapes[0])]


@register("Reshape")
def passthrough(ctx, layer, inputs, out_shapes):
    """Layers that keep every value in place."""
    inp = _single(layer, inputs)
    return [Tensor(inp.obj, out_shapes[0])]


@register(*INFERENCE_IDENTITIES)
def training_only(ctx, layer, inputs, out_shapes):
    """Layers that are identities at inference and act only in training
    (dropout, noise, an activity loss): passthroughs with ``inference_only``;
    otherwise TensorNodes running the Keras layer, which act in ``fit`` as in
    Keras (NengoDL, which has no converter for them, runs them so; as
    passthroughs, ``fit`` silently trained without dropout)."""
    if not ctx.inference_only:
        raise Unconvertible("it acts only in training (dropout, noise or an activity loss), "
                            "which has no native form: no native form unless "
                            "inference_only=True")
    return passthrough(ctx, layer, inputs, out_shapes)


# -- dense and convolutions ---------------------------------------------------
def _weighted(ctx, layer, inp, out_shape, transform, bias, channel_of):
    """``activation(transform(inp) + bias)``: the layer's output object.

    A bias per output element into neurons is the neurons' own (trainable) bias,
    as NengoDL converts a Dense layer: no extra connection, and the network has
    NengoDL's objects (so the same seed gives the same spiking initial states);
    a Node's bias, or a bias shared by the elements of a channel, comes from a
    constant Node."""
    neuron_type = ctx.neuron_type(layer, getattr(layer, "activation", None))
    own_bias = bias is not None and neuron_type is not None and channel_of is None
    out = ctx.layer_output(layer, _size(out_shape), neuron_type,
                           bias=bias if own_bias else None)
    ctx.connect(inp.obj, out, transform)
    if bias is not None and not own_bias:
        ctx.add_bias(out, bias, channel_of)
    return [Tensor(out, out_shape)]


def _bias(layer):
    return layer.bias.numpy() if getattr(layer, "use_bias", False) else None


@register("Dense")
def dense(ctx, layer, inputs, out_shapes):
    inp = _single(layer, inputs)
    if len(inp.shape) != 1:
        raise Unconvertible(f"Dense on a {len(inp.shape)}-D input (only vectors)")
    kernel = layer.kernel.numpy()  # (in, units)
    return _weighted(ctx, layer, inp, out_shapes[0], kernel.T, _bias(layer), None)


def _check_conv(layer):
    if layer.padding not in ("valid", "same"):
        raise Unconvertible(f"padding {layer.padding!r}")
    if any(d != 1 for d in np.ravel(layer.dilation_rate)):
        raise Unconvertible(f"dilated convolution (dilation_rate has value "
                            f"{tuple(int(d) for d in np.ravel(layer.dilation_rate))} != "
                            f"{(1,) * np.size(layer.dilation_rate)})")


@register("Conv1D", "Conv2D", "Conv3D")
def conv(ctx, layer, inputs, out_shapes):
    inp = _single(layer, inputs)
    _check_conv(layer)
    last = _channels_last(layer)
    transform = nengo.Convolution(
        layer.filters, inp.shape, kernel_size=tuple(layer.kernel_size),
        strides=tuple(layer.strides), padding=layer.padding, channels_last=last,
        init=layer.kernel.numpy(), groups=getattr(layer, "groups", 1))
    return _conv_output(ctx, layer, inp, out_shapes[0], transform, last)


@register("DepthwiseConv1D", "DepthwiseConv2D")
def depthwise_conv(ctx, layer, inputs, out_shapes):
    """Keras' depthwise kernel ``kernel_size + (channels, multiplier)`` is a Nengo
    kernel ``kernel_size + (1, channels * multiplier)`` with one group per channel
    (output channel ``c * multiplier + m`` reads channel ``c`` in both)."""
    inp = _single(layer, inputs)
    _check_conv(layer)
    last = _channels_last(layer)
    kernel = layer.kernel.numpy()
    channels, multiplier = kernel.shape[-2:]
    transform = nengo.Convolution(
        channels * multiplier, inp.shape, kernel_size=tuple(layer.kernel_size),
        strides=tuple(layer.strides), padding=layer.padding, channels_last=last,
        init=kernel.reshape(kernel.shape[:-2] + (1, channels * multiplier)), groups=channels)
    return _conv_output(ctx, layer, inp, out_shapes[0], transform, last)


@register("Conv1DTranspose", "Conv2DTranspose")
def conv_transpose(ctx, layer, inputs, out_shapes):
    """Keras' transposed kernel ``kernel_size + (filters, in_channels)`` is
    Nengo's ``kernel_size + (in_channels, filters)`` with the last axes swapped;
    both are the adjoint of the convolution from the output shape back."""
    inp = _single(layer, inputs)
    _check_conv(layer)
    if getattr(layer, "output_padding", None) is not None:
        raise Unconvertible("output_padding")
    last = _channels_last(layer)
    transform = nengo.transforms.ConvolutionTranspose(
        layer.filters, inp.shape, output_shape=tuple(out_shapes[0]),
        kernel_size=tuple(layer.kernel_size), strides=tuple(layer.strides),
        padding=layer.padding, channels_last=last, init=np.swapaxes(layer.kernel.numpy(), -1, -2))
    return _conv_output(ctx, layer, inp, out_shapes[0], transform, last)


@register("Conv3DTranspose")
def conv3d_transpose(ctx, layer, inputs, out_shapes):
    """The adjoint of a strided convolution: ``y[o] = sum_{i, t: o = i * s + t - p}
    x[i] K[t]`` (``p`` the forward convolution's padding before: 0 for
    ``"valid"``, ``max((n - 1) * s + k - out, 0) // 2`` for ``"same"``) is the
    stride-1 correlation of ``v`` with the flipped kernel, where ``v`` holds
    ``x[i]`` at ``i * s + k - 1 - p`` and zeros elsewhere (length ``out + k - 1``)."""
    inp = _single(layer, inputs)
    _check_conv(layer)
    last = _channels_last(layer)
    idx = _channels_to_last(np.arange(_size(inp.shape)).reshape(inp.shape), last)
    out_spatial = tuple(out_shapes[0][:-1] if last else out_shapes[0][1:])
    maps = []
    for n, k, st, out in zip(idx.shape[:-1], layer.kernel_size, layer.strides, out_spatial):
        p = max((n - 1) * st + k - out, 0) // 2 if layer.padding == "same" else 0
        pos = np.full(out + k - 1, -1)
        at = np.arange(n) * st + k - 1 - p
        keep = (at >= 0) & (at < pos.size)
        pos[at[keep]] = np.arange(n)[keep]
        maps.append(pos)
    # Keras' kernel is kernel_size + (filters, in_channels): flipped, swapped
    kernel = np.swapaxes(layer.kernel.numpy()[::-1, ::-1, ::-1], -1, -2)
    return _conv3d(ctx, layer, inp, out_shapes[0], kernel, _source(idx, maps), (1, 1, 1), 1)


def _source(idx, maps):
    """``idx`` (input indices, channels last) padded and rearranged: position
    ``(m0, m1, m2)`` holds ``idx[maps[0][m0], maps[1][m1], maps[2][m2]]``, or -1
    (a zero) where any map is -1."""
    src = idx[np.ix_(*[np.maximum(m, 0) for m in maps])]
    a, b, c = np.ix_(*maps)  # (ix_ of booleans would take their nonzero positions)
    inside = (a >= 0) & (b >= 0) & (c >= 0)
    return np.where(inside[..., None], src, -1)


def _conv3d(ctx, layer, inp, out_shape, kernel, src, strides, groups):
    """The valid strided 3-D correlation of the input gathered through ``src``
    (``(Dp, Hp, Wp, C)`` input indices, -1 for zeros) with ``kernel`` (Keras'
    Conv3D layout ``(kd, kh, kw, C / groups, F)``), as one 2-D convolution:

        y[d, h, w, f] = sum_{a, b, c, ch} kernel[a, b, c, ch, f] x[d sd + a, h sh + b, w sw + c, ch]

    The depth offsets ``a`` become channels: ``z[d Hb + h, w, ch kd + a] =
    x[d sd + a, h, w, ch]``, the ``Do`` output depths stacked along the height
    in blocks of ``Hb >= Hp`` rows (a multiple of ``sh``, so that every block
    starts a row of outputs); then ``y[d, h] = conv2d(z, K2)[d Hb / sh + h]``
    with ``K2[b, c, ch kd + a, f] = kernel[a, b, c, ch, f]``.  The output rows
    that straddle two blocks are dropped.  ``K2`` is the Keras kernel's
    values, rearranged, in one trainable transform, so training is Keras'.
    """
    neuron_type = ctx.neuron_type(layer, getattr(layer, "activation", None))
    kd, kh, kw, cg, filters = kernel.shape
    sd, sh, sw = strides
    dp, hp, wp, channels = src.shape
    do, ho, wo = (dp - kd) // sd + 1, (hp - kh) // sh + 1, (wp - kw) // sw + 1
    if do * ho * wo * filters != _size(out_shape):
        raise Unconvertible(f"3-D convolution output {(do, ho, wo, filters)} is not Keras' "
                            f"{tuple(out_shape)}")
    hb = -(-hp // sh) * sh
    depths = np.arange(do)[:, None] * sd + np.arange(kd)  # (Do, kd) input depths
    zsrc = np.moveaxis(src[depths], 1, -1)  # (Do, Hp, Wp, C, kd)
    zsrc = np.pad(zsrc, ((0, 0), (0, hb - hp), (0, 0), (0, 0), (0, 0)), constant_values=-1)
    zsrc = zsrc.reshape(do * hb, wp, channels * kd).ravel()
    z = nengo.Node(size_in=zsrc.size, label=f"{layer.name}.stacked")
    used = np.flatnonzero(zsrc >= 0)
    ctx.connect(inp.obj[zsrc[used]], z[used], 1, trainable=False)
    k2 = np.moveaxis(kernel, 0, -2).reshape(kh, kw, cg * kd, filters)
    transform = nengo.Convolution(filters, (do * hb, wp, channels * kd), kernel_size=(kh, kw),
                                  strides=(sh, sw), padding="valid", init=k2, groups=groups)
    planes = nengo.Node(size_in=transform.output_shape.size, label=f"{layer.name}.planes")
    ctx.connect(z, planes, transform)
    rows = (np.arange(do)[:, None] * (hb // sh) + np.arange(ho)).ravel()
    index = np.arange(planes.size_in).reshape(transform.output_shape.shape)[rows]
    index = index.reshape(do, ho, wo, filters)
    last = _channels_last(layer)
    if not last:
        index = np.moveaxis(index, -1, 0)
    out = ctx.layer_output(layer, _size(out_shape), neuron_type)
    ctx.connect(planes[index.ravel()], out, 1, trainable=False)
    bias = _bias(layer)
    if bias is not None:
        ctx.add_bias(out, bias, _channel_of(out_shape, last))
    return [Tensor(out, tuple(out_shape))]


def _conv_output(ctx, layer, inp, out_shape, transform, last):
    if transform.output_shape.shape != tuple(out_shape):
        raise Unconvertible(f"Nengo's output shape {transform.output_shape.shape} is not "
                            f"Keras' {tuple(out_shape)}")
    return _weighted(ctx, layer, inp, out_shape, transform, _bias(layer),
                     _channel_of(out_shape, last))


# -- pooling --------------------------------------------------------------------
def _pool(ctx, layer, inp, out_shape, pool, strides, padding):
    """Average pooling as a depthwise convolution with a constant kernel."""
    last = _channels_last(layer)
    channels = inp.shape[-1] if last else inp.shape[0]
    kernel = np.ones(tuple(pool) + (1, channels)) / np.prod(pool)
    transform = nengo.Convolution(channels, inp.shape, kernel_size=tuple(pool),
                                  strides=tuple(strides), padding=padding, channels_last=last,
                                  init=kernel, groups=channels)
    if _size(transform.output_shape.shape) != _size(out_shape):
        raise Unconvertible("pooling output shape differs from Keras'")
    out = ctx.layer_output(layer, _size(out_shape), None)
    ctx.connect(inp.obj, out, transform, trainable=False)
    return [Tensor(out, out_shape)]


@register("AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "MaxPooling1D",
          "MaxPooling2D", "MaxPooling3D")
def pooling(ctx, layer, inputs, out_shapes):
    inp = _single(layer, inputs)
    _max_to_avg(ctx, layer)
    if layer.padding != "valid":
        # Keras averages over the window's elements inside the input only
        raise Unconvertible(f"pooling with padding {layer.padding!r}")
    if len(layer.pool_size) == 3:
        return _average_map(ctx, layer, inp, out_shapes[0], tuple(layer.pool_size),
                            tuple(layer.strides))
    return _pool(ctx, layer, inp, out_shapes[0], layer.pool_size, layer.strides, "valid")


@register("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
          "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D")
def global_pooling(ctx, layer, inputs, out_shapes):
    """The mean over all positions (global max pooling as that too, with
    ``max_to_avg_pool``, as NengoDL).  ``keepdims`` only adds axes of size 1:
    the values are in the same (channel) order."""
    inp = _single(layer, inputs)
    _max_to_avg(ctx, layer)
    spatial = inp.shape[:-1] if _channels_last(layer) else inp.shape[1:]
    if len(spatial) == 3:
        return _average_map(ctx, layer, inp, out_shapes[0], spatial, (1, 1, 1))
    return _pool(ctx, layer, inp, out_shapes[0], spatial, (1,) * len(spatial), "valid")


def _max_to_avg(ctx, layer):
    if "Max" in type(layer).__name__ and not ctx.max_to_avg_pool:
        raise Unconvertible("max pooling (consider setting max_to_avg_pool=True, which "
                            "converts it to average "
                            "pooling)")


def _average_map(ctx, layer, inp, out_shape, pool, strides):
    """Average pooling (valid windows) of any dimension as one constant sparse
    map: ``y[o, c] = sum_{t < pool} x[o * strides + t, c] / prod(pool)``."""
    last = _channels_last(layer)
    src = _channels_to_last(np.arange(_size(inp.shape)).reshape(inp.shape), last)
    out_spatial = tuple((n - p) // st + 1 for n, p, st in zip(src.shape[:-1], pool, strides))
    if _size(out_spatial) * src.shape[-1] != _size(out_shape):
        raise Unconvertible("pooling output shape differs from Keras'")
    rows = _channels_to_last(np.arange(_size(out_shape)).reshape(
        out_spatial + src.shape[-1:] if last else src.shape[-1:] + out_spatial), last)
    cols = []
    for offset in np.ndindex(*pool):  # one nonzero per output per window position
        window = tuple(slice(t, t + st * (o - 1) + 1, st)
                       for t, st, o in zip(offset, strides, out_spatial))
        cols.append(src[window])
    n = rows.size * len(cols)
    indices = np.stack([np.tile(rows.ravel(), len(cols)),
                        np.concatenate([c.ravel() for c in cols])], axis=1)
    average = nengo.transforms.Sparse((_size(out_shape), _size(inp.shape)), indices=indices,
                                      init=np.full(n, 1.0 / _size(pool)))
    out = ctx.layer_output(layer, _size(out_shape), None)
    ctx.connect(inp.obj, out, average, trainable=False)
    return [Tensor(out, tuple(out_shape))]


def _channels_to_last(a, channels_last):
    return a if channels_last else np.moveaxis(a, 0, -1)


# -- activations --------------------------------------------------------------------
def _neurons(ctx, layer, inp, out_shape, neuron_type):
    if neuron_type is None:
        return [Tensor(inp.obj, out_shape)]
    out = ctx.layer_output(layer, _size(out_shape), neuron_type)
    ctx.connect(inp.obj, out, 1, trainable=False)
    return [Tensor(out, out_shape)]


@register("Activation")
def activation(ctx, layer, inputs, out_shapes):
    inp = _single(layer, inputs)
    return _neurons(ctx, layer, inp, out_shapes[0], ctx.neuron_type(layer, layer.activation))


@register("ReLU")
def relu(ctx, layer, inputs, out_shapes):
    inp = _single(layer, inputs)
    if layer.max_value is not None or float(layer.threshold) != 0:
        raise Unconvertible("ReLU with max_value or threshold")
    slope = float(layer.negative_slope)
    neuron_type = (leaky_relu(slope, ctx.swap_activations, ctx.swaps_used) if slope != 0
                   else ctx.neuron_type(layer, "relu"))
    return _neurons(ctx, layer, inp, out_shapes[0], neuron_type)


@register("LeakyReLU")
def leaky(ctx, layer, inputs, out_shapes):
    inp = _single(layer, inputs)
    slope = float(getattr(layer, "negative_slope", getattr(layer, "alpha", 0.3)))
    neuron_type = leaky_relu(slope, ctx.swap_activations, ctx.swaps_used)
    return _neurons(ctx, layer, inp, out_shapes[0], neuron_type)


# -- merges and padding ---------------------------------------------------------------
@register("Add", "Average", "Subtract")
def add(ctx, layer, inputs, out_shapes):
    name = type(layer).__name__
    if any(tuple(i.shape) != tuple(out_shapes[0]) for i in inputs):
        raise Unconvertible(f"{name} with broadcasting")
    scale = [1.0 / len(inputs)] * len(inputs) if name == "Average" else \
        [1.0, -1.0] if name == "Subtract" else [1.0] * len(inputs)
    out = ctx.layer_output(layer, _size(out_shapes[0]), None)
    for inp, s in zip(inputs, scale):
        ctx.connect(inp.obj, out, s, trainable=False)
    return [Tensor(out, out_shapes[0])]


@register("Concatenate")
def concatenate(ctx, layer, inputs, out_shapes):
    shape = tuple(out_shapes[0])
    axis = _value_axis(ctx, layer.axis, shape)
    if axis is None:
        raise Unconvertible(f"concatenation along the {_lead_names(ctx)} axis (cannot "
                            f"concatenate along batch dimension)")
    index = np.arange(_size(shape)).reshape(shape)
    bounds = np.cumsum([i.shape[axis] for i in inputs])[:-1]
    out = ctx.layer_output(layer, _size(shape), None)
    for inp, part in zip(inputs, np.split(index, bounds, axis=axis)):
        ctx.connect(inp.obj, out[part.ravel()], 1, trainable=False)
    return [Tensor(out, shape)]


@register("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
def zero_padding(ctx, layer, inputs, out_shapes):
    inp = _single(layer, inputs)
    shape = tuple(out_shapes[0])
    region = [slice(None)] * len(shape)
    for axis, (before, after) in zip(_spatial_axes(layer, len(shape)),
                                     np.reshape(layer.padding, (-1, 2))):
        region[axis] = slice(int(before), shape[axis] - int(after))
    index = np.arange(_size(shape)).reshape(shape)[tuple(region)]
    out = ctx.layer_output(layer, _size(shape), None)
    ctx.connect(inp.obj, out[index.ravel()], 1, trainable=False)
    return [Tensor(out, shape)]


def _gather(ctx, layer, inp, out_shape, src):
    """A Node whose element ``k`` is input element ``src[k]``."""
    out = ctx.layer_output(layer, _size(out_shape), None)
    ctx.connect(inp.obj[np.asarray(src).ravel()], out, 1, trainable=False)
    return [Tensor(out, tuple(out_shape))]


def _spatial_axes(layer, ndim):
    return list(range(ndim - 1)) if _channels_last(layer) else list(range(1, ndim))


@register("UpSampling1D", "UpSampling2D", "UpSampling3D")
def upsampling(ctx, layer, inputs, out_shapes):
    inp = _single(layer, inputs)
    if getattr(layer, "interpolation", "nearest") != "nearest":
        raise Unconvertible(f"interpolation {layer.interpolation!r}")
    src = np.arange(_size(inp.shape)).reshape(inp.shape)
    sizes = np.ravel(getattr(layer, "size", 2))
    for axis, n in zip(_spatial_axes(layer, len(inp.shape)), sizes):
        src = np.repeat(src, int(n), axis=axis)
    return _gather(ctx, layer, inp, out_shapes[0], src)


@register("Cropping1D", "Cropping2D", "Cropping3D")
def cropping(ctx, layer, inputs, out_shapes):
    inp = _single(layer, inputs)
    src = np.arange(_size(inp.shape)).reshape(inp.shape)
    region = [slice(None)] * len(inp.shape)
    for axis, (before, after) in zip(_spatial_axes(layer, len(inp.shape)),
                                     np.reshape(layer.cropping, (-1, 2))):
        region[axis] = slice(int(before), inp.shape[axis] - int(after))
    return _gather(ctx, layer, inp, out_shapes[0], src[tuple(region)])


# -- batch normalization ------------------------------------------------------------
@register("BatchNormalization")
def batch_normalization(ctx, layer, inputs, out_shapes):
    """``y = (x - mean) * gamma / sqrt(var + eps) + beta`` with the moving
    ``mean`` and ``var``: a constant scale and offset per channel of ``axis``.

    That is the layer's inference form.  A trainable layer trains differently
    (Keras normalizes by the batch's statistics and trains ``gamma`` and
    ``beta``), so it converts only with ``inference_only``; a frozen one
    (``trainable=False``) is its inference form in training too, so it always
    converts."""
    inp = _single(layer, inputs)
    if not ctx.inference_only and layer.trainable:
        raise Unconvertible("BatchNormalization trains differently from its inference "
                            "form: no native form unless inference_only=True (or the layer "
                            "is frozen, trainable=False)")
    shape = tuple(out_shapes[0])
    axes = np.atleast_1d(layer.axis)
    if axes.size != 1:
        raise Unconvertible("BatchNormalization over several axes")
    axis = _value_axis(ctx, int(axes[0]), shape)
    if axis is None:
        raise Unconvertible(f"BatchNormalization over the {_lead_names(ctx)} axis")
    std = np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
    gamma = layer.gamma.numpy() if layer.scale else 1.0
    beta = layer.beta.numpy() if layer.center else 0.0
    scale = gamma / std
    offset = beta - layer.moving_mean.numpy() * scale
    channel = np.indices(shape)[axis].ravel()
    out = ctx.layer_output(layer, _size(shape), None)
    ctx.connect(inp.obj, out, np.broadcast_to(scale, std.shape)[channel], trainable=False)
    ctx.add_bias(out, np.broadcast_to(offset, std.shape), channel, trainable=False)
    return [Tensor(out, shape)]
