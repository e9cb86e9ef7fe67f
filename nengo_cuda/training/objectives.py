"""Loss functions (``nengo_cuda.obj``, also ``nengo_cuda.objectives``), as
NengoDL 2's ``nengo_dl.obj`` / ``nengo_dl.objectives``.

Each takes ``(outputs, targets)`` tensors of shape ``(minibatch, n_steps, size)``.
TensorFlow is imported when a function is called, not on import.
"""


def mse(outputs, targets):
    """NengoDL 2's ``objectives.mse``: the mean squared error over all axes,
    a scalar (NengoDL's migration guide checks ``mse(zeros, nan) == 0``).

    NaN targets count as no error (they stay in the mean's denominator): for
    targets known only at some steps.  Given to ``compile`` (``loss=obj.mse``),
    it is `mse_per_item`, so that sample weights apply; the mean is the same."""
    import tensorflow as tf  # noqa: PLC0415

    return tf.reduce_mean(mse_per_item(outputs, targets))


def mse_per_item(outputs, targets):
    """`mse`, one value per item (the mean over all axes but the minibatch)."""
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


class Regularize:
    """NengoDL 2's regularization objective, ``f(outputs)`` (no targets): the
    mean, over minibatch, time and the axes not normed, of
    ``norm(outputs, ord=order)`` along ``axis`` (an axis of one step's value;
    None: all of it, flattened), times ``weight`` where given.  (NengoDL 3's
    is `nengo_cuda.losses.Regularize`, weighted by ``loss_weights``.)"""

    def __init__(self, order=2, axis=None, weight=None):
        self.order = order
        self.axis = axis
        self.weight = weight

    def __call__(self, outputs):
        from ..losses import Regularize as RegularizeLoss  # noqa: PLC0415 (TensorFlow)

        penalty = RegularizeLoss(self.order, self.axis)(None, outputs)
        return penalty if self.weight is None else penalty * self.weight
