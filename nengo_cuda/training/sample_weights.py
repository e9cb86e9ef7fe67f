"""Keras's ``sample_weight`` in ``fit``/``evaluate`` (NengoDL passed it to Keras).

A probe's weights are one per item ``(n,)`` or one per item and step
``(n, steps)`` (Keras's temporal weights), kept as ``(n, 1)`` or ``(n, steps)``.
The loss is Keras's ``sum_over_batch_size`` reduction of the weighted values:

    loss = sum(values * weights) / number of values,

with ``values`` what the loss function returns per item (and per step: the
built-in ``"mse"`` gives one value per item and step, as Keras's) and the
weights broadcast over the values' trailing axes.  Metrics take the weights as
Keras's metrics do (a weighted mean: ``sum(v * w) / sum(w)``).  ``class_weight``
gives each item (and step) the weight of its target class (`from_class_weight`).
"""

import numpy as np
import tensorflow as tf
from nengo.exceptions import ValidationError


def check_sample_weights(sample_weight, y, lookup, what):
    """``{probe: (n, 1) or (n, steps) float64 array}`` for targets ``y``
    ({probe: (n, steps, size)}), or None.

    ``sample_weight``: an array (for every probe with targets, as Keras
    weighs every output), a dict keyed by probes (or their names:
    ``lookup``), or a list with one entry per probe of ``y``, in its order
    (None: weight 1)."""
    if sample_weight is None:
        return None
    probes = list(y)
    batch = next(iter(y.values())).shape[0]
    if isinstance(sample_weight, dict):
        given = {lookup(k): v for k, v in sample_weight.items()}
    elif isinstance(sample_weight, (list, tuple)):
        if len(sample_weight) != len(probes):
            raise ValidationError(
                f"{what}: sample_weight as a list needs one entry per probe with targets "
                f"({len(probes)}), got {len(sample_weight)}", attr="sample_weight")
        given = dict(zip(probes, sample_weight))
    else:  # one array weighs every probe's targets (as Keras, every output's)
        given = dict.fromkeys(probes, sample_weight)
    weights = {}
    for probe, w in given.items():
        if probe not in y:
            raise ValidationError(f"{what}: sample_weight given for {probe}, which has no "
                                  "targets", attr="sample_weight")
        if w is None:
            continue
        w = np.asarray(w, dtype=np.float64)
        steps = y[probe].shape[1]
        if w.ndim not in (1, 2) or w.shape[0] != batch or (w.ndim == 2
                                                            and w.shape[1] not in (1, steps)):
            raise ValidationError(
                f"{what}: sample_weight for {probe} has shape {w.shape}; expected "
                f"({batch},) (one per item) or ({batch}, {steps}) (one per item and step)",
                attr="sample_weight")
        weights[probe] = w.reshape(batch, -1)
    return {p: weights.get(p, np.ones((batch, 1))) for p in probes}


def from_class_weight(class_weight, sample_weight, y, what):
    """Keras's ``class_weight`` ({class index: weight}) as ``sample_weight``
    for the one probe with targets: each item's (and step's) class is its
    target (class indices, or the argmax of one-hot targets), unlisted classes
    weigh 1."""
    if class_weight is None:
        return sample_weight
    if sample_weight is not None:
        raise ValidationError(f"{what}: give class_weight or sample_weight, not both",
                              attr="class_weight")
    if not isinstance(class_weight, dict) or len(y) != 1:
        raise ValidationError(
            f"{what}: class_weight must be a dict {{class index: weight}}, for one probe "
            f"with targets (got {type(class_weight).__name__}, {len(y)} probes)",
            attr="class_weight")
    (target,) = y.values()
    classes = target[..., 0] if target.shape[-1] == 1 else np.argmax(target, axis=-1)
    classes = np.round(classes).astype(np.int64)
    weights = np.ones(classes.shape)
    for c, w in class_weight.items():
        weights[classes == int(c)] = float(w)
    return weights


def split(weights, at):
    """The weights of items ``[:at]`` and ``[at:]`` (None stays None)."""
    if weights is None:
        return None, None
    return ({p: w[:at] for p, w in weights.items()}, {p: w[at:] for p, w in weights.items()})


def weighted_mean(values, weights, probe):
    """Keras's reduction of a loss's ``values`` (leading minibatch axis) with
    ``weights`` ``(mb, 1)`` or ``(mb, steps)``: ``sum(values * w) / size``."""
    rank = values.shape.rank
    if rank == 0:
        raise ValidationError(
            f"the loss for {probe} returns one value for the minibatch; sample weights "
            "need a value per item (or per item and step)", attr="sample_weight")
    w = tf.cast(weights, values.dtype)
    if rank == 1:
        if weights.shape[1] != 1:
            raise ValidationError(
                f"the loss for {probe} returns one value per item; per-step sample weights "
                "need a value per item and step", attr="sample_weight")
        w = w[:, 0]
    else:
        if weights.shape[1] not in (1, values.shape[1]):
            raise ValidationError(
                f"the loss for {probe} returns values of shape {values.shape}; sample "
                f"weights of {weights.shape[1]} steps do not match", attr="sample_weight")
        w = tf.reshape(w, [-1, weights.shape[1]] + [1] * (rank - 2))
    weighted = values * w
    return tf.reduce_sum(weighted) / tf.cast(tf.size(weighted), values.dtype)
