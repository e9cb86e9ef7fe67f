"""Loss functions (``nengo_cuda.obj``), as ``nengo_dl.obj``.

Each takes ``(outputs, targets)`` tensors of shape ``(minibatch, n_steps, size)``.
TensorFlow is imported when a function is called, not on import.
"""


def mse(outputs, targets):
    """Mean squared error over all axes but the minibatch (one value per item)."""
    import tensorflow as tf  # noqa: PLC0415

    err = tf.square(tf.cast(targets, outputs.dtype) - outputs)
    return tf.reduce_mean(tf.reshape(err, (tf.shape(err)[0], -1)), axis=1)
