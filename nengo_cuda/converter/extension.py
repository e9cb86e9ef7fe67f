"""`LayerConverter`: NengoDL's class-based extension API for the converter.

User code written for ``nengo_dl.Converter`` registers a converter class for
its own Keras layer::

    @nengo_cuda.Converter.register(MyLayer)
    class ConvertMyLayer(nengo_cuda.converter.LayerConverter):
        has_weights = True

        def convert(self, node_id):
            out = self.add_nengo_obj(node_id, biases=..., activation=self.layer.activation)
            self.add_connection(node_id, out, transform=..., trainable=True)
            return out

``node_id`` is the index of the layer application being converted (the layer's
``_inbound_nodes`` index, as in NengoDL); the helpers look up that
application's inputs and shapes.  They build through the same
`~nengo_cuda.converter.Converter` methods as the built-in converters, so
``synapse``, ``scale_firing_rates`` and ``swap_activations`` apply to what
they make exactly as to built-in layers.
"""

from collections import namedtuple

import nengo
import numpy as np

from ..training.config import TRAINABLE_CLASSES, declare_trainable
from .layers import Unconvertible

# what the helpers need to know about one application of the layer
_Application = namedtuple("_Application", ["inputs", "out_shapes", "keras_node"])


class LayerConverter:
    """Base class of user converters: the Nengo objects for one Keras layer type.

    Subclasses implement `convert`; they may set ``has_weights`` (the layer
    has weights, so applying it twice needs ``split_shared_weights=True``),
    ``unsupported_args`` / ``unsupported_training_args`` (checked by
    `convertible`) and ``allow_fallback`` (False: an unconvertible layer is an
    error rather than a TensorNode).

    One instance converts every application of ``layer``.
    """

    # [name or (name, allowed value)]: the layer converts only if every listed
    # attribute has the allowed value (None when only a name is given)
    unsupported_args = []
    # the same, waived with inference_only=True
    unsupported_training_args = []
    has_weights = False
    allow_fallback = True

    def __init__(self, layer, converter):
        self.layer = layer
        self.converter = converter
        self._applications = {}  # node_id -> _Application

    # -- what subclasses write ------------------------------------------------------
    def convert(self, node_id):
        """Builds application ``node_id`` of the layer; returns the Nengo object
        whose output is the layer's output (a Node, an ensemble's Neurons or a
        TensorNode; a list of them for a layer with several outputs)."""
        raise NotImplementedError(f"{type(self).__name__} must implement convert(node_id)")

    @classmethod
    def convertible(cls, layer, converter):
        """``(True, None)`` when ``layer`` has a native form, else ``(False,
        reason)``: the layer then falls back to a TensorNode.  By default,
        checks ``unsupported_args`` (and ``unsupported_training_args`` unless
        ``converter.inference_only``); an attribute the layer lacks counts as
        having its allowed value."""
        checks = list(cls.unsupported_args)
        if not converter.inference_only:
            checks += list(cls.unsupported_training_args)
        training_only = {_arg(a)[0] for a in cls.unsupported_training_args}
        for entry in checks:
            name, allowed = _arg(entry)
            if not hasattr(layer, name):
                continue
            value = getattr(layer, name)
            if not _equal(value, allowed):
                msg = f"{layer.name}.{name} is {value!r}, only {allowed!r} converts"
                if name in training_only:
                    msg += " (any value with inference_only=True)"
                return False, msg
        return True, None

    # -- helpers --------------------------------------------------------------------
    def get_input_obj(self, node_id, tensor_idx=0):
        """The Nengo object giving input ``tensor_idx`` of application ``node_id``."""
        return self._application(node_id).inputs[tensor_idx].obj

    def input_shape(self, node_id, include_batch=False, full_shape=None):
        """Input shape of application ``node_id`` (a list of shapes for several
        inputs); with ``include_batch`` (NengoDL 3.4's ``full_shape``) the batch
        axis (None) leads."""
        app = self._application(node_id)
        return _shapes([i.shape for i in app.inputs], self._lead(include_batch, full_shape))

    def output_shape(self, node_id, include_batch=False, full_shape=None):
        """Output shape of application ``node_id`` (a list for several outputs)."""
        return _shapes(self._application(node_id).out_shapes,
                       self._lead(include_batch, full_shape))

    def _lead(self, include_batch, full_shape):
        """The leading axes to show: batch (and time, in a temporal model) or none."""
        flag = bool(include_batch if full_shape is None else full_shape)
        return (None,) * self.converter.lead if flag else ()

    def add_nengo_obj(self, node_id, biases=None, activation=None):
        """The object application ``node_id`` connects into and outputs from.

        ``activation`` (a Keras/TensorFlow activation, its name, or a Nengo
        neuron type; None: linear) after ``swap_activations``: for a nonlinear
        one, ``n`` neurons with ``J = s * input + s * biases`` (``s`` from
        ``scale_firing_rates``, amplitude ``1 / s``; the biases are the
        ensemble's bias, trainable); for a linear one, a Node, the biases a
        trainable connection from the constant bias Node.  An activation
        without a Nengo form makes the whole layer fall back to a TensorNode.
        """
        ctx = self.converter
        size = int(np.prod(self._first(self.output_shape(node_id))))
        neuron_type = ctx.neuron_type(self.layer, activation)  # LookupError: fallback
        if biases is not None:
            biases = np.broadcast_to(np.asarray(biases, dtype=np.float64).ravel(), (size,))
        if neuron_type is not None:
            return ctx.layer_output(self.layer, size, neuron_type, bias=biases)
        obj = ctx.layer_output(self.layer, size, None)
        if biases is not None:
            ctx.add_bias(obj, biases)
        return obj

    def add_connection(self, node_id, obj, input_idx=0, trainable=False, **kwargs):
        """A Connection from input ``input_idx`` of application ``node_id`` to
        ``obj``; ``kwargs`` go to `nengo.Connection` (``synapse`` defaults to
        the converter's ``synapse`` out of neurons, None otherwise)."""
        pre = self.get_input_obj(node_id, tensor_idx=input_idx)
        kwargs.setdefault("synapse", self.converter.synapse_from(pre))
        conn = nengo.Connection(pre, obj, **kwargs)
        self.set_trainable(conn, trainable)
        return conn

    @staticmethod
    def set_trainable(obj, trainable):
        """Sets ``obj``'s ``trainable`` config (an Ensemble: its encoders; its
        Neurons: its biases; a Connection: its weights) in the network being built."""
        config = nengo.Network.context[-1].config
        cls = next((c for c in TRAINABLE_CLASSES if isinstance(obj, c)), None)
        if cls is None:
            raise TypeError(f"set_trainable: {obj} is not an Ensemble, Neurons or Connection")
        declare_trainable(config, cls)
        config[obj].trainable = trainable

    @staticmethod
    def get_history(tensor):
        """``(layer, node_id, tensor_idx)`` that produced a Keras tensor."""
        from . import _history  # noqa: PLC0415 (circular at import time)

        return _history(tensor)

    # -- internals ----------------------------------------------------------------------
    def _begin(self, node_id, inputs, out_shapes, keras_node):
        """Called by the Converter before ``convert(node_id)``."""
        self._applications[node_id] = _Application(list(inputs), list(out_shapes), keras_node)

    def _application(self, node_id):
        try:
            return self._applications[node_id]
        except KeyError:
            raise KeyError(f"{type(self).__name__}: application {node_id} of layer "
                           f"{self.layer.name!r} is not being converted") from None

    @staticmethod
    def _first(shapes):
        return shapes[0] if isinstance(shapes, list) else shapes


def _arg(entry):
    return (entry, None) if isinstance(entry, str) else (entry[0], entry[1])


def _equal(value, allowed):
    """``value == allowed``, with None only equal to None and numbers and
    sequences compared element by element ((1, 1) equals [1, 1], 1 equals (1,))."""
    if value is None or allowed is None:
        return value is allowed
    if isinstance(value, str) or isinstance(allowed, str):
        return value == allowed
    try:
        a, b = np.asarray(value), np.asarray(allowed)
    except Exception:  # noqa: BLE001 - objects without an array form
        return bool(value == allowed)
    if a.dtype == object or b.dtype == object:
        return bool(value == allowed)
    if a.shape != b.shape and a.size != 1 and b.size != 1:
        return False
    return bool(np.all(a == b))


def _shapes(shapes, lead):
    shapes = [lead + tuple(s) for s in shapes]
    return shapes[0] if len(shapes) == 1 else shapes


__all__ = ["LayerConverter", "Unconvertible"]
