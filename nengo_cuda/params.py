"""``sim.data[obj]`` for ensembles and connections: the parameters as they are now.

NengoDL's ``sim.data[ens].encoders`` and ``sim.data[conn].weights`` give the
trained values after ``sim.fit``. Nengo's builder keeps these parameters in
signals that no operator writes (the layout's shared part), so they change
only through training, `load_params` or a user's write into ``sim.signals``;
while they hold their built values, ``sim.data[obj]`` is Nengo's own built
object, exactly as ``nengo.Simulator`` gives it. What an online learning rule
learned (weights, Voja's encoders) counts as a parameter too, as in NengoDL
(`nengo_cuda.parameters.LearnedParameters`): ``sim.data`` shows it, where
``nengo.Simulator`` keeps the build value; each trial learns its own, so with
a ``minibatch_size`` it has a leading minibatch axis (NengoDL's shapes).

Changed ensembles are rebuilt from the two signals Nengo's builder made:

    scaled_encoders = encoders * gain / radius        (one row per neuron)
    J = scaled_encoders @ x + bias

Training moves ``scaled_encoders`` as a whole, so gain and encoders are split
again as NengoDL does, keeping each built encoder's norm:
``gain = radius * |scaled_encoders| / |encoders_built|``, ``encoders = radius *
scaled_encoders / gain``; max rates and intercepts follow from gain and bias
through the neuron type. A changed connection keeps its eval points and solver
info; its transform is None (the trained weights no longer factor into the
built decoders and transform), except for a convolution, whose weights are its
kernel: there it is the same convolution with the trained kernel as ``init``.
"""

import nengo
import numpy as np
from nengo.builder.connection import BuiltConnection
from nengo.builder.ensemble import BuiltEnsemble


def current_built(obj, built, sig, read):
    """``built`` with the current values of its parameter signals.

    sig: the model's ``model.sig``; read(signal) -> its current value (of the
    signal's shape, or with a leading minibatch axis), or None when it is not
    a parameter of this simulation.
    Returns ``built`` itself when nothing changed.
    """
    if isinstance(obj, nengo.Ensemble) and not isinstance(obj.neuron_type, nengo.Direct):
        return _ensemble(obj, built, sig, read)
    if isinstance(obj, nengo.Connection) and "weights" in sig[obj]:
        signal = sig[obj]["weights"]
        if signal is not None and signal.sparse:  # (read gives a changed one's SparseMatrix)
            weights = read(signal)
            if weights is None:
                return built
            return BuiltConnection(built.eval_points, built.solver_info, weights, None)
        weights = _changed(signal, read)
        if weights is not None:
            shape = np.shape(built.weights)
            lead = weights.shape[: weights.ndim - signal.ndim]  # (a minibatch axis)
            if weights.size == np.prod(lead + shape, dtype=int):
                weights = weights.reshape(lead + shape)
            transform = with_kernel(obj.transform, weights)
            return BuiltConnection(built.eval_points, built.solver_info, weights, transform)
    return built


def with_kernel(transform, kernel):
    """A copy of a (transposed) convolution with ``kernel`` as its ``init``;
    None for other transforms."""
    if isinstance(transform, nengo.transforms.ConvolutionTranspose):
        return nengo.transforms.ConvolutionTranspose(
            transform.n_filters, transform.input_shape, output_shape=transform.output_shape,
            kernel_size=transform.kernel_size, strides=transform.strides,
            padding=transform.padding, channels_last=transform.channels_last,
            init=np.reshape(kernel, transform.kernel_shape))
    if isinstance(transform, nengo.Convolution):
        return nengo.Convolution(
            transform.n_filters, transform.input_shape, kernel_size=transform.kernel_size,
            strides=transform.strides, padding=transform.padding,
            channels_last=transform.channels_last, groups=transform.groups,
            init=np.reshape(kernel, transform.kernel_shape))
    return None


def _changed(signal, read):
    """The signal's current value (float64) if it differs from its built value,
    or if it is given per trial (a leading minibatch axis: what a learning rule
    learns in each trial has that axis even before it moves, as in NengoDL)."""
    value = read(signal)
    if value is None:
        return None
    initial = np.asarray(signal.initial_value, dtype=value.dtype).reshape(signal.shape)
    if value.shape == signal.shape and (value == initial).all():
        return None
    return np.asarray(value, dtype=np.float64)


def _ensemble(ens, built, sig, read):
    scaled = _changed(sig[ens]["encoders"], read)
    bias = _changed(sig[ens.neurons]["bias"], read)
    if scaled is None and bias is None:
        return built
    if scaled is None:
        scaled, gain, encoders = built.scaled_encoders, built.gain, built.encoders
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            # (scaled: (n_neurons, d), or per trial (minibatch, n_neurons, d))
            gain = ens.radius * (np.linalg.norm(scaled, axis=-1)
                                 / np.linalg.norm(built.encoders, axis=-1))
            encoders = ens.radius * scaled / gain[..., None]
    bias = built.bias if bias is None else bias
    max_rates, intercepts = _max_rates_intercepts(ens.neuron_type, gain, bias)
    return BuiltEnsemble(built.eval_points, encoders, intercepts, max_rates, scaled, gain, bias)


def _max_rates_intercepts(neuron_type, gain, bias):
    """The neuron type's max rates and intercepts, one trial at a time where
    gain or bias has a minibatch axis (Nengo's generic method, which
    Izhikevich and users' types use, takes one population)."""
    if np.ndim(gain) < 2 and np.ndim(bias) < 2:
        return neuron_type.max_rates_intercepts(gain, bias)
    gain, bias = np.broadcast_arrays(gain, bias)
    pairs = [neuron_type.max_rates_intercepts(g, b) for g, b in zip(gain, bias)]
    return np.stack([m for m, _ in pairs]), np.stack([i for _, i in pairs])
