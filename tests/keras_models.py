"""Small Keras models that tests convert with `nengo_cuda.Converter` and
train both in Keras and in nengo_cuda (the oracle for training)."""

import tensorflow as tf


def two_dense(shape=(3,), seed=0):
    """``shape`` -> Dense(6, tanh) -> Dense(2), its weights drawn from ``seed``."""
    keras = tf.keras
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape)
    out = keras.layers.Dense(2)(keras.layers.Dense(6, activation="tanh")(inp))
    return keras.Model(inp, out)
