"""A Keras layer (or op) called as one application of it in a model called
it: its Keras node's own positional and keyword arguments, constants such
as the ``1.0`` of ``a + 1.0`` included (`call_as_applied`), and as a
TensorNode's function (`Application`).  Signals hold floats: a tensor of
another dtype (a Masking layer's bool mask, an argmax's ints) travels as
the simulator's float and comes back to the dtype Keras gave it.
"""

import inspect

import numpy as np


def plain(node, inputs):
    """Whether Keras node ``node`` called its layer on its one input tensor
    alone (``layer(x)``: the layer itself is the TensorNode's function)."""
    arguments = getattr(node, "arguments", None)
    if arguments is None:  # (not Keras 3's node: no other arguments are known)
        return len(inputs) == 1
    return (len(inputs) == 1 and not arguments.kwargs and len(arguments.args) == 1
            and arguments.args[0] is node.input_tensors[0])


def call_as_applied(layer, node, values, training):
    """``layer`` called on tensors ``values`` (one per input tensor of Keras
    node ``node``, in its dtype) as that application called it; a Keras
    layer gets ``training`` (None: the one the model recorded), an op none."""
    arguments = getattr(node, "arguments", None)
    if arguments is None:  # (not Keras 3's node: the layer takes its tensors)
        return layer(values[0] if len(values) == 1 else values, training=training)
    args, kwargs = arguments.fill_in({id(kt): v for kt, v in zip(node.input_tensors, values)})
    if is_layer(layer):  # (an op takes no flag)
        # (the wrapped layer of a TimeDistributed layer, whose node this is,
        # takes none of the wrapper's own arguments that its call lacks: mask)
        kwargs = _accepted(layer, kwargs)
        if training is not None:
            # (as Keras's functional call: the call's flag replaces the one the
            # model's construction recorded, which is False for every Dropout)
            kwargs = {**kwargs, "training": training}
    return layer(*args, **kwargs)


class Application:
    """One application of a Keras layer (or op) as a TensorNode's function: its
    input tensors arrive side by side in one input, which is split into them,
    and the layer is called as that application called it (`call_as_applied`).
    As a Keras layer would, it takes Keras's ``training`` flag and shows the
    layer's variables to the TensorNode (which trains and saves them)."""

    takes_training = True  # (see `_TensorFunc.call_tensors`)

    def __init__(self, layer, node, shapes):
        self.layer_func = layer
        self.node = node
        self.shapes = [tuple(s) for s in shapes]
        self.dtypes = input_dtypes(node) or [None] * len(self.shapes)

    @property
    def trainable_variables(self):
        return list(getattr(self.layer_func, "trainable_variables", ()))

    @property
    def weights(self):
        return list(getattr(self.layer_func, "weights", ()))

    @property
    def built(self):
        return getattr(self.layer_func, "built", True)

    def __call__(self, x, training=None):
        import tensorflow as tf  # noqa: PLC0415

        sizes = [int(np.prod(s)) for s in self.shapes]
        flat = tf.reshape(x, [tf.shape(x)[0], -1])
        parts = tf.split(flat, sizes, axis=1) if len(sizes) > 1 else [flat]
        values = [tf.reshape(p, [-1, *s]) for p, s in zip(parts, self.shapes)]
        values = [v if is_float(d) else tf.cast(v, d) for v, d in zip(values, self.dtypes)]
        return as_float(call_as_applied(self.layer_func, self.node, values, training), x.dtype)


def input_dtypes(node):
    """The dtypes of Keras node ``node``'s input tensors (empty where unknown)."""
    return [getattr(kt, "dtype", None) for kt in getattr(node, "input_tensors", ())]


def is_float(dtype):
    """Whether a Keras tensor's ``dtype`` (a name; None: unknown) is a float's."""
    return dtype is None or "float" in str(dtype)


def all_float(node):
    """Whether Keras node ``node`` takes and gives tensors of floats only."""
    tensors = [*getattr(node, "input_tensors", ()), *getattr(node, "output_tensors", ())]
    return all(is_float(getattr(kt, "dtype", None)) for kt in tensors)


def as_float(y, dtype):
    """A layer's output ``y`` as ``dtype`` where it is not of floats (signals
    hold floats; a float of another width is the TensorNode's to cast)."""
    import tensorflow as tf  # noqa: PLC0415

    return y if y.dtype.is_floating else tf.cast(y, dtype)


def _accepted(layer, kwargs):
    """The keyword arguments of ``kwargs`` that ``layer.call`` takes
    (``training`` always: Keras's call passes it on only where it does)."""
    try:
        params = inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in params or k == "training"}


def is_layer(layer):
    """Whether ``layer`` is a Keras layer (not an op, e.g. ``ops.numpy.Add``)."""
    import tensorflow as tf  # noqa: PLC0415

    return isinstance(layer, tf.keras.layers.Layer)
