"""`TensorNode` and `Layer`: TensorFlow code inside a Nengo model (NengoDL 3's API).

A TensorNode is a `nengo.Node` whose output is computed by ``tensor_func``, a
function of TensorFlow tensors: ``tensor_func(t, x)`` (``pass_time=True``) or
``tensor_func(x)``, where ``x`` has shape ``(minibatch,) + shape_in`` and the
result ``(minibatch,) + shape_out``.  In `Simulator.run` it runs once per step
and trial (eagerly, as a Node callback); in training it is part of the
differentiable TensorFlow graph (`nengo_cuda.training.graph`).
"""

import numpy as np
import nengo
from nengo.exceptions import ValidationError


def _tf():
    import tensorflow as tf  # noqa: PLC0415 - only TensorNode users need TensorFlow

    return tf


class _TensorFunc:
    """The Node output: calls ``tensor_func`` on one trial's values (batch of 1)."""

    def __init__(self, tensor_func, shape_in, shape_out, pass_time):
        self.tensor_func = tensor_func
        self.shape_in = shape_in
        self.shape_out = shape_out
        self.pass_time = pass_time

    def _weights_owner(self):
        """``tensor_func`` (or a `Layer`'s layer) when it owns variables (a Keras
        layer or any ``tf.Module``), built first if needed; None otherwise."""
        obj = getattr(self.tensor_func, "layer_func", self.tensor_func)
        if not hasattr(obj, "trainable_variables"):
            return None
        if getattr(obj, "built", True) is False:
            tf = _tf()
            x = None if self.shape_in is None else tf.zeros((1,) + self.shape_in, tf.float32)
            self.call_tensors(tf.constant(0.0), x)
        return obj

    def trainable_variables(self):
        """The variables training optimises (the layer's ``trainable_variables``)."""
        obj = self._weights_owner()
        return [] if obj is None else list(obj.trainable_variables)

    def variables(self):
        """Every variable of the layer (trainable or not), for save/load_params."""
        obj = self._weights_owner()
        if obj is None:
            return []
        return list(obj.weights if hasattr(obj, "weights") else obj.variables)

    def call_tensors(self, t, x):
        """tensor_func on tensors (x batched, or None without input)."""
        if self.shape_in is None:
            return self.tensor_func(t) if self.pass_time else self.tensor_func()
        return self.tensor_func(t, x) if self.pass_time else self.tensor_func(x)

    def __call__(self, t, x=None):
        tf = _tf()
        tt = tf.constant(t, dtype=tf.float32)
        xt = None
        if self.shape_in is not None:
            xt = tf.constant(np.asarray(x, dtype=np.float32).reshape((1,) + self.shape_in))
        out = self.call_tensors(tt, xt)
        return None if out is None else np.asarray(out).reshape(-1)


def _shape(value, name):
    if value is None:
        return None
    shape = (int(value),) if np.isscalar(value) else tuple(int(v) for v in value)
    if any(s < 0 for s in shape):
        raise ValidationError(f"{name} must be non-negative (got {value!r})", attr=name)
    return shape


class TensorNode(nengo.Node):
    """A Node whose output is TensorFlow code (see the module docstring).

    Parameters
    ----------
    tensor_func : callable
        ``tensor_func(t, x)`` (or ``tensor_func(x)`` when ``pass_time=False``).
    shape_in : int or tuple, optional
        Shape of ``x`` without the minibatch axis (``size_in=`` is accepted too).
    shape_out : int or tuple, optional
        Shape of the output without the minibatch axis (default: inferred by
        calling ``tensor_func`` once).
    pass_time : bool
        Pass the simulation time ``t`` as the first argument.

    Notes
    -----
    When ``tensor_func`` is a Keras layer (or a ``tf.Module``), ``sim.fit`` and
    ``sim.train`` optimise its ``trainable_variables`` together with the Nengo
    parameters, as NengoDL does: ``configure_settings(trainable=...)`` and the
    ``trainable`` config apply to Ensembles, Neurons and Connections only; set
    the layer's own ``trainable = False`` to freeze it.  The weights live in the
    layer, so ``sim.run`` (and any Simulator built later from the same network)
    uses the trained values.  Variables that a plain function creates are not
    tracked.
    """

    def __init__(self, tensor_func, shape_in=None, shape_out=None, pass_time=True,
                 label=None, size_in=None):
        if not callable(tensor_func):
            raise ValidationError("tensor_func must be callable", attr="tensor_func")
        if size_in is not None and shape_in is not None:
            if _shape(size_in, "size_in") != (int(np.prod(_shape(shape_in, "shape_in"))),):
                raise ValidationError("size_in and shape_in disagree", attr="size_in")
        shape_in = _shape(shape_in if shape_in is not None else size_in, "shape_in")
        if shape_in == (0,) or shape_in == ():
            shape_in = None
        if shape_in is None and not pass_time:
            raise ValidationError(
                "a TensorNode without input must have pass_time=True", attr="pass_time"
            )
        func = _TensorFunc(tensor_func, shape_in, None, pass_time)
        shape_out = _shape(shape_out, "shape_out")
        if shape_out is None:
            tf = _tf()
            x = None if shape_in is None else tf.zeros((1,) + shape_in, tf.float32)
            out = func.call_tensors(tf.constant(0.0), x)
            if out is None:
                shape_out = (0,)
            else:
                shape = tuple(out.shape)
                if len(shape) < 1 or shape[0] != 1:
                    raise ValidationError(
                        f"tensor_func must return a tensor of shape (minibatch, ...); got "
                        f"shape {shape} for a minibatch of 1",
                        attr="tensor_func",
                    )
                shape_out = shape[1:]
        func.shape_out = shape_out
        self.tensor_func = tensor_func
        self.shape_in = shape_in
        self.shape_out = shape_out
        self.pass_time = pass_time
        size_in = 0 if shape_in is None else int(np.prod(shape_in))
        super().__init__(
            output=func, size_in=size_in, size_out=int(np.prod(shape_out)), label=label
        )


def is_tensor_node_func(fn):
    return isinstance(fn, _TensorFunc)


class _LayerCall:
    """A `Layer`'s tensor_func: ``layer_func(x, **layer_args)``."""

    def __init__(self, layer_func, layer_args):
        self.layer_func = layer_func
        self.layer_args = layer_args

    def __call__(self, x):
        return self.layer_func(x, **self.layer_args)


class Layer:
    """NengoDL's ``Layer``: ``Layer(func)(input, transform=1, shape_in=None)``.

    Wraps a TensorFlow function (or Keras layer called on ``x``) in a
    `TensorNode` fed by ``input`` and returns the node (``return_conn=True``:
    also the Connection).  A Keras layer's weights are trained by ``sim.fit``
    (see `TensorNode`).
    """

    def __init__(self, layer_func):
        if not callable(layer_func):
            raise ValidationError("layer_func must be callable", attr="layer_func")
        self.layer_func = layer_func

    def __call__(self, input, transform=1, shape_in=None, synapse=None,
                 return_conn=False, **layer_args):
        size_in = input.size_out if hasattr(input, "size_out") else input.size_in
        node = TensorNode(
            _LayerCall(self.layer_func, layer_args),
            shape_in=shape_in if shape_in is not None else (size_in,),
            pass_time=False,
            label=getattr(self.layer_func, "name", None) or "Layer",
        )
        conn = nengo.Connection(input, node, synapse=synapse, transform=transform)
        return (node, conn) if return_conn else node
