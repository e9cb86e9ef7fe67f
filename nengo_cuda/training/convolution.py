"""Nengo's convolutions as TensorFlow operations, for training.

``Y = conv(X, W)`` for a minibatch ``X`` of shape ``(batch,) + input_shape``:
TensorFlow's convolution, whose "same" padding is Nengo's (per axis, from ``n``
to ``m`` positions with kernel ``k`` and stride ``s``, ``max((m - 1) s + k - n,
0)`` zeros in total, the smaller half before).  Channels-first signals are
moved to channels last, which TensorFlow runs on every device; a grouped
convolution is one convolution per group (TensorFlow has no grouped gradient
on CPUs); a `~nengo.transforms.ConvolutionTranspose` is TensorFlow's
transposed convolution, whose kernel has the channel axes swapped.

Two faults of TensorFlow's 3-D convolutions are worked around.  Its CPU kernel
(Eigen's: float64, or float32 without oneDNN) pads "same" by the total above
without the max with 0, so where a stride exceeds the kernel by enough for a
total of -2 or less it reads the input shifted by one; a 3-D "same"
convolution here pads explicitly and then convolves "valid".  And
``tf.nn.convolution`` records no data format on a 3-D convolution, without
which its eager gradient fails; ``tf.nn.conv3d`` is given one.
"""

import tensorflow as tf
from nengo.transforms import ConvolutionTranspose


def convolve(X, W, conv, batch):
    """``conv`` (a `~nengo.Convolution` or `~nengo.transforms.ConvolutionTranspose`)
    with kernel ``W`` applied to ``X`` (``(batch,) + conv.input_shape.shape``);
    returns ``(batch,) + conv.output_shape.shape``."""
    if not conv.channels_last:
        X = tf.experimental.numpy.moveaxis(X, 1, -1)
    padding = conv.padding.upper()
    if isinstance(conv, ConvolutionTranspose):
        # TensorFlow's transposed kernel is (spatial..., out channels, in channels)
        W = tf.experimental.numpy.swapaxes(W, -1, -2)
        out = conv.output_shape
        shape = [batch] + list(out.spatial_shape) + [out.n_channels]
        Y = tf.nn.conv_transpose(X, W, shape, strides=conv.strides, padding=padding)
    else:
        if conv.dimensions == 3 and padding == "SAME":
            X, padding = tf.pad(X, same_padding(conv)), "VALID"
        groups = getattr(conv, "groups", 1)
        if groups == 1:
            Y = _forward(X, W, conv.strides, padding)
        else:
            Y = tf.concat([_forward(x, w, conv.strides, padding)
                           for x, w in zip(tf.split(X, groups, axis=-1),
                                           tf.split(W, groups, axis=-1))], axis=-1)
    if not conv.channels_last:
        Y = tf.experimental.numpy.moveaxis(Y, -1, 1)
    return Y


def same_padding(conv):
    """``tf.pad``'s paddings of a channels-last minibatch for forward
    convolution ``conv`` with "same" padding: ``(before, after)`` per axis."""
    pads = [[0, 0]]
    for n, m, k, s in zip(conv.input_shape.spatial_shape, conv.output_shape.spatial_shape,
                          conv.kernel_size, conv.strides):
        total = max((m - 1) * s + k - n, 0)
        pads.append([total // 2, total - total // 2])
    return pads + [[0, 0]]


def _forward(X, W, strides, padding):
    if len(strides) == 3:
        return tf.nn.conv3d(X, W, [1, *strides, 1], padding, data_format="NDHWC")
    return tf.nn.convolution(X, W, strides=strides, padding=padding)
