"""Loss functions (``nengo_cuda.obj``, also ``nengo_cuda.objectives``), as
NengoDL 2's ``nengo_dl.obj`` / ``nengo_dl.objectives``.

Each takes ``(outputs, targets)`` tensors of shape ``(minibatch, n_steps, size)``.
TensorFlow is imported when a function is called, not on import.
"""


def mse(outputs, targets):
    """Mean squared error over all axes but the minibatch (one value per item).

    NaN targets count as no error (they stay in the mean's denominator), as in
    NengoDL 2's ``objectives.mse``: for targets known only at some steps."""
    import tensorflow as tf  # noqa: PLC0415

    err = squared_errors(outputs, targets)
    return tf.reduce_mean(tf.reshape(err, (tf.shape(err)[0], -1)), axis=1)


def squared_errors(outputs, targets):
    """``(targets - outputs) ** 2`` elementwise, 0 where a target is NaN (no
    error: NengoDL 2's convention for targets known only at some steps)."""
    import tensorflow as tf  # noqa: PLC0415

    targets = tf.cast(targets, outputs.dtype)
    targets = tf.where(tf.math.is_nan(targets), outputs, targets)
    return tf.square(targets - outputs)
