"""NengoDL's loss functions (``nengo_dl.losses``), for ``sim.compile(loss=...)``.

Importing this module imports TensorFlow; ``nengo_cuda.losses`` loads it on
first use, so ``import nengo_cuda`` alone still does not.
"""

import tensorflow as tf


class Regularize(tf.keras.losses.Loss):
    """A penalty on a probed signal (firing rates, weights), not an error.

    The value is the mean, over minibatch, time and the axes not normed, of
    ``norm(y_pred, ord=order)`` along ``axis`` (an axis of one step's value; None:
    all of it, flattened). ``y_true`` is ignored (give zeros as targets).
    """

    free_target_size = True  # targets are ignored: any shape (zeros of size 1 do)

    def __init__(self, order=2, axis=None, name="regularize"):
        super().__init__(name=name)
        self.order = order
        self.axis = axis

    def __call__(self, y_true, y_pred, sample_weight=None):
        if y_true is None:  # ignored (NengoDL documents Regularize()(None, x))
            y_true = tf.zeros_like(y_pred)
        return super().__call__(y_true, y_pred, sample_weight=sample_weight)

    def call(self, y_true, y_pred):
        if self.axis is None:  # one vector per minibatch item and step
            y_pred = tf.reshape(y_pred, tf.concat([tf.shape(y_pred)[:2], [-1]], axis=0))
            axis = 2
        else:
            axis = self.axis + 2  # after the minibatch and time axes
        return tf.reduce_mean(tf.norm(y_pred, ord=self.order, axis=axis))

    def get_config(self):
        return {"order": self.order, "axis": self.axis, "name": self.name}


def nan_mse(y_true, y_pred):
    """Mean squared error in which NaN targets count as no error (they stay in
    the mean's denominator): for targets known only at some steps."""
    y_true = tf.cast(y_true, y_pred.dtype)
    missing = tf.math.is_nan(y_true)
    err = tf.where(missing, tf.zeros_like(y_pred), y_pred - tf.where(missing, y_pred, y_true))
    return tf.reduce_mean(tf.square(err))


__all__ = ["Regularize", "nan_mse"]
