"""ConvInc and ConvTransposeInc lower to ``conv_inc`` instructions.

A convolution is a gather.  Output position ``o`` of a forward convolution reads
input positions ``i = o * stride - before + t`` for the kernel taps ``t`` that
land inside the input (per spatial axis; ``before`` is Nengo's padding, which is
TensorFlow's: ``"same"`` pads ``max((m - 1) * stride + k - n, 0)`` in total, the
smaller half before), and computes

    Y[o, f] += sum_{(i, t) of o} sum_{c < C_g} W[t, c, f] X[i, g(f) C_g + c]

with ``C_g`` input channels per group and ``g(f) = f // (filters per group)``.
A `~nengo.ConvolutionTranspose` is the adjoint of the forward convolution from
its output shape to its input shape (what Nengo's ``conv2d_gradx`` computes):
output ``o`` reads the inputs ``i`` of the forward pairs ``(i, o, t)``, in the
order of the taps.  The instruction holds the geometry only (per axis: output
and input positions, kernel size, stride, padding before); the kernel computes
each output position's pairs from it (``csrc/kernels/conv.h``), so no table
grows with the pairs (a 31 x 31 kernel over 128 x 128 positions has 14 M).

Nothing here depends on the number of spatial axes: 1-, 2- and 3-D convolutions
lower alike (Nengo's own step runs 1-D and 2-D ones only; training runs
TensorFlow's convolutions, which stop at 3-D, and so do we).

Positions and taps are flattened in C order of the spatial and kernel shapes,
so ``W`` (kernel shape ``kernel_size + (C_g, filters)``) is ``(taps, C_g, F)``.
With the ``set`` scalar (a `~nengo_cuda.fusion.ConvSet`: Nengo's reset of Y
fused in) the instruction writes the sum instead of adding it to Y.
"""

import numpy as np
from nengo.builder.transforms import ConvInc, ConvTransposeInc
from nengo.transforms import ConvolutionTranspose

from ..fusion import ConvSet
from ..program import Instruction
from .common import all_float, vector_view
from .registry import register


MAX_DIMENSIONS = 3  # spatial axes: as many as TensorFlow's convolutions (training)


def padding_before(n, m, k, stride, padding):
    """Padding before the input of a forward convolution from ``n`` inputs to
    ``m`` outputs with kernel ``k`` along one spatial axis."""
    return max((m - 1) * stride + k - n, 0) // 2 if padding == "same" else 0


def geometry(conv):
    """The ``conv_inc`` instruction's ``axes`` (per spatial axis, padded to
    three at the front: output positions, input positions, kernel size, stride, padding
    before the forward convolution's input) and its ``transpose`` flag."""
    transpose = isinstance(conv, ConvolutionTranspose)
    x, y = conv.input_shape.spatial_shape, conv.output_shape.spatial_shape
    fwd_in, fwd_out = (y, x) if transpose else (x, y)
    axes = [(m, n, k, s, padding_before(fi, fo, k, s, conv.padding))
            for m, n, k, s, fi, fo in zip(y, x, conv.kernel_size, conv.strides, fwd_in, fwd_out)]
    # unused axes first, so that the kernels' innermost loop runs over a real one
    axes = [(1, 1, 1, 1, 0)] * (MAX_DIMENSIONS - len(axes)) + axes
    return np.array(axes, dtype=np.int64).ravel(), int(transpose)


def _channel_strides(shape, stride):
    """(position stride, channel stride) of a `~nengo.transforms.ChannelShape`
    stored in a vector with element stride ``stride``."""
    if shape.channels_last:
        return shape.n_channels * stride, stride
    return stride, int(np.prod(shape.spatial_shape)) * stride


def _weights_contiguous(op, layout):
    addrs = layout.addresses(op.W).ravel()
    return addrs.size == 0 or np.array_equal(addrs, addrs[0] + np.arange(addrs.size))


@register(ConvInc, ConvTransposeInc, ConvSet)
class ConvIncLowering:
    """``Y += conv(W, X)``; a `~nengo_cuda.fusion.ConvSet` sets ``Y =
    conv(W, X)`` (the ``set`` scalar)."""

    @staticmethod
    def key(op, layout):
        conv = op.conv
        if conv.dimensions > MAX_DIMENSIONS:
            raise NotImplementedError(
                f"{conv} has {conv.dimensions} spatial dimensions; at most "
                f"{MAX_DIMENSIONS} are supported (as in TensorFlow, which trains them)")
        native = (all_float(layout, [op.W, op.X, op.Y]) and op.X.ndim == 1 and op.Y.ndim == 1
                  and op.W.shape == conv.kernel_shape and _weights_contiguous(op, layout))
        if native:
            return ("conv_inc",)
        if conv.dimensions > 2:  # Nengo's step, the fallback, runs 1-D and 2-D only
            raise NotImplementedError(
                f"{conv}: a {conv.dimensions}-D convolution runs only as a native conv_inc, "
                f"which needs float vectors X and Y and a contiguous kernel of shape "
                f"{conv.kernel_shape}")
        return None

    @staticmethod
    def lower(ops, layout):
        instrs = []
        for op in ops:
            x, x_s = vector_view(layout, op.X)
            y, y_s = vector_view(layout, op.Y)
            ints, scalars = conv_fields(op.conv, x, x_s, y, y_s, layout.address(op.W))
            scalars["set"] = int(isinstance(op, ConvSet))
            instrs.append(Instruction("conv_inc", [op], ints=ints, scalars=scalars))
        return instrs


def conv_fields(conv, x, x_s, y, y_s, w):
    """The ``conv_inc`` instruction's (ints, scalars) for ``conv`` applied to the
    vector at address ``x`` (stride ``x_s``), incrementing the vector at ``y``
    (stride ``y_s``), with the contiguous kernel at ``w``."""
    axes, transpose = geometry(conv)
    x_ps, x_cs = _channel_strides(conv.input_shape, x_s)
    y_ps, y_cs = _channel_strides(conv.output_shape, y_s)
    scalars = {
        "X": x, "X_ps": x_ps, "X_cs": x_cs,
        "Y": y, "Y_ps": y_ps, "Y_cs": y_cs,
        "W": w,
        "transpose": transpose,
        "in_channels": conv.input_shape.n_channels,
        "filters": conv.n_filters,
        "groups": getattr(conv, "groups", 1),
    }
    return {"axes": axes}, scalars
