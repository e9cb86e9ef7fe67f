"""Keras activations as Nengo neuron types (NengoDL's default map), and swaps.

An activation function that Keras or TensorFlow defines is known by its
name ("relu", "sigmoid", ...), so ``tf.nn.relu``, ``tf.keras.activations.relu``
and ``keras.ops.relu`` are the same activation; any other function only by
itself (a user's function named ``relu`` is not Keras's: it has no neuron type
and falls back, as in NengoDL, whose map is keyed by the functions).  ``None``
means linear: no neurons (a passthrough Node).

``swap_activations`` maps activations or neuron types to activations or neuron
types.  It applies before the default map (keyed by activation) and after it
(keyed by neuron type), so ``{tf.nn.relu: nengo.SpikingRectifiedLinear()}`` and
``{nengo.RectifiedLinear(): nengo.SpikingRectifiedLinear()}`` both work; a
neuron-type key matches a neuron type with the same class and parameters.
"""

import copy
import warnings

import nengo

from ..neurons import LeakyReLU

# activation name -> neuron type (None: linear)
DEFAULT_MAP = {
    "linear": None,
    "relu": nengo.RectifiedLinear(),
    "sigmoid": nengo.Sigmoid(tau_ref=1),  # rate 1 / (1 + exp(-J)) / tau_ref
    "tanh": nengo.Tanh(tau_ref=1),
}


class NoNeuronType(LookupError):
    """An activation (after the swaps: ``activation``) with no Nengo neuron type."""

    def __init__(self, message, activation):
        super().__init__(message)
        self.activation = activation


_BUILTINS = None  # id -> (function, name): see `_builtin_activations`


def _builtin_activations():
    """The activation functions Keras and TensorFlow define, by id: each of
    ``keras.activations``' names in ``keras.activations``, ``keras.ops``,
    ``tf.nn``, ``tf.math`` and ``tf`` (the functions are kept: their ids stay
    theirs)."""
    global _BUILTINS  # noqa: PLW0603 - made once, on first use (imports TensorFlow)
    if _BUILTINS is None:
        import keras  # noqa: PLC0415
        import tensorflow as tf  # noqa: PLC0415

        found = {}
        for name in dir(keras.activations):
            if name.startswith("_") or name in ("get", "serialize", "deserialize"):
                continue
            for module in (keras.activations, keras.ops, tf.nn, tf.math, tf):
                fn = getattr(module, name, None)
                if callable(fn):
                    found[id(fn)] = (fn, name)
        _BUILTINS = found
    return _BUILTINS


def activation_name(fn):
    """The name of a Keras/TensorFlow activation function ("linear" for None, a
    string as it is); None for any other function."""
    if fn is None:
        return "linear"
    if isinstance(fn, str):
        return fn
    known = _builtin_activations().get(id(fn))
    return None if known is None else known[1]


def _same_activation(a, b):
    if a is b:
        return True
    name = activation_name(a)
    return name is not None and name == activation_name(b)


def _same_neuron_type(a, b):
    return isinstance(a, nengo.neurons.NeuronType) and type(a) is type(b) and repr(a) == repr(b)


def _swap(value, swaps, used=None):
    """``swaps``' replacement for ``value`` (or ``value``); ``used`` collects the
    indices of the keys that matched."""
    for i, (key, new) in enumerate(swaps.items()):
        if isinstance(key, nengo.neurons.NeuronType):
            matched = _same_neuron_type(value, key)
        else:
            matched = (not isinstance(value, nengo.neurons.NeuronType) and value is not None
                       and _same_activation(key, value))
        if matched:
            if used is not None:
                used.add(i)
            return new
    return value


def neuron_type_for(activation, swaps, used=None):
    """The neuron type for a Keras activation after the swaps; None for linear.
    ``used`` collects the indices of the swaps' keys that applied.

    Raises `NoNeuronType` (a LookupError) for an activation with no Nengo
    equivalent, naming the activation after the swaps."""
    act = _swap(activation, swaps, used)
    if isinstance(act, nengo.neurons.NeuronType):
        return _swap(act, swaps, used)
    name = activation_name(act)
    if name not in DEFAULT_MAP:
        shown = getattr(act, "__name__", act)
        raise NoNeuronType(f"Unsupported activation type {shown!r}: it has no Nengo neuron "
                           f"type", act)
    neuron = DEFAULT_MAP[name]
    return None if neuron is None else _swap(neuron, swaps, used)


def leaky_relu(negative_slope, swaps, used=None):
    """Keras' LeakyReLU layer as a neuron type (NengoDL's LeakyReLU), after swaps."""
    return _swap(LeakyReLU(negative_slope=negative_slope), swaps, used)


def with_amplitude(neuron_type, factor, warn=warnings.warn):
    """A copy of ``neuron_type`` with its amplitude times ``factor``; a type
    without an amplitude (Sigmoid, Tanh) stays as it is, with a warning (as
    NengoDL: its output changes under ``scale_firing_rates``).

    A copy with its amplitude parameter set, as NengoDL's: rebuilding the type
    from its constructor's arguments missed those a ``**kwargs`` constructor
    passes on (SoftLIFRate's amplitude stayed 1: outputs ``scale`` times too
    large).  ``warn``: what gives the warning (the Converter's `_warn`)."""
    param = getattr(type(neuron_type), "amplitude", None)
    if not isinstance(param, nengo.params.Parameter):
        warn(f"Converter: scale_firing_rates applies to {neuron_type}, which has no "
             f"amplitude to scale back (it does not support amplitude): its gain "
             f"is scaled, so the output changes")
        return neuron_type
    scaled = copy.copy(neuron_type)
    param.data[scaled] = neuron_type.amplitude * factor  # (a frozen object's parameter)
    return scaled
