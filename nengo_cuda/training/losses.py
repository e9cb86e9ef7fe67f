"""Losses, metrics and output names for ``compile/fit/evaluate`` and ``train/loss``.

Two conventions, as in NengoDL:

- ``compile(loss=..., metrics=...)`` (NengoDL 3, Keras): functions are called as
  ``f(y_true, y_pred)``; strings name Keras losses/metrics (``"mse"`` is
  `mse_per_step`, whose mean is `nengo_cuda.obj.mse`'s where no target is NaN).
- ``train(objective=...)`` and ``loss(objective=...)`` (NengoDL 2): functions
  are called as ``f(outputs, targets)``, or ``f(outputs)`` when they take one
  argument (then the probe needs no targets).

Internally every loss is a function ``(outputs, targets)`` returning a scalar
or values with a leading minibatch axis, which are averaged.

Metrics (``compile(metrics=...)``) are reported by ``evaluate`` as
``"<probe name>_<metric name>"``: the mean over all evaluated items of
``metric(y_true, y_pred)`` (a Keras ``Metric`` accumulates it with
``update_state``; a function's values are averaged over each minibatch, then
over minibatches).  Probe names: the label (characters other than letters,
digits, ``_`` and ``.`` replaced by ``_``), else ``"probe"``; repeats get
``_1``, ``_2``, ... in the model's probe order.  Data and losses may be keyed
by these names (or labels) instead of the objects; input Nodes likewise
(default name ``"node"``).
"""

import inspect

import numpy as np
import tensorflow as tf
from nengo.exceptions import ValidationError

from .names import io_names  # noqa: F401 (part of this module's API)
from . import objectives


def _shape_kind(y_true, y_pred):
    """Keras's choice for "accuracy" and "crossentropy" by the shapes: "binary"
    (one output), "sparse" (targets of lower rank, or one target per several
    outputs: class indices) or "categorical"."""
    if y_pred.shape[-1] == 1:
        return "binary"
    if y_true.shape.rank < y_pred.shape.rank or y_true.shape[-1] == 1:
        return "sparse"
    return "categorical"


_BY_SHAPE_LOSSES = {
    "binary": lambda: tf.keras.losses.BinaryCrossentropy(),
    "sparse": lambda: tf.keras.losses.SparseCategoricalCrossentropy(),
    "categorical": lambda: tf.keras.losses.CategoricalCrossentropy(),
}
_BY_SHAPE_METRICS = {
    "binary": lambda: tf.keras.metrics.BinaryAccuracy(),
    "sparse": lambda: tf.keras.metrics.SparseCategoricalAccuracy(),
    "categorical": lambda: tf.keras.metrics.CategoricalAccuracy(),
}


class _CrossentropyByShape:
    """The loss ``"crossentropy"`` (``"ce"``): binary, sparse or categorical by
    the shapes of the targets and outputs, as Keras's ``compile`` chooses."""

    free_target_size = True  # class indices when sparse

    def __call__(self, y_true, y_pred):
        return _BY_SHAPE_LOSSES[_shape_kind(y_true, y_pred)]()(y_true, y_pred)


def mse_per_step(outputs, targets):
    """The loss ``"mse"`` of ``compile``: as Keras's, one mean squared error per
    item and step ``(minibatch, n_steps)`` (the mean of these is
    `nengo_cuda.obj.mse`'s where no target is NaN; per-step values take
    per-step sample weights).  A NaN target makes the loss NaN, as Keras's
    ``"mse"`` (which NengoDL 3's ``compile`` passes on): targets known only at
    some steps are `nengo_cuda.losses.nan_mse`'s or NengoDL 2's
    `nengo_cuda.obj.mse`'s, which count NaN targets as no error."""
    err = tf.square(tf.cast(targets, outputs.dtype) - outputs)
    shape = tf.shape(err)
    return tf.reduce_mean(tf.reshape(err, (shape[0], shape[1], -1)), axis=2)


def keras_loss(loss):
    """A ``compile`` loss as a function ``(outputs, targets)``."""
    if isinstance(loss, str):
        if loss in ("mse", "mean_squared_error"):
            return mse_per_step
        if loss in ("crossentropy", "ce"):
            fn = _CrossentropyByShape()
        else:
            try:
                fn = tf.keras.losses.get(loss)
            except (ValueError, TypeError) as e:
                raise ValidationError(f"unknown loss {loss!r} ({e})", attr="loss") from None
    elif loss is objectives.mse:  # (NengoDL 2's, (outputs, targets): per item)
        def per_item(outputs, targets):
            return objectives.mse_per_item(outputs, targets)

        per_item.free_target_size = False
        return per_item
    elif callable(loss):
        fn = loss
    else:
        raise ValidationError(f"loss must be callable or a Keras loss name (got {loss!r})",
                              attr="loss")

    if isinstance(fn, tf.keras.losses.Loss) and fn.reduction == "sum_over_batch_size":
        # (a Keras Loss object, reducing by the mean as Keras does by default:
        # its values per item and step, which this mean reduces as Keras's,
        # so that sample and class weights weigh them as in Keras)
        def loss_fn(outputs, targets):
            return fn.call(targets, outputs)
    else:
        def loss_fn(outputs, targets):
            return fn(targets, outputs)

    loss_fn.free_target_size = free_target_size(fn)
    return loss_fn


def free_target_size(fn):
    """Whether loss ``fn``'s targets may differ in size from its probe's output.

    A sparse loss takes class indices (one per step), and the user's own
    function decides what its targets are (NengoDL's tutorials give a
    classification accuracy one label per step); the other built-in losses
    (``"mse"``, Keras's dense losses) need targets the probe's size, where a
    size-1 target would silently broadcast.
    """
    if hasattr(fn, "free_target_size"):
        return fn.free_target_size
    names = (type(fn).__name__, getattr(fn, "__name__", ""), str(getattr(fn, "name", "")))
    if any("sparse" in n.lower() for n in names):
        return True
    module = getattr(fn, "__module__", None) or type(fn).__module__
    return module.split(".")[0] not in ("keras", "tensorflow", "tf_keras", "nengo_cuda")


def objective(fn):
    """A NengoDL 2 ``objective`` as a function ``(outputs, targets)``."""
    if isinstance(fn, str):
        if fn == "mse":
            return objectives.mse_per_item
        raise ValidationError(f"unknown objective {fn!r} (use a function or 'mse')",
                              attr="objective")
    if not callable(fn):
        raise ValidationError(f"objective must be callable (got {fn!r})", attr="objective")
    if _positional_count(fn) == 1:  # f(outputs): no targets (e.g. a regularizer)
        def outputs_only(outputs, targets):
            return fn(outputs)

        outputs_only.needs_targets = False
        outputs_only.free_target_size = True
        return outputs_only
    return fn


def _positional_count(fn):
    """How many positional arguments ``fn`` takes (None when it takes *args or
    its signature is unknown)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               and p.default is p.empty)


class ProbeMetric:
    """One metric for one probe: ``reset``, ``update(y_true, y_pred)``, ``result``.

    ``weighted``: a metric of ``compile(weighted_metrics=...)``, which takes the
    sample weights (Keras's compiled ``metrics`` ignore them)."""

    def __init__(self, spec, weighted=False):
        self.weighted = weighted
        if isinstance(spec, str):
            self.name = spec
            if spec in ("mse", "mean_squared_error"):
                self._fn, self._keras = mse_per_step, None
            elif spec in ("accuracy", "acc"):
                # binary, sparse or categorical: chosen by the shapes at the first
                # update, as Keras's compile does (Keras's own "accuracy" metric
                # compares values for equality)
                self._fn, self._keras = None, None
            else:
                try:
                    self._keras = tf.keras.metrics.get(spec)
                except (ValueError, TypeError) as e:
                    raise ValidationError(f"unknown metric {spec!r} ({e})", attr="metrics") from None
                self._fn = None
        elif isinstance(spec, tf.keras.metrics.Metric):
            self.name = spec.name
            self._keras, self._fn = type(spec).from_config(spec.get_config()), None  # own state
        elif callable(spec):
            self.name = getattr(spec, "__name__", None) or type(spec).__name__.lower()
            self._keras, self._fn = None, spec
        else:
            raise ValidationError(
                f"a metric must be a name, a Keras Metric or a function (got {spec!r})",
                attr="metrics")
        if callable(self._keras) and not isinstance(self._keras, tf.keras.metrics.Metric):
            self._keras, self._fn = None, self._keras  # a metric function
        self._by_shape = self._keras is None and self._fn is None
        self.reset()

    def reset(self):
        self._values = []
        if self._keras is not None:
            self._keras.reset_state()

    def update(self, y_true, y_pred, sample_weight=None):
        """``sample_weight``: None, or ``(mb, 1)`` / ``(mb, steps)`` weights
        (`sample_weights`), taken as Keras's metrics take them when the metric
        is ``weighted`` (ignored otherwise, as Keras's compiled ``metrics``)."""
        if not self.weighted:
            sample_weight = None
        if self._by_shape and self._keras is None:
            y_true, y_pred = tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred)
            self._keras = _BY_SHAPE_METRICS[_shape_kind(y_true, y_pred)]()
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight)
            w = w[:, 0] if w.shape[1] == 1 else w
        if self._keras is not None:
            self._keras.update_state(y_true, y_pred, sample_weight=w)
            return
        value = tf.convert_to_tensor(self._fn(y_true, y_pred))
        if w is None:
            self._values.append((float(tf.reduce_sum(value)), value.shape.num_elements()))
            return
        if value.shape.rank == 0:
            raise ValidationError(f"the metric {self.name} returns one value for the "
                                  "minibatch; sample weights need a value per item",
                                  attr="sample_weight")
        # Keras's weighted mean: sum(v * w) / sum(w), w broadcast over v's axes
        w = np.reshape(w, w.shape + (1,) * (value.shape.rank - w.ndim))
        w = np.broadcast_to(w, value.shape)
        self._values.append((float(tf.reduce_sum(value * w.astype(value.dtype.as_numpy_dtype))),
                             float(w.sum())))

    def result(self):
        if self._keras is not None:
            return float(self._keras.result())
        total = sum(v for v, _ in self._values)
        count = sum(n for _, n in self._values)
        return total / count if count else 0.0


def metrics_by_probe(spec, probes, lookup, weighted_spec=None, model_probes=None):
    """``compile(metrics=spec, weighted_metrics=weighted_spec)`` as
    {probe: [ProbeMetric]} for the given target probes.

    ``spec``: None; a metric (for every probe); a list, which in a model of
    several probes (``model_probes``, in order) gives each its metric or list
    of metrics by position, as Keras's outputs and NengoDL's ``compile`` take
    it, and in a model of one probe is that probe's metrics; or a dict {probe
    (or its label): metric or list of metrics}; ``weighted_spec`` likewise (a
    weighted metric named as an unweighted one of its probe is
    ``weighted_<name>``, as in Keras).  ``lookup`` resolves a key to a Probe
    (raising ValidationError for anything else).
    """
    out = {}
    model_probes = list(probes if model_probes is None else model_probes)
    for specs_of, weighted in ((spec, False), (weighted_spec, True)):
        if specs_of is None:
            continue
        arg = "weighted_metrics" if weighted else "metrics"
        if isinstance(specs_of, dict):
            per = {lookup(k, arg): v for k, v in specs_of.items()}
        elif isinstance(specs_of, (list, tuple)) and len(model_probes) > 1:
            per = _by_position(specs_of, model_probes, arg)
        else:
            if (isinstance(specs_of, (list, tuple)) and len(specs_of) == 1
                    and isinstance(specs_of[0], (list, tuple))):
                specs_of = specs_of[0]  # (the one probe's list, by position)
            per = {p: specs_of for p in probes}
        for p, specs in per.items():
            specs = specs if isinstance(specs, (list, tuple)) else [specs]
            taken = {m.name for m in out.get(p, ())}
            for s in specs:
                metric = ProbeMetric(s, weighted)
                if weighted and metric.name in taken:
                    metric.name = f"weighted_{metric.name}"
                out.setdefault(p, []).append(metric)
    return out


def _by_position(specs, model_probes, what):
    if len(specs) != len(model_probes):
        raise ValidationError(
            f"a list must have one entry (a metric or a list of them) per probe of "
            f"the model ({len(model_probes)}, in its order), got {len(specs)}; or give a "
            f"dict {{probe: metrics}}", attr=what)
    return {p: m for p, m in zip(model_probes, specs) if m is not None}
