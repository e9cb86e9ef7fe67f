"""Training, evaluation and parameters of a `nengo_cuda.Simulator` (NengoDL 3's API).

`Trainer` backs ``sim.compile/fit/evaluate/predict/predict_on_batch/train/loss``
and ``check_gradients``; with `parameter_io.ParameterIO`
``save_params/load_params/freeze_params/get_nengo_params``.

- ``fit`` trains through `nengo_cuda.training.graph.TrainingGraph` (rate
  neurons, our TensorFlow ops), then writes the trained values into the
  simulator's buffers, so ``sim.run`` simulates the trained network.
- ``evaluate``/``loss``/``predict`` simulate the network as defined (spiking),
  with the native kernels, one minibatch at a time.
- ``stateful`` (NengoDL 3; default False in predict, predict_on_batch,
  evaluate and fit): False starts every minibatch from the simulator's current
  state and leaves that state as it was; True runs the minibatches one after
  another from the current state and keeps the final state (``n_steps`` and
  ``time`` advance).  ``sim.data`` is never changed.  See docs/training-state.md.
"""

from typing import NamedTuple

import numpy as np
import nengo
import tensorflow as tf
from nengo.exceptions import SimulationError, ValidationError

from . import sample_weights
from .callbacks import CallbackList, FitModel
from .config import get_setting, keep_history, trainable_objects
from .epochs import ArrayFeed, SourceFeed, steps_argument
from .graph import TrainingGraph, trainable_signals
from .losses import free_target_size, io_names, keras_loss, metrics_by_probe
from .losses import objective as nengo2_objective
from .names import zip_with_objects
from .objectives import mse
from .parameter_io import ParameterIO
from .tensor_node import is_tensor_node_func
from .tf_process_state import forgetting_custom_gradients, quiet_retracing_warnings
from ..user_warnings import warn


quiet_retracing_warnings()


class FitData(NamedTuple):
    """One epoch's data in ``fit``: inputs and targets by object (arrays of
    ``batch`` items of ``steps`` steps), sample weights by probe or None."""

    x: dict
    y: dict
    weights: object
    batch: int
    steps: int

    def signature(self):
        """What every epoch's data must share: steps, inputs, targets, weights."""
        return (self.steps, list(self.x), list(self.y),
                self.weights is not None)


def _is_batch_source(data):
    """Whether ``data`` gives minibatches: a ``tf.data.Dataset`` or an iterator."""
    return isinstance(data, tf.data.Dataset) or hasattr(data, "__next__")


def _refuse_beside_source(what, **data):
    for name, value in data.items():
        if value is not None:
            raise ValidationError(f"{what}: {name} must be None when x is a dataset or "
                                  "generator (it yields (x, y) or (x, y, sample_weight))",
                                  attr=name)


def _refuse_unsupported(method, **options):
    """Raises for NengoDL 2 options we accept by name but do not implement, when
    set (None or False: not set)."""
    for name, value in options.items():
        if value is not None and value is not False:
            raise ValidationError(
                f"sim.{method}: NengoDL 2's {name}={value!r} is not supported by "
                f"nengo_cuda (use the default)", attr=name)

class Trainer(ParameterIO):
    def __init__(self, sim):
        self.sim = sim
        self.network = getattr(sim.model, "toplevel", None)
        self.optimizer = None
        self.losses = None
        self.loss_weights = {}
        self.metrics = None
        self.weighted_metrics = None
        self._keep_history = {}
        self._graph = None
        self._train_fns = {}
        self._keras_model = None

    # -- settings and graph ---------------------------------------------------
    def setting(self, name, default=None):
        return get_setting(self.network, name, default)

    def _refuse_inference_only(self, why):
        if self.setting("inference_only", False):
            raise SimulationError(
                f"this network was configured with inference_only=True; {why}")

    @property
    def graph(self):
        if self._graph is None:
            trainable = trainable_objects(self.network) if self.network is not None else {}
            self._graph = TrainingGraph(
                self.sim,
                trainable_signals(self.sim, trainable),
                lif_smoothing=self.setting("lif_smoothing"),
                use_loop=bool(self.setting("use_loop", True)),
            )
        return self._graph

    def _tensor_funcs(self):
        """The TensorNodes' functions, each once, in the network's order of nodes
        (the same in every build of the network; the step order is not)."""
        funcs = {}
        for op in self.sim.step_order:
            fn = getattr(op, "fn", None)
            if is_tensor_node_func(fn):
                funcs.setdefault(id(fn), fn)
        position = {id(node.output): i
                    for i, node in enumerate(self.sim.model.toplevel.all_nodes)}
        return sorted(funcs.values(), key=lambda fn: position.get(id(fn), len(position)))

    def _keras_variables(self, trainable=True):
        """Variables of the TensorNodes' Keras layers (each once)."""
        found = {}
        for fn in self._tensor_funcs():
            for var in (fn.trainable_variables() if trainable else fn.variables()):
                found.setdefault(id(var), var)
        return list(found.values())

    def _has_synapses(self, probes):
        """Whether a Connection of the network or one of ``probes`` filters."""
        conns = self.network.all_connections if self.network is not None else []
        return any(obj.synapse is not None for obj in list(conns) + list(probes))

    def _regularization(self):
        """The weight regularization of the TensorNodes' Keras layers (their
        ``kernel_regularizer`` ...), which Keras adds to the loss in ``fit`` and
        ``evaluate``, as NengoDL's Keras model does; None without any."""
        terms = [tf.cast(v.regularizer(v), self.graph.dtype) for v in self._keras_variables()
                 if getattr(v, "regularizer", None) is not None]
        return tf.add_n(terms) if terms else None

    @property
    def keras_model(self):
        """``sim.keras_model``: a `callbacks.FitModel` (one per simulator)."""
        if self._keras_model is None:
            self._keras_model = FitModel(self)
        return self._keras_model

    def trained_count(self):
        """How many numbers ``fit`` trains (Keras's count of trainable parameters)."""
        return self.graph.trained_count() + int(
            sum(np.prod(v.shape) for v in self._keras_variables()))

    @property
    def trainable_variables(self):
        """What ``fit`` optimises: the Nengo parameters (see
        `nengo_cuda.training.config`) and the TensorNodes' Keras layer weights."""
        return self.graph.trainable_variables + self._keras_variables()

    # -- data --------------------------------------------------------------------
    def _objects(self, what):
        """The objects data is keyed by: input Nodes (``what="input"``) or Probes."""
        return list(self.sim._input_nodes) if what == "input" else list(self.sim.model.probes)

    def _lookup(self, key, kinds, what):
        if isinstance(key, str):  # a name (see names.io_names) or a label
            objs = self._objects(what)
            names = io_names(objs, "node" if what == "input" else "probe")
            key = next((o for o in objs if names[o] == key),
                       next((o for o in objs if o.label == key), key))
        if what == "input" and key not in self.sim._input_nodes:
            raise ValidationError(
                f"{key!r} is not an input Node of this network (inputs must be Nodes "
                "with size_in=0)", attr="x")
        if what == "target" and key not in self.sim.model.probes:
            raise ValidationError(f"{key!r} is not a Probe of this network; targets must be "
                                  "keyed by its Probes", attr="y")
        return key

    def _from_batches(self, x, y, limit=None, what="fit", sample_weight=None):
        """``x`` given as a ``tf.data.Dataset`` or a generator (Keras's and NengoDL's
        other input forms): its batches, each ``(x, y)``, ``(x, y, sample
        weights)`` or ``x`` alone, joined into arrays along the items (``limit``:
        at most that many batches, for an endless generator).  NengoDL's special
        ``"n_steps"`` input is dropped (the steps are the data's).  Returns
        ``(x, y, sample_weight)``; other ``x`` is returned as given."""
        if not _is_batch_source(x):
            return x, y, sample_weight
        _refuse_beside_source(what, y=y, sample_weight=sample_weight)
        batches = []
        for i, element in enumerate(x):
            if limit is not None and i >= int(limit):
                break
            batches.append(element)
        return self._join_batches(batches, what)

    def _join_batches(self, batches, what):
        """``(x, y, sample_weight)``: the elements of a Dataset or generator (see
        `_from_batches`) joined along the items."""
        xs, ys, ws = [], [], []
        for element in batches:
            parts = element if isinstance(element, tuple) and len(element) in (2, 3) \
                else (element,)
            xs.append(parts[0])
            ys.append(parts[1] if len(parts) > 1 else None)
            ws.append(parts[2] if len(parts) > 2 else None)
        if not xs:
            raise ValidationError(f"{what}: the dataset or generator gave no batches", attr="x")

        def join(parts):
            if parts[0] is None:
                return None
            if isinstance(parts[0], dict):
                return {k: np.concatenate([np.asarray(p[k]) for p in parts])
                        for k in parts[0] if k != "n_steps"}
            if isinstance(parts[0], (list, tuple)):
                return [np.concatenate([np.asarray(p[j]) for p in parts])
                        for j in range(len(parts[0]))]
            return np.concatenate([np.asarray(p) for p in parts])

        if any(w is None for w in ws) and not all(w is None for w in ws):
            raise ValidationError(f"{what}: some batches have sample weights, others not",
                                  attr="x")
        return join(xs), join(ys), join(ws)

    def _as_dict(self, data, what):
        if data is None:
            return {}
        if not isinstance(data, dict):
            kind = "input Nodes" if what == "input" else "Probes"
            data = zip_with_objects(data, self._objects(what), what, kind)
        return {self._lookup(k, None, what): np.asarray(v) for k, v in data.items()}

    def _check(self, x, y, n_steps=None):
        arrays = list(x.values()) + list(y.values())
        if not arrays:
            raise ValidationError("no data given", attr="x")
        batch = arrays[0].shape[0]
        for obj, value in list(x.items()) + list(y.items()):
            if value.ndim != 3:
                raise ValidationError(
                    f"data for {obj} must have shape (batch, n_steps, size) "
                    f"(got {value.shape})", attr="x")
            if value.shape[0] != batch:
                raise ValidationError("all data must have the same batch size", attr="x")
            size = obj.size_out if isinstance(obj, nengo.Node) else self._probe_size(obj)
            if value.shape[2] != size and not self._free_target_size(obj):
                raise ValidationError(f"data for {obj} has size {value.shape[2]}; expected "
                                      f"{size}", attr="x")
        if n_steps is not None:
            steps = int(n_steps)
        elif x:
            steps = next(iter(x.values())).shape[1]
        else:
            full = [v for p, v in y.items() if self.keep_history(p)]
            if not full:
                raise ValidationError("give n_steps (the targets hold only the last step)",
                                      attr="n_steps")
            steps = full[0].shape[1]
        for obj, value in x.items():
            if value.shape[1] != steps:
                raise ValidationError(f"input data for {obj} has {value.shape[1]} steps; "
                                      f"expected {steps}", attr="x")
        for obj, value in y.items():
            expected = steps if self.keep_history(obj) else 1
            # the user's own (or a sparse) loss may take any number of steps, as
            # NengoDL allows ("as long as it matches what the loss expects")
            if value.shape[1] != expected and not self._free_target_size(obj):
                why = "" if self.keep_history(obj) else " (keep_history=False: the last step)"
                raise ValidationError(f"target data for {obj} has {value.shape[1]} steps; "
                                      f"expected {expected}{why}", attr="y")
        mb = self.sim.n_trials
        if batch == 0:
            raise ValidationError("the data holds no items", attr="x")
        if batch % mb != 0:
            if batch < mb:
                raise ValidationError(
                    f"the batch size ({batch}) is less than the simulator's minibatch_size "
                    f"({mb})", attr="x")
            # as NengoDL: the whole minibatches run, the rest is left out
            warn(f"the batch size ({batch}) is not evenly divisible by the simulator's "
                 f"minibatch_size ({mb}): the last {batch % mb} item(s) are left out")
            batch -= batch % mb
        return batch, steps

    def _free_target_size(self, obj):
        """Whether the targets for probe ``obj`` may differ in size from its output
        (class indices for a sparse loss, anything for the user's own loss:
        `losses.free_target_size`)."""
        if isinstance(obj, nengo.Node) or self.losses is None:
            return False
        return free_target_size(self._loss_for(obj))

    def keep_history(self, probe):
        """False when ``probe`` is configured ``keep_history=False`` (its outputs
        in predict/evaluate/fit are the last step only)."""
        if probe not in self._keep_history:
            self._keep_history[probe] = keep_history(self.network, probe)
        return self._keep_history[probe]

    def _history(self, probe, value):
        """``value`` (batch, n_steps, size), or its last step if not kept."""
        return value if self.keep_history(probe) else value[:, -1:]

    def _probe_size(self, probe):
        return int(np.prod(self.sim.model.sig[probe]["in"].shape))

    # -- compile / fit --------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                weighted_metrics=None):
        """Sets the optimizer, losses and metrics for `fit` and `evaluate`.

        ``optimizer``: a Keras optimizer (or its name; Keras's default
        ``"rmsprop"``), or a TF1 optimizer
        (``tf.compat.v1.train.RMSPropOptimizer(0.01)`` etc., as NengoDL 2's
        ``sim.train`` took), which is used as is, with its own update rule.
        ``loss``: one loss for every probe with targets, a dict {probe (or its
        name): loss}, or a list with one loss per probe in the model's order
        (Keras's outputs); ``loss_weights`` likewise (a dict or a list).
        ``metrics`` ignore ``fit``'s and ``evaluate``'s ``sample_weight``,
        ``weighted_metrics`` take it (as in Keras).
        """
        if isinstance(optimizer, str):
            optimizer = tf.keras.optimizers.get(optimizer)
        if optimizer is not None and not hasattr(optimizer, "apply_gradients"):
            raise ValidationError(
                f"optimizer must be a Keras optimizer, its name, or a tf.compat.v1.train "
                f"optimizer (got {optimizer!r})", attr="optimizer")
        self.optimizer = optimizer
        self.losses = self._losses(loss, keras_loss)
        self.loss_weights = {self._lookup(p, None, "target"): w
                             for p, w in self._per_probe(loss_weights or {}, "loss_weights").items()}
        self.metrics, self.weighted_metrics = metrics, weighted_metrics
        self._metrics_for(list(self.sim.model.probes))  # validates the metrics
        self._train_fns = {}

    def _metrics_for(self, probes):
        """{probe: [ProbeMetric]} for target ``probes`` (fresh metric states)."""
        return metrics_by_probe(self.metrics, probes, lambda k: self._lookup(k, None, "target"),
                                self.weighted_metrics)

    def _per_probe(self, values, what):
        """``values`` as a dict: a list or tuple gives one value per probe, in
        the model's order (Keras's outputs)."""
        if not isinstance(values, (list, tuple)):
            return values
        probes = list(self.sim.model.probes)
        if len(values) != len(probes):
            raise ValidationError(
                f"{what}: a list must have one entry per probe of the model ({len(probes)}, "
                f"in its order), got {len(values)}; or give a dict {{probe: value}}", attr=what)
        return dict(zip(probes, values))

    def _losses(self, loss, convert):
        if loss is None:
            return None
        loss = self._per_probe(loss, "loss")
        if isinstance(loss, dict):
            return {self._lookup(p, None, "target"): convert(f) for p, f in loss.items()}
        return convert(loss)  # one loss for every probe with targets

    def _loss_for(self, probe):
        if isinstance(self.losses, dict):
            if probe not in self.losses:
                raise ValidationError(f"no loss given for the targets of {probe}", attr="loss")
            return self.losses[probe]
        return self.losses

    def _reduce(self, value, probe, weights=None):
        """The mean of a loss's values (a scalar, or values with a leading
        minibatch axis, e.g. per item or per item and step); with sample
        ``weights``, Keras's weighted reduction (`sample_weights.weighted_mean`)."""
        value = tf.convert_to_tensor(value)
        mb = self.sim.n_trials
        if value.shape.rank != 0 and (value.shape.rank is None or value.shape[0] != mb):
            raise ValidationError(
                f"the loss for {probe} returned shape {value.shape}; it must return a "
                f"scalar or values with a leading minibatch axis ({mb})", attr="loss")
        if weights is None:
            return tf.reduce_mean(value)
        return sample_weights.weighted_mean(value, weights, probe)

    def fit(self, x=None, y=None, n_steps=None, epochs=1, shuffle=True, verbose="auto",
            stateful=False, callbacks=None, validation_data=None, validation_split=0.0,
            validation_freq=1, initial_epoch=0, batch_size=None, validation_batch_size=None,
            sample_weight=None, class_weight=None, steps_per_epoch=None,
            validation_steps=None, **kwargs):
        """Trains on ``x`` (input Nodes) and ``y`` (targets by Probe) with rate neurons.

        Each epoch visits the minibatches of a permutation of the items (seeded
        by the simulator's seed; ``shuffle=False``, or data from a Dataset or
        generator, as Keras: in order) and, per
        minibatch, applies the optimizer to the gradient of
        ``sum_p loss_weight_p * mean(loss_p(y_p, output_p))`` with respect to
        `trainable_variables`.  The trained Nengo parameters are then written
        into the simulator.

        ``stateful`` (NengoDL 3; default False): every minibatch starts from the
        simulator's current state, which is left unchanged; True: the
        minibatches (of every epoch) continue one from the other, starting from
        the current state, and the final state is kept (``n_steps``/``time``
        advance by every minibatch's steps).

        ``x`` may also be a ``tf.data.Dataset`` or a generator of ``(x, y)``
        minibatches (`_from_batches`; with ``steps_per_epoch``, read that many
        batches an epoch, as Keras reads an endless one), as in Keras and
        NengoDL; so may ``validation_data``.

        Keras ``fit`` arguments (see docs/training-state.md):

        - ``callbacks``: Keras callbacks, called as Keras 3 calls them;
          ``callback.model`` is a `callbacks.FitModel` (``stop_training``,
          ``optimizer``, ``get_weights``/``set_weights``, ``simulator``).
        - ``validation_data`` (``(x, y)``, as ``x``/``y`` here) or
          ``validation_split`` (the last fraction of the items, before
          shuffling): after every ``validation_freq``-th epoch, `evaluate`
          (spiking, ``stateful=False``) on them with the parameters (and, when
          ``stateful``, the state) trained so far; logged as ``"val_<name>"``.
        - ``verbose``: 0 prints nothing; otherwise (Keras's default ``"auto"``)
          one line per epoch with its logs.
        - ``initial_epoch``: the first epoch's number (epochs run
          ``initial_epoch .. epochs - 1``).
        - ``batch_size``/``validation_batch_size``: as NengoDL, the minibatch
          size is the simulator's; another value is ignored with a warning.
        - ``sample_weight`` (also a 3-item ``validation_data``, and datasets of
          ``(x, y, sample_weight)``): per item ``(n,)`` or per item and step
          ``(n, steps)``, an array for one probe with targets or a dict by
          probe; the losses and metrics weigh their values as Keras's do
          (`nengo_cuda.training.sample_weights`).
        - ``class_weight`` ({class: weight}, one probe with targets): each
          item's (and step's) target class gives its sample weight.
        - ``steps_per_epoch``: minibatches per epoch, taken as Keras 3 takes
          them (`nengo_cuda.training.epochs`): epochs continue one pass over
          the data (a Dataset or generator: read an epoch at a time), one that
          runs out ends early with a warning.  ``validation_steps``: each
          validation runs the first that many minibatches.

        Returns a ``tf.keras.callbacks.History``: ``history.history`` holds each
        epoch's ``"loss"`` (the mean over its minibatches of the objective),
        ``"<probe>_loss"`` (each probe's unweighted loss) and
        ``"<probe>_<metric>"`` (compiled metrics, on the training outputs), the
        names `evaluate` reports, and ``"val_..."`` of those when validating.
        """
        self._check_keras_kwargs("fit", kwargs, batch_size=batch_size,
                                 validation_batch_size=validation_batch_size)
        self._refuse_inference_only("it cannot be trained")
        if self.optimizer is None:
            raise SimulationError("call sim.compile(optimizer, loss) before sim.fit")
        if self.losses is None:
            raise SimulationError("call sim.compile with a loss before sim.fit")
        stateful = self._stateful(stateful, "fit")
        steps_per_epoch = steps_argument(steps_per_epoch, "steps_per_epoch")
        validation_steps = steps_argument(validation_steps, "validation_steps")
        if not isinstance(validation_freq, (int, list, tuple)) or isinstance(
                validation_freq, bool):
            raise ValidationError(f"validation_freq must be an int or a list of epochs "
                                  f"(got {validation_freq!r})", attr="validation_freq")
        mb = self.sim.n_trials
        feed, validation = self._fit_feed(
            x, y, sample_weight, n_steps, class_weight, shuffle, steps_per_epoch,
            validation_data, validation_split, validation_steps)
        data = feed.data
        probes, steps = list(data.y), data.steps
        for probe in probes:
            self._loss_for(probe)
        graph = self.graph
        if steps == 1 and self._has_synapses(probes):
            warn("fit: training on one step per item, but the network contains synaptic "
                 "filters, whose outputs start at their initial state: set synapse=None on "
                 "the connections to train, or train on more steps (NengoDL's advice)")
        if not self.trainable_variables:  # runs (and reports the loss), as NengoDL's
            warn("fit: no parameters are trainable (see configure_settings; TensorNodes' "
                 "Keras layers train too): nothing changes")
        metrics = self._metrics_for(probes)
        with_outputs = tuple(p for p in probes if metrics.get(p))
        # (the variables too: a Keras layer frozen since the last fit must not train)
        key = (tuple(data.x), tuple(probes), steps, stateful, with_outputs,
               tuple(id(v) for v in self.trainable_variables))
        if key not in self._train_fns:
            self._train_fns[key] = self._make_train_step(list(data.x), probes, steps, stateful,
                                                         with_outputs)
        train_range = self._train_fns[key]
        dtype = self.sim.dtype

        def upload(data):
            return (tuple(tf.constant(v.astype(dtype)) for v in data.x.values()),
                    tuple(tf.constant(data.y[p].astype(dtype)) for p in probes),
                    () if data.weights is None
                    else tuple(tf.constant(data.weights[p]) for p in probes))

        uploaded = None
        # the simulator's state: where every minibatch (or, stateful, the first) starts
        state = [tf.constant(v) for v in graph.read_state()] if self.sim._stateful else None
        t0 = self.sim.n_steps if self.sim._stateful else 0

        model = self.keras_model
        verbose = 1 if verbose == "auto" else verbose  # as Keras resolves it
        cbs = CallbackList(callbacks, model, {
            "epochs": int(epochs), "steps": steps_per_epoch or data.batch // mb,
            "verbose": verbose}, fit=True)
        model.stop_training = False
        cbs("on_train_begin")
        epoch_logs = None
        for epoch in range(int(initial_epoch), int(epochs)):
            this_epoch = feed.next_epoch(epoch)
            if this_epoch is None:
                break
            epoch_data, order, _ = this_epoch
            if uploaded is None or epoch_data is not data:
                data, uploaded = epoch_data, upload(epoch_data)
            n_batches = len(order)
            cbs("on_epoch_begin", epoch)
            order_t = tf.constant(order.astype(np.int32))
            for metric in (m for ms in metrics.values() for m in ms):
                metric.reset()
            total, per_probe, done = 0.0, np.zeros(len(probes)), 0
            while done < n_batches:
                # one graph call for the whole epoch, or one per minibatch when a
                # callback has batch hooks (or has asked to stop: Keras stops after
                # the next minibatch)
                stop = done + 1 if (cbs.batch_hooks or model.stop_training) else n_batches
                if cbs.batch_hooks:
                    cbs("on_train_batch_begin", done)
                with self.graph.host_errors():
                    loss_sum, probe_sums, final, outs = train_range(
                        *uploaded, order_t, tf.constant(done), tf.constant(stop),
                        tuple(state) if state is not None else (),
                        tf.constant(float(t0), tf.float64))
                self._update_metrics(metrics, with_outputs, outs, data, order[done:stop])
                total += float(loss_sum)
                per_probe += [float(v) for v in probe_sums]
                if stateful:
                    state = list(final)
                done = stop
                logs = self._fit_logs(probes, per_probe / done, total / done, metrics)
                if cbs.batch_hooks:
                    graph.write_back()
                    cbs("on_train_batch_end", done - 1, logs)
                if model.stop_training:
                    break
            if stateful:
                t0 += done * steps
            epoch_logs = logs
            # callbacks and validation see the parameters (and state) trained so far
            self._sync(stateful, state, t0)
            if validation is not None and self._should_validate(epoch, validation_freq):
                epoch_logs.update(self._validate(validation, steps, cbs))
            cbs("on_epoch_end", epoch, epoch_logs)
            if verbose:
                print(f"epoch {epoch + 1}/{epochs}: " +
                      ", ".join(f"{k}: {v:.6g}" for k, v in epoch_logs.items()))
            if model.stop_training:
                break
        cbs("on_train_end", logs=epoch_logs)
        # after on_train_end: e.g. EarlyStopping(restore_best_weights=True) sets weights
        self._sync(stateful, state, t0)
        return cbs.history

    def _fit_feed(self, x, y, sample_weight, n_steps, class_weight, shuffle, steps_per_epoch,
                  validation_data, validation_split, validation_steps):
        """``(feed, validation)``: fit's epochs of data (`epochs.ArrayFeed`, or
        `epochs.SourceFeed` for a Dataset or generator with ``steps_per_epoch``,
        read an epoch at a time as Keras reads an endless one; without, it is
        read once and each epoch is a pass over it) and the validation data
        (see `_validation`) or None.  ``feed.data``: the first epoch's
        `FitData`."""
        def prepare(x, y, sample_weight):
            x, y = self._as_dict(x, "input"), self._as_dict(y, "target")
            if not y:
                raise ValidationError("fit needs targets (y)", attr="y")
            batch, steps = self._check(x, y, n_steps)
            sample_weight = sample_weights.from_class_weight(class_weight, sample_weight, y,
                                                             "fit")
            return FitData(x, y, self._sample_weights(sample_weight, y, "fit"), batch, steps)

        mb = self.sim.n_trials
        if _is_batch_source(x) and steps_per_epoch is not None:
            _refuse_beside_source("fit", y=y, sample_weight=sample_weight)
            if validation_split:
                raise ValidationError("fit: validation_split needs arrays (as in Keras); "
                                      "give validation_data with a dataset or generator",
                                      attr="validation_split")
            feed = SourceFeed(x, mb, steps_per_epoch,
                              lambda batches: prepare(*self._join_batches(batches, "fit")),
                              FitData.signature)
            data = feed.data
        else:
            if _is_batch_source(x):
                shuffle = False  # Keras ignores it for datasets and generators
            data = prepare(*self._from_batches(x, y, None, "fit", sample_weight))
        if _is_batch_source(validation_data):
            validation_data = self._from_batches(validation_data, None, validation_steps,
                                                 "validation_data")
        train_x, train_y, train_weights, validation = self._validation(
            data.x, data.y, data.weights, data.batch, n_steps, validation_data,
            validation_split)
        if validation is not None and validation_steps is not None:
            validation = self._first_minibatches(validation, validation_steps,
                                                 "validation_steps")
        if not _is_batch_source(x) or steps_per_epoch is None:
            # (whole minibatches: the items _check left out stay out; a split's part)
            batch = min(data.batch, next(iter(train_y.values())).shape[0])
            data = FitData(train_x, train_y, train_weights, batch, data.steps)
            feed = ArrayFeed(data, mb, steps_per_epoch, shuffle,
                             np.random.RandomState(self.sim.seed))
        return feed, validation

    @staticmethod
    def _update_metrics(metrics, with_outputs, outs, data, rows):
        """Updates the compiled metrics with the outputs ``outs`` of the
        minibatches of items ``rows`` (the probes ``with_outputs``)."""
        for j, p in enumerate(with_outputs):
            out = outs[j].numpy()
            for i, items in enumerate(rows):
                target = tf.constant(data.y[p][items].astype(out.dtype))
                w = None if data.weights is None else data.weights[p][items]
                for metric in metrics[p]:
                    metric.update(target, tf.constant(out[i]), w)

    def _validate(self, validation, steps, cbs):
        """The validation logs (``val_<name>``) of one epoch (spiking
        `_evaluate`, ``stateful=False``), with the callbacks' test hooks."""
        val_x, val_y, val_weights, val_batch = validation
        if cbs.test_hooks:
            cbs("on_test_begin")
        val_logs = self._evaluate(val_x, val_y, val_batch, steps, False,
                                  cbs if cbs.test_hooks else None, val_weights)
        if cbs.test_hooks:
            cbs("on_test_end", logs=val_logs)
        return {f"val_{k}": v for k, v in val_logs.items()}

    def _first_minibatches(self, data, steps, name, what="fit"):
        """``(x, y, weights, batch)`` cut to its first ``steps`` minibatches
        (Keras's ``steps``, ``validation_steps``: each run takes the first ones);
        data of fewer minibatches runs whole, with a warning (Keras's input runs
        out)."""
        x, y, weights, batch = data
        mb = self.sim.n_trials
        if steps is None:
            return data
        if steps > batch // mb:
            warn(f"{what}: {name}={steps}, but the data holds {batch // mb} minibatches: "
                 "running those (as Keras, whose input runs out)")
            return data
        items = steps * mb

        def cut(d):
            return None if d is None else {k: v[:items] for k, v in d.items()}

        return cut(x), cut(y), cut(weights), items

    def _sync(self, stateful, state, t0):
        """Writes the trained parameters (and, ``stateful``, the state and step
        count) into the simulator."""
        self.graph.write_back()
        if stateful and state is not None:
            self.graph.write_state([v.numpy() for v in state])
            self.sim._set_step_count(t0)

    def _fit_logs(self, probes, probe_means, loss, metrics):
        logs = self._results({p: float(v) for p, v in zip(probes, probe_means)}, metrics)
        logs["loss"] = float(loss)
        return logs

    @staticmethod
    def _should_validate(epoch, freq):
        """Keras's rule: after the (1-based) epochs divisible by ``freq`` (an int)
        or listed in it."""
        if isinstance(freq, int):
            return (epoch + 1) % freq == 0
        return (epoch + 1) in freq

    def _validation(self, x, y, weights, batch, n_steps, data, split):
        """``(x, y, weights, (val_x, val_y, val_weights, val_batch) or None)``:
        the training data and the checked validation data (``validation_data``
        ``(x, y)`` or ``(x, y, sample_weight)``, or the last ``validation_split``
        of ``x``/``y``/``weights``, as Keras and NengoDL split)."""
        mb = self.sim.n_trials
        if data is not None:
            if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
                raise ValidationError(
                    "validation_data must be a tuple (x, y) or (x, y, sample_weight) of "
                    f"validation inputs and targets (got {type(data).__name__})",
                    attr="validation_data")
            val_x, val_y = self._as_dict(data[0], "input"), self._as_dict(data[1], "target")
            if not val_y:
                raise ValidationError("validation_data needs targets", attr="validation_data")
            val_batch, _ = self._check(val_x, val_y, n_steps)
            val_weights = self._sample_weights(data[2] if len(data) == 3 else None, val_y,
                                               "validation_data")
            return x, y, weights, (val_x, val_y, val_weights, val_batch)
        if not split:
            return x, y, weights, None
        split = float(split)
        if not 0 < split < 1:
            raise ValidationError(f"validation_split must be between 0 and 1 (got {split})",
                                  attr="validation_split")
        at = int(np.floor(batch * (1 - split)))
        if at == 0 or at == batch or at % mb or (batch - at) % mb:
            raise ValidationError(
                f"validation_split={split} splits the {batch} items into {at} and "
                f"{batch - at}; both must be non-zero multiples of the minibatch size "
                f"({mb})", attr="validation_split")
        train_weights, val_weights = sample_weights.split(weights, at)
        train = ({k: v[:at] for k, v in x.items()}, {k: v[:at] for k, v in y.items()})
        val = ({k: v[at:] for k, v in x.items()}, {k: v[at:] for k, v in y.items()},
               val_weights, batch - at)
        return train[0], train[1], train_weights, val

    # Keras arguments NengoDL 3 accepted (passing them to Keras) that nengo_cuda has
    # no use for; everything else unknown is a TypeError, as in Python
    _GENERATOR_ARGS = ("max_queue_size", "workers", "use_multiprocessing")

    def _check_keras_kwargs(self, what, kwargs, batch_size=None, **batch_sizes):
        for name, value in dict(batch_size=batch_size, **batch_sizes).items():
            if value is not None and int(value) != self.sim.n_trials:
                # as NengoDL: the minibatch size is fixed when the simulator is made
                warn(f"{what}: ignoring {name}={value}; the minibatch size is the "
                     f"simulator's minibatch_size ({self.sim.n_trials})")
        for name in [k for k in kwargs if k in self._GENERATOR_ARGS]:
            # (Keras 2's options for reading generators in parallel; Keras 3 has none)
            warn(f"{what}: ignoring {name}={kwargs.pop(name)!r}: data from generators is "
                 "read once, in this thread")
        if kwargs:
            raise TypeError(f"{what}() got unexpected keyword argument(s) "
                            f"{', '.join(map(repr, kwargs))}")

    def _sample_weights(self, sample_weight, y, what):
        """Keras's ``sample_weight`` for targets ``y`` (`sample_weights`), or None."""
        return sample_weights.check_sample_weights(
            sample_weight, y, lambda k: self._lookup(k, None, "target"), what)

    def _make_train_step(self, nodes, probes, steps, stateful, with_outputs):
        graph, opt = self.graph, self.optimizer
        variables = self.trainable_variables
        weights = [float(self.loss_weights.get(p, 1.0)) for p in probes]
        loss_fns = [self._loss_for(p) for p in probes]

        def step(xs, ys, ws, init, t0):
            """``ws``: the sample weights by probe, or ``()`` (none)."""
            with tf.GradientTape() as tape:
                outs, final = graph(dict(zip(nodes, xs)), steps, probes,
                                    init=init, t0=t0, return_state=True)
                outs = {p: self._history(p, o) for p, o in outs.items()}
                losses = [self._reduce(f(outs[p], tf.cast(t, outs[p].dtype)), p,
                                       ws[j] if ws else None)
                          for j, (f, p, t) in enumerate(zip(loss_fns, probes, ys))]
                loss = tf.add_n([w * v for w, v in zip(weights, losses)])
                regularization = self._regularization()
                if regularization is not None:
                    loss = loss + regularization
            grads = tape.gradient(loss, variables)
            grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
            # nothing trainable: the loss only (Keras's optimizers refuse no variables)
            update = opt.apply_gradients(zip(grads, targets)) if targets else None
            deps = [] if update is None else [update]
            with tf.control_dependencies(deps):
                return (tf.identity(loss), [tf.identity(v) for v in losses],
                        [tf.stop_gradient(v) for v in final], [outs[p] for p in with_outputs])

        if _is_v1_optimizer(opt):
            # TF1 optimizers update tf.Variables (a Keras variable's is its .value) and
            # make their slots in init_scope, so they work inside the traced loop
            targets = [_tf_variable(v) for v in variables]
        else:
            targets = variables
            if hasattr(opt, "build"):
                opt.build(variables)  # slot variables now, not inside the traced loop

        f64 = tf.float64

        @tf.function(autograph=False, reduce_retracing=True)
        def train_range(x_full, y_full, w_full, order, start, stop, state0, t0):
            """Minibatches ``start .. stop - 1`` of an epoch (minibatch ``i``: the
            rows ``order[i]``) in one graph call.  ``state0``: the state to start
            from (``()``: the initial state); ``stateful``: minibatch ``i`` starts
            where ``i - 1`` ended, at time step ``t0 + i * steps``.  Returns the
            sums over these minibatches of the loss and of each probe's loss, the
            final state, and the outputs for the metrics."""
            init0 = list(state0) if state0 else None
            out_arrays = [tf.TensorArray(graph.dtype, size=stop - start) for _ in with_outputs]

            def body(i, total, per_probe, state, arrays):
                sel = order[i]
                init = (list(state) if stateful else init0) if init0 is not None else None
                steps_before = t0 + tf.cast(i * steps, f64) if stateful else t0
                loss, losses, final, outs = step(
                    tuple(tf.gather(v, sel) for v in x_full),
                    tuple(tf.gather(v, sel) for v in y_full),
                    tuple(tf.gather(v, sel) for v in w_full), init, steps_before)
                per_probe = [a + tf.cast(v, f64) for a, v in zip(per_probe, losses)]
                state = final if (stateful and init0 is not None) else state
                arrays = [a.write(i - start, o) for a, o in zip(arrays, outs)]
                return i + 1, total + tf.cast(loss, f64), per_probe, state, arrays

            state = list(init0) if init0 is not None else []
            _, total, per_probe, state, arrays = tf.while_loop(
                lambda i, *_: i < stop, body,
                (start, tf.constant(0.0, f64), [tf.constant(0.0, f64) for _ in probes],
                 state, out_arrays))
            return total, per_probe, state, [a.stack() for a in arrays]

        def call(*args):
            # (a trace of train_range would otherwise stay in TensorFlow's registry)
            with forgetting_custom_gradients():
                return train_range(*args)

        call.experimental_get_tracing_count = train_range.experimental_get_tracing_count
        return call

    # -- the training graph's forward pass --------------------------------------------
    def forward(self, x=None, n_steps=None, probes=None):
        """The training graph's outputs (rate neurons) for inputs ``x``.

        Like ``predict``, but through `TrainingGraph` (in one `tf.function`) instead
        of the native simulator: ``{probe: array (batch, n_steps, size)}`` for
        ``probes`` (default: all), every item from the initial state.
        """
        x = self._as_dict(x, "input")
        if x:
            batch, steps = self._check(x, {}, n_steps)
        elif n_steps is None:
            raise ValidationError("forward needs input data or n_steps", attr="n_steps")
        else:
            steps = int(n_steps)
        probes = list(self.sim.model.probes) if probes is None else list(probes)
        nodes = list(x)
        key = ("forward", tuple(nodes), tuple(probes), steps)
        if key not in self._train_fns:
            graph = self.graph

            @tf.function(autograph=False)
            def run(xs):
                outs = graph(dict(zip(nodes, xs)), steps, probes)
                return [outs[p] for p in probes]

            self._train_fns[key] = run
        xs = tuple(tf.constant(np.asarray(x[n], dtype=self.sim.dtype)) for n in nodes)
        with self.graph.host_errors():
            outs = self._train_fns[key](xs)
        return {p: self._history(p, v.numpy()) for p, v in zip(probes, outs)}

    # -- native runs (evaluate / predict) --------------------------------------------
    def _stateful(self, stateful, what):
        """The call's ``stateful``, as NengoDL: True is ignored (with a warning) when
        the network is configured ``stateful=False``."""
        if stateful and not self.sim._stateful:
            warn(f"{what}: ignoring stateful=True, since the network was configured with "
                 "configure_settings(stateful=False)")
            return False
        return bool(stateful)

    def _native_runs(self, x, batch, steps, stateful):
        """Runs the minibatches of ``x`` with the native kernels; yields each one's
        ``{probe: (minibatch, n_samples, size)}``.

        Each minibatch starts from the simulator's state at the call
        (``stateful=False``; the state is restored afterwards) or from the previous
        minibatch's final state (``stateful=True``; the state, ``n_steps`` and
        ``time`` are kept).  ``sim.data`` is left as it was either way.
        """
        if self.setting("learning_phase") is True:
            yield from self._rate_runs(x, batch, steps, stateful)
            return
        sim = self.sim
        mb = sim.n_trials
        start = sim._save_state()
        recordings = sim._save_recordings()
        try:
            for i in range(batch // mb):
                if not stateful and i > 0:
                    sim._restore_state(start)
                before = {p: len(rec.chunks) for p, rec in sim._recordings.items()}
                sim.run_steps(steps, data={k: v[i * mb : (i + 1) * mb] for k, v in x.items()},
                              progress_bar=False)
                out = {}
                for p, rec in sim._recordings.items():
                    new = rec.chunks[before[p]:]
                    value = np.concatenate(new, axis=1) if len(new) != 1 else new[0]
                    out[p] = value.reshape(mb, -1, self._probe_size(p))
                sim._restore_recordings(recordings)
                yield out
        finally:
            sim._restore_recordings(recordings)
            if not stateful:
                sim._restore_state(start)

    def run_training_mode(self, steps, feeds):
        """``sim.run_steps`` in training mode (``learning_phase=True``): ``steps``
        steps of the training graph from the simulator's state, which it then
        keeps (``n_steps``/``time`` advance); ``feeds``: ``{input Node: (n_trials,
        steps, size)}``, other inputs compute their own values.  Returns
        ``{probe: (n_trials, steps, size)}``."""
        (outputs,) = self._rate_runs(feeds, self.sim.n_trials, steps, stateful=True)
        return outputs

    def _rate_runs(self, x, batch, steps, stateful):
        """`_native_runs` in training mode (``configure_settings(learning_phase=
        True)``): each minibatch through the training graph (rate neurons), from
        the simulator's state, which ``stateful`` runs then keep."""
        sim, graph = self.sim, self.graph
        mb = sim.n_trials
        probes = list(sim.model.probes)
        nodes = list(x)
        key = ("rate_run", tuple(nodes), steps)
        if key not in self._train_fns:  # one traced graph (eager steps are ~5 ms each)

            @tf.function(autograph=False)
            def run(xs, init, t0):
                outs, final = graph(dict(zip(nodes, xs)), steps, probes, init=list(init),
                                    t0=t0, return_state=True)
                return [outs[p] for p in probes], final

            self._train_fns[key] = run
        state, t0 = graph.read_state(), sim.n_steps
        for i in range(batch // mb):
            xs = tuple(tf.constant(np.asarray(x[n][i * mb: (i + 1) * mb], dtype=sim.dtype))
                       for n in nodes)
            with graph.host_errors():
                outs, final = self._train_fns[key](
                    xs, tuple(tf.constant(v) for v in state), tf.constant(float(t0), tf.float64))
            if stateful:
                state, t0 = [v.numpy() for v in final], t0 + steps
            yield {p: v.numpy() for p, v in zip(probes, outs)}
        if stateful:
            graph.write_state(state)
            sim._set_step_count(t0)

    def predict(self, x=None, n_steps=None, stateful=False, batch_size=None, verbose=None,
                steps=None, **kwargs):
        """Probe outputs ``{probe: (batch, n_steps, size)}`` (``(batch, 1, size)``
        for keep_history=False probes) of the network as defined (spiking, native
        kernels).

        As NengoDL 3: ``stateful=False`` (default): every minibatch starts from the
        simulator's current state, which is left unchanged; ``stateful=True``: the
        minibatches run one after another from the current state and the final
        state is kept (``n_steps``/``time`` advance by every minibatch's steps).
        ``sim.data`` is not changed.

        Keras arguments: ``batch_size`` as in `fit`; ``verbose`` is accepted
        (nothing is printed); ``steps``: run the first that many minibatches;
        ``callbacks`` get Keras's predict hooks.
        """
        callbacks = kwargs.pop("callbacks", None)
        self._check_keras_kwargs("predict", kwargs, batch_size=batch_size)
        stateful = self._stateful(stateful, "predict")
        n_batches = steps_argument(steps, "steps")
        x, _, _ = self._from_batches(x, None, n_batches, "predict")
        x = self._as_dict(x, "input")
        if not x:
            if n_steps is None:
                raise ValidationError("predict needs input data or n_steps", attr="n_steps")
            batch, steps = self.sim.n_trials, int(n_steps)
        else:
            batch, steps = self._check(x, {}, n_steps)
        x, _, _, batch = self._first_minibatches((x, {}, None, batch), n_batches, "steps",
                                                 "predict")
        cbs = self._callbacks(callbacks, batch)
        results = {p: [] for p in self.sim.model.probes}
        if cbs is not None:
            cbs("on_predict_begin")
        for i, out in enumerate(self._native_runs(x, batch, steps, stateful)):
            if cbs is not None:
                cbs("on_predict_batch_begin", i)
            for p in results:
                results[p].append(self._history(p, out[p]))
            if cbs is not None:
                cbs("on_predict_batch_end", i, {"outputs": {p: v[-1] for p, v in results.items()}})
        if cbs is not None:
            cbs("on_predict_end")
        return {p: np.concatenate(v, axis=0) for p, v in results.items()}

    def _callbacks(self, callbacks, batch):
        """Keras callbacks for predict/evaluate (their predict/test hooks), or None."""
        if not callbacks:
            return None
        return CallbackList(callbacks, self.keras_model,
                            {"epochs": 1, "steps": batch // self.sim.n_trials, "verbose": 0})

    def predict_on_batch(self, x=None, n_steps=None, stateful=False, **kwargs):
        """`predict` for exactly one minibatch (``sim.minibatch_size`` items)."""
        self._check_keras_kwargs("predict_on_batch", kwargs)
        x = self._as_dict(x, "input")
        if x and next(iter(x.values())).shape[0] != self.sim.n_trials:
            raise ValidationError(
                f"predict_on_batch takes exactly one minibatch ({self.sim.n_trials} items)",
                attr="x")
        return self.predict(x, n_steps=n_steps, stateful=stateful)

    def evaluate(self, x=None, y=None, n_steps=None, stateful=False, batch_size=None,
                 verbose=None, sample_weight=None, steps=None, return_dict=True, **kwargs):
        """Losses and metrics of the network as defined (spiking, native kernels).

        Returns ``{"loss": sum of weighted probe losses, "<probe>_loss": ...,
        "<probe>_<metric>": ...}`` (names: `names.io_names`); each value is the
        mean over the minibatches of ``x``/``y``.  ``stateful``: as in `predict`.

        Keras arguments: ``batch_size`` as in `fit`; ``verbose`` is accepted
        (nothing is printed); ``return_dict`` is accepted, the result is always
        the dict (as NengoDL's); ``sample_weight`` as in `fit`; ``steps``: run
        the first that many minibatches; ``callbacks`` get Keras's test hooks.
        """
        callbacks = kwargs.pop("callbacks", None)
        self._check_keras_kwargs("evaluate", kwargs, batch_size=batch_size)
        stateful = self._stateful(stateful, "evaluate")
        if self.losses is None:
            raise SimulationError("call sim.compile(loss=...) before sim.evaluate")
        n_batches = steps_argument(steps, "steps")
        x, y, sample_weight = self._from_batches(x, y, n_batches, "evaluate", sample_weight)
        x, y = self._as_dict(x, "input"), self._as_dict(y, "target")
        batch, steps = self._check(x, y, n_steps)
        weights = self._sample_weights(sample_weight, y, "evaluate")
        x, y, weights, batch = self._first_minibatches((x, y, weights, batch), n_batches,
                                                       "steps", "evaluate")
        cbs = self._callbacks(callbacks, batch)
        if cbs is None:
            return self._evaluate(x, y, batch, steps, stateful, weights=weights)
        cbs("on_test_begin")
        logs = self._evaluate(x, y, batch, steps, stateful, cbs, weights)
        cbs("on_test_end", logs=logs)
        return logs

    def _evaluate(self, x, y, batch, steps, stateful, callbacks=None, weights=None):
        """`evaluate` on checked data; ``callbacks`` (fit's validation): a
        `callbacks.CallbackList` whose test batch hooks are called; ``weights``:
        sample weights by probe (`sample_weights`) or None."""
        metrics = self._metrics_for(list(y))
        for p in metrics:
            if p not in y:
                raise ValidationError(f"metrics are compiled for {p}, but no targets were "
                                      "given for it", attr="y")
        mb = self.sim.n_trials
        per_probe = {p: [] for p in y}
        for i, out in enumerate(self._native_runs(x, batch, steps, stateful)):
            if callbacks is not None:
                callbacks("on_test_batch_begin", i)
            sl = slice(i * mb, (i + 1) * mb)
            for p, target in y.items():
                o = tf.constant(self._history(p, out[p]))
                t = tf.constant(target[sl].astype(o.dtype.as_numpy_dtype))
                w = None if weights is None else weights[p][sl]
                per_probe[p].append(float(self._reduce(self._loss_for(p)(o, t), p, w)))
                for metric in metrics.get(p, ()):
                    metric.update(t, o, w)
            if callbacks is not None:
                callbacks("on_test_batch_end", i, self._evaluate_results(per_probe, metrics))
        return self._evaluate_results(per_probe, metrics)

    def _evaluate_results(self, per_probe, metrics):
        """`_results` of the minibatches' probe losses so far; ``loss`` also counts
        the Keras layers' weight regularization (as Keras's evaluate)."""
        result = self._results({p: float(np.mean(v)) for p, v in per_probe.items()}, metrics)
        regularization = self._regularization()
        if regularization is not None:
            result["loss"] += float(regularization)
        return result

    def _results(self, probe_losses, metrics):
        """``{"loss", "<probe>_loss", "<probe>_<metric>"}`` (evaluate's and fit's names)."""
        names = io_names(self.sim.model.probes, "probe")
        result = {}
        total = 0.0
        for p, mean in probe_losses.items():
            result[f"{names[p]}_loss"] = mean
            total += float(self.loss_weights.get(p, 1.0)) * mean
            for metric in metrics.get(p, ()):
                result[f"{names[p]}_{metric.name}"] = metric.result()
        result["loss"] = total
        return result

    # -- NengoDL 2 style -----------------------------------------------------------------
    def train(self, data, optimizer, objective=None, n_epochs=1, shuffle=True, truncation=None,
              summaries=None, profile=False, extra_feeds=None, progress_bar=True):
        """NengoDL 2's ``sim.train``: ``data`` maps input Nodes and target Probes to
        arrays; ``objective`` {probe: loss} (default: MSE); ``optimizer`` a Keras or
        ``tf.compat.v1.train`` optimizer (see `compile`).  NengoDL 2's
        ``truncation``, ``summaries``, ``profile`` and ``extra_feeds`` are refused
        when set; ``progress_bar`` is accepted (no bar is shown)."""
        _refuse_unsupported("train", truncation=truncation, summaries=summaries,
                            profile=profile, extra_feeds=extra_feeds)
        if optimizer is None:
            raise ValidationError("train needs an optimizer", attr="optimizer")
        inputs, targets = self._split(data)
        objective = objective if objective is not None else {p: mse for p in targets}
        self.compile(optimizer)
        self.losses = self._losses(objective, nengo2_objective)
        targets = self._outputs_only_targets(inputs, targets)
        return self.fit(inputs, targets, epochs=n_epochs, shuffle=shuffle, verbose=0)

    def _outputs_only_targets(self, inputs, targets):
        """``targets`` plus placeholders for the probes whose NengoDL 2 objective
        takes only the outputs (``f(outputs)``: no target data given)."""
        if not isinstance(self.losses, dict):
            return targets
        free = [p for p, f in self.losses.items()
                if p not in targets and not getattr(f, "needs_targets", True)]
        if not free:
            return targets
        given = list(inputs.values()) + list(targets.values())
        if not given:
            raise ValidationError("give input or target data (their shape sets the batch "
                                  "and steps)", attr="data")
        batch, steps = np.shape(given[0])[:2]
        return {**targets, **{p: np.zeros((batch, steps, 1)) for p in free}}

    def loss(self, data, objective=None, combine=None, extra_feeds=None, progress_bar=True,
             training=False):
        """NengoDL 2's ``sim.loss``: the mean of ``objective`` {probe: loss} (default:
        MSE) over ``data``, simulating the network as defined.  ``combine`` (the
        mean is the only combination), ``extra_feeds`` and ``training=True`` are
        refused when set."""
        _refuse_unsupported("loss", combine=combine, extra_feeds=extra_feeds,
                            training=training)
        inputs, targets = self._split(data)
        saved = (self.losses, self.loss_weights, self.metrics, self.weighted_metrics)
        objective = objective if objective is not None else {p: mse for p in targets}
        self.losses = self._losses(objective, nengo2_objective)
        self.loss_weights, self.metrics, self.weighted_metrics = {}, None, None
        try:
            return self.evaluate(inputs, self._outputs_only_targets(inputs, targets))["loss"]
        finally:
            self.losses, self.loss_weights, self.metrics, self.weighted_metrics = saved

    def _split(self, data):
        if not isinstance(data, dict):
            raise ValidationError("data must be a dict {Node or Probe: array}", attr="data")
        inputs, targets = {}, {}
        for k, v in data.items():
            if isinstance(k, nengo.Probe):
                targets[k] = v
            elif isinstance(k, nengo.Node):
                inputs[k] = v
            else:
                raise ValidationError(f"data key {k!r} is neither a Node nor a Probe", attr="data")
        return inputs, targets

    def check_gradients(self, inputs=None, outputs=None, atol=1e-4, rtol=1e-3, n_steps=1):
        """Analytic gradients of the training graph against central differences:
        of the sum of the ``outputs`` (probes; default all) with respect to the
        trainable parameters and to the inputs (as NengoDL checks them; up to 8
        elements of each).

        ``inputs``: a dict {input Node: array}, or a list of arrays for the input
        Nodes in order (NengoDL's form); default random values.  Raises a
        SimulationError at a mismatch or a NaN gradient."""
        self._refuse_inference_only("it has no gradients to check")
        graph = self.graph
        sim = self.sim
        probes = outputs or list(sim.model.probes)
        if isinstance(inputs, (list, tuple)):
            inputs = zip_with_objects(inputs, self._objects("input"), "inputs", "input Nodes")
        if inputs is None:
            rng = np.random.RandomState(0)
            inputs = {n: rng.uniform(-1, 1, (sim.n_trials, n_steps, n.size_out))
                      for n in sim._input_nodes}
        inputs = {k: tf.Variable(np.asarray(v, dtype=sim.dtype)) for k, v in inputs.items()}
        steps = next(iter(inputs.values())).shape[1] if inputs else n_steps

        def f():
            outs = graph(inputs, steps, probes)
            return tf.add_n([tf.reduce_sum(o) for o in outs.values()])

        checked = [(var.name, var) for var in graph.trainable_variables]
        checked += [(f"the input of {node}", var) for node, var in inputs.items()]
        for name, var in checked:
            with tf.GradientTape() as tape, graph.host_errors():
                value = f()
            grad = tape.gradient(value, var)
            grad = np.zeros(var.shape) if grad is None else grad.numpy()
            if not np.all(np.isfinite(grad)):
                raise SimulationError(f"NaNs detected in the gradient for {name}")
            orig = var.numpy()
            eps = 1e-3 if sim.dtype == np.float32 else 1e-6
            for i in np.random.RandomState(1).choice(orig.size, min(8, orig.size), replace=False):
                num = central_difference(f, var, i, eps)
                if not np.isclose(grad.flat[i], num, atol=atol * max(1, abs(num)) * 100, rtol=rtol * 100):
                    raise SimulationError(
                        f"gradient mismatch for {name}[{i}]: analytic {grad.flat[i]:g}, "
                        f"numeric {num:g}")


def central_difference(f, var, index, eps):
    """(f(var + eps e_i) - f(var - eps e_i)) / (2 eps) for element ``index`` of the
    tf.Variable ``var``; restores ``var``."""
    orig = var.numpy().copy()
    d = np.zeros_like(orig)
    d.flat[index] = eps
    var.assign(orig + d)
    hi = float(f())
    var.assign(orig - d)
    lo = float(f())
    var.assign(orig)
    return (hi - lo) / (2 * eps)


def _is_v1_optimizer(opt):
    return isinstance(opt, tf.compat.v1.train.Optimizer)


def _tf_variable(var):
    """The tf.Variable behind ``var`` (itself, or a Keras 3 variable's value)."""
    if isinstance(var, tf.Variable):
        return var
    value = getattr(var, "value", None)
    if isinstance(value, tf.Variable):
        return value
    raise SimulationError(f"a tf.compat.v1.train optimizer cannot update {var!r}; use a "
                          "Keras optimizer")


