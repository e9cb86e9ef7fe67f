"""Training of a `nengo_cuda.Simulator` (NengoDL 3's API): ``compile`` and ``fit``.

`Trainer` backs ``sim.compile/fit`` here and, through its parts,
``evaluate/predict/predict_on_batch`` (`inference.Inference`), NengoDL 2's
``train/loss`` (`nengo2_api.NengoDL2API`), ``check_gradients``
(`gradient_check`) and ``save_params/load_params/freeze_params/
get_nengo_params`` (`parameter_io.ParameterIO`); users' data is checked by
`data.DataChecks`.

``fit`` trains through `nengo_cuda.training.graph.TrainingGraph` (rate
neurons, our TensorFlow ops), then writes the trained values into the
simulator's buffers, so ``sim.run`` simulates the trained network.
``stateful`` (NengoDL 3; default False): False starts every minibatch from the
simulator's current state and leaves that state as it was; True runs the
minibatches one after another from the current state and keeps the final
state (``n_steps`` and ``time`` advance).  ``sim.data`` is never changed.  See
docs/training-state.md.
"""

import reprlib
from typing import NamedTuple

import numpy as np
import tensorflow as tf
from nengo.exceptions import SimulationError, ValidationError

from . import gradient_check, gradient_paths, sample_weights
from .callbacks import CallbackList, FitModel
from .config import get_setting, trainable_objects
from .data import DataChecks, is_batch_source, named_argument, refuse_beside_source
from .epochs import ArrayFeed, SourceFeed, steps_argument
from .graph import TrainingGraph, trainable_parameters, trainable_signals, with_learned
from .inference import Inference, format_logs, verbose_level
from .losses import keras_loss, metrics_by_probe
from .nengo2_api import NengoDL2API
from .parameter_io import ParameterIO
from .tensor_node import is_tensor_node_func, require_eager
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


class Trainer(DataChecks, Inference, NengoDL2API, ParameterIO):
    """A simulator's training state (optimizer, losses, metrics, the training
    graph and its traced functions) and NengoDL's training API over it."""

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
    def _inference_mode(self):
        """NengoDL's ``configure_settings(learning_phase=False)``: inference
        mode always, ``fit`` and ``check_gradients`` too (the graph's spiking
        neurons spike; its TensorNodes' Keras layers get ``training=False``)."""
        return self.setting("learning_phase") is False

    @property
    def graph(self):
        if self._graph is None:
            require_eager()
            trainable = trainable_objects(self.network) if self.network is not None else {}
            self._graph = TrainingGraph(
                self.sim,
                trainable_signals(self.sim, trainable),
                lif_smoothing=self.setting("lif_smoothing"),
                use_loop=bool(self.setting("use_loop", True)),
                spiking=self._inference_mode,
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

    def _warn_one_step(self, what, steps, stateful, probes):
        """NengoDL's warning for a run of one step through synaptic filters (a
        Connection of the network or one of ``probes``): their outputs start at
        their initial state.  Not for stateful runs (earlier runs fill them)."""
        conns = self.network.all_connections if self.network is not None else []
        if steps == 1 and not stateful and any(
                obj.synapse is not None for obj in list(conns) + list(probes)):
            warn(f"{what}: running one step per item, but the network contains synaptic "
                 "filters, whose outputs start at their initial state (at least a "
                 "one-step delay): set synapse=None on the connections, or run more "
                 "steps (NengoDL's advice)")

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
        if self.setting("inference_only", False):
            return 0
        return self.graph.trained_count() + int(
            sum(np.prod(v.shape) for v in self._keras_variables()))

    @property
    def trainable_variables(self):
        """What ``fit`` optimises: the Nengo parameters (see
        `nengo_cuda.training.config`) and the TensorNodes' Keras layer weights;
        none with ``inference_only`` (NengoDL's)."""
        if self.setting("inference_only", False):
            return []
        return self.graph.trainable_variables + self._keras_variables()

    # -- compile / fit --------------------------------------------------------------
    # Keras's compile arguments that only choose how Keras runs its own model
    # (NengoDL passes them on; code sets run_eagerly=True to debug): ignored
    EXECUTION_ARGUMENTS = ("run_eagerly", "steps_per_execution", "jit_compile",
                           "auto_scale_loss")

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None,
                weighted_metrics=None, **execution):
        """Sets the optimizer, losses and metrics for `fit` and `evaluate`.

        ``optimizer``: a Keras optimizer (or its name; Keras's default
        ``"rmsprop"``), or a TF1 optimizer
        (``tf.compat.v1.train.RMSPropOptimizer(0.01)`` etc., as NengoDL 2's
        ``sim.train`` took), which is used as is, with its own update rule.
        ``loss``: one loss for every probe with targets, a dict {probe (or its
        name): loss}, or a list with one loss per probe in the model's order
        (Keras's outputs); ``loss_weights`` likewise (a dict or a list).  As in
        Keras, a probe's loss may be None (none for it), and a probe without a
        loss may have metrics (its targets then serve them only).
        ``metrics`` ignore ``fit``'s and ``evaluate``'s ``sample_weight``,
        ``weighted_metrics`` take it (as in Keras).  Keras's
        `EXECUTION_ARGUMENTS` are taken and ignored (our graph runs as it runs).
        """
        require_eager()
        unknown = sorted(set(execution) - set(self.EXECUTION_ARGUMENTS))
        if unknown:
            raise TypeError(f"compile() got unexpected keyword arguments {unknown} (Keras's "
                            f"{', '.join(self.EXECUTION_ARGUMENTS)} are taken and ignored)")
        if isinstance(optimizer, str):
            optimizer = tf.keras.optimizers.get(optimizer)
        if optimizer is not None and not hasattr(optimizer, "apply_gradients"):
            raise ValidationError(
                f"optimizer must be a Keras optimizer, its name, or a tf.compat.v1.train "
                f"optimizer (got {reprlib.repr(optimizer)})", attr="optimizer")
        self.optimizer = optimizer
        self.losses = self._losses(loss, keras_loss)
        self.loss_weights = {self._lookup(p, "target", "loss_weights"): w
                             for p, w in self._per_probe(loss_weights or {}, "loss_weights").items()}
        self.metrics, self.weighted_metrics = metrics, weighted_metrics
        self._metrics_for(list(self.sim.model.probes))  # validates the metrics
        self._train_fns = {}

    def _metrics_for(self, probes):
        """{probe: [ProbeMetric]} for target ``probes`` (fresh metric states)."""
        return metrics_by_probe(self.metrics, probes,
                                lambda k, arg: self._lookup(k, "target", arg),
                                self.weighted_metrics, list(self.sim.model.probes))

    def _per_probe(self, values, what):
        """``values`` as a dict: a list or tuple gives one value per probe, in
        the model's order (Keras's outputs)."""
        if not isinstance(values, (list, tuple)):
            return values
        probes = list(self.sim.model.probes)
        if len(values) != len(probes):
            raise ValidationError(
                f"a list must have one entry per probe of the model ({len(probes)}, "
                f"in its order), got {len(values)}; or give a dict {{probe: value}}", attr=what)
        return dict(zip(probes, values))

    def _losses(self, loss, convert):
        if loss is None:
            return None
        loss = self._per_probe(loss, "loss")
        if isinstance(loss, dict):  # (None: no loss for that probe, as in Keras)
            return {self._lookup(p, "target", "loss"): convert(f) for p, f in loss.items()
                    if f is not None}
        return convert(loss)  # one loss for every probe with targets

    def _has_loss(self, probe):
        return not isinstance(self.losses, dict) or probe in self.losses

    def _loss_probes(self, probes):
        """Those of ``probes`` (the ones given targets) that have a loss; the
        others' targets serve their metrics, if any, or nothing (as Keras,
        to which NengoDL passes them, skips an output without a loss)."""
        with_loss = [p for p in probes if self._has_loss(p)]
        if probes and not with_loss:
            raise ValidationError("none of the probes given targets has a loss", attr="loss")
        return with_loss

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
        asked = stateful  # (what NengoDL's one-step warning sees)
        stateful, callbacks = self._isolated(stateful, "fit", callbacks, carried=True)
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
        # (after the data's checks, as NengoDL reports a data error first)
        if self.optimizer is None:
            raise SimulationError("call sim.compile(optimizer, loss) before sim.fit")
        if self.losses is None:
            raise SimulationError("call sim.compile with a loss before sim.fit")
        data = feed.data
        probes, steps = list(data.y), data.steps
        loss_probes = self._loss_probes(probes)
        graph = self.graph
        self._warn_one_step("fit", steps, asked, loss_probes)
        if not self.trainable_variables:  # runs (and reports the loss), as NengoDL's
            warn("fit: no parameters are trainable (see configure_settings; TensorNodes' "
                 "Keras layers train too): nothing changes")
        metrics = self._metrics_for(probes)
        with_outputs = tuple(p for p in probes if metrics.get(p))
        # (the variables too: a Keras layer frozen since the last fit must not train)
        key = (tuple(data.x), tuple(probes), steps, stateful, with_outputs,
               tuple(id(v) for v in self.trainable_variables))
        if key not in self._train_fns:
            self._warn_unreached(probes)
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
        state = [tf.constant(v) for v in graph.read_state()] if self.sim.stateful else None
        t0 = self.sim._step_counter() if self.sim.stateful else 0
        # what online learning rules learn carries on from minibatch to minibatch,
        # stateful or not (NengoDL's parameters): the last final state holds it
        masks = graph.learned_masks()
        if masks is not None and state is None:
            state = with_learned(masks, graph.read_state(), graph.initial_state())
        carried = state

        model = self.keras_model
        verbose = verbose_level(verbose)
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
            total, per_probe, done = 0.0, np.zeros(len(loss_probes)), 0
            while done < n_batches:
                # one graph call for the whole epoch, or one per minibatch when a
                # callback has batch hooks (or has asked to stop: Keras stops after
                # the next minibatch)
                stop = done + 1 if (cbs.batch_hooks or model.stop_training) else n_batches
                if cbs.batch_hooks:
                    cbs("on_train_batch_begin", done)
                start = state
                if masks is not None and not stateful:
                    start = with_learned(masks, carried, state)
                with self.graph.host_errors():
                    loss_sum, probe_sums, final, outs = train_range(
                        *uploaded, order_t, tf.constant(done), tf.constant(stop),
                        tuple(start) if start is not None else (),
                        tf.constant(float(t0), tf.float64))
                self._update_metrics(metrics, with_outputs, outs, data, order[done:stop])
                total += float(loss_sum)
                per_probe += [float(v) for v in probe_sums]
                if stateful:
                    state = list(final)
                if masks is not None:
                    carried = list(final)
                done = stop
                logs = self._fit_logs(loss_probes, per_probe / done, total / done, metrics)
                if cbs.batch_hooks:
                    graph.write_back()
                    cbs("on_train_batch_end", done - 1, logs)
                if model.stop_training:
                    break
            if stateful:
                t0 += done * steps
            epoch_logs = logs
            # callbacks and validation see the parameters (and state) trained so far
            self._sync(stateful, state, t0, masks, carried)
            if validation is not None and self._should_validate(epoch, validation_freq):
                epoch_logs.update(self._validate(validation, cbs))
            cbs("on_epoch_end", epoch, epoch_logs)
            if verbose:
                print(f"epoch {epoch + 1}/{epochs}: " + format_logs(epoch_logs))
            if model.stop_training:
                break
        opt = self.optimizer
        if epochs > 0 and hasattr(opt, "finalize_variable_values") and \
                not _is_v1_optimizer(opt):
            # (as Keras's fit: use_ema=True writes the averages into the weights)
            opt.finalize_variable_values(self.trainable_variables)
        cbs("on_train_end", logs=epoch_logs)
        # after on_train_end: e.g. EarlyStopping(restore_best_weights=True) sets weights
        self._sync(stateful, state, t0, masks, carried)
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
        if is_batch_source(x) and validation_split:  # (Keras refuses it too)
            raise ValidationError("fit: `validation_split` is only supported for tensors or "
                                  "NumPy arrays (Keras's words); give validation_data with a "
                                  "dataset or generator",
                                  attr="validation_split")
        if is_batch_source(x) and steps_per_epoch is not None:
            refuse_beside_source("fit", y=y, sample_weight=sample_weight)
            feed = SourceFeed(x, mb, steps_per_epoch,
                              lambda batches: prepare(*self._join_batches(batches, "fit")),
                              FitData.signature)
            data = feed.data
        else:
            if is_batch_source(x):
                shuffle = False  # Keras ignores it for datasets and generators
            data = prepare(*self._from_batches(x, y, None, "fit", sample_weight))
        val_n_steps = n_steps
        if is_batch_source(validation_data):
            validation_data = self._from_batches(validation_data, None, validation_steps,
                                                 "validation_data")
            val_n_steps = None  # (NengoDL passes a Dataset's on to Keras unchecked)
        train_x, train_y, train_weights, validation = self._validation(
            data.x, data.y, data.weights, data.batch, val_n_steps, data.steps,
            validation_data, validation_split)
        if validation is not None and validation_steps is not None:
            *items, val_steps = validation
            validation = (*self._first_minibatches(tuple(items), validation_steps,
                                                   "validation_steps"), val_steps)
        if not is_batch_source(x) or steps_per_epoch is None:
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

    def _validate(self, validation, cbs):
        """The validation logs (``val_<name>``) of one epoch (spiking
        `_evaluate`, ``stateful=False``), with the callbacks' test hooks."""
        val_x, val_y, val_weights, val_batch, val_steps = validation
        if cbs.test_hooks:
            cbs("on_test_begin")
        val_logs = self._evaluate(val_x, val_y, val_batch, val_steps, False,
                                  cbs if cbs.test_hooks else None, val_weights)
        if cbs.test_hooks:
            cbs("on_test_end", logs=val_logs)
        return {f"val_{k}": v for k, v in val_logs.items()}

    def _sync(self, stateful, state, t0, masks=None, carried=None):
        """Writes the trained parameters (and, ``stateful``, the state and step
        count; else what online learning rules learned: ``masks`` of the
        state's learned elements, ``carried`` the last final state) into the
        simulator."""
        self.graph.write_back()
        if stateful and state is not None:
            self.graph.write_state([v.numpy() for v in state])
            self.sim._set_step_count(t0)
        elif masks is not None:
            self.graph.write_learned(masks, [v.numpy() for v in carried])

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

    def _validation(self, x, y, weights, batch, n_steps, steps, data, split):
        """``(x, y, weights, (val_x, val_y, val_weights, val_batch, val_steps)
        or None)``: the training data (``steps`` steps; ``n_steps``: fit's
        argument, None for validation data from a Dataset or generator) and
        the checked validation data (``validation_data``
        ``(x, y)`` or ``(x, y, sample_weight)``, or the last ``validation_split``
        of ``x``/``y``/``weights``, as Keras and NengoDL split).

        Validation inputs may have another number of steps than the training
        data (NengoDL checks them on their own) unless ``n_steps`` is given;
        without inputs, the validation runs ``n_steps`` steps, or the
        training data's."""
        mb = self.sim.n_trials
        if data is not None:
            if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
                raise ValidationError(
                    "must be a tuple (x, y) or (x, y, sample_weight) of "
                    f"validation inputs and targets (got {type(data).__name__})",
                    attr="validation_data")
            with named_argument("validation_data"):
                val_x = self._as_dict(data[0], "input")
                val_y = self._as_dict(data[1], "target")
                if not val_y:
                    raise ValidationError("needs targets", attr="y")
                # (fit's n_steps, where given; else the validation inputs' own)
                val_batch, val_steps = self._check(
                    val_x, val_y, n_steps if n_steps is not None or val_x else steps)
                val_weights = self._sample_weights(data[2] if len(data) == 3 else None,
                                                   val_y, "validation_data")
            return x, y, weights, (val_x, val_y, val_weights, val_batch, val_steps)
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
                f"{batch - at}: split data is not evenly divisible by the minibatch size "
                f"({mb}); both parts must be non-zero multiples of the minibatch size",
                attr="validation_split")
        train_weights, val_weights = sample_weights.split(weights, at)
        train = ({k: v[:at] for k, v in x.items()}, {k: v[:at] for k, v in y.items()})
        val = ({k: v[at:] for k, v in x.items()}, {k: v[at:] for k, v in y.items()},
               val_weights, batch - at, steps)
        return train[0], train[1], train_weights, val

    def _warn_unreached(self, probes):
        """Warns about the trainable parameters that no gradient of the loss
        on ``probes`` reaches (`gradient_paths`)."""
        if self.network is None:
            return
        nodes = {id(node.output): node for node in self.network.all_nodes}
        tensor_nodes = {id(fn): nodes.get(id(fn), fn) for fn in self._tensor_funcs()
                        if fn.trainable_variables()}
        message = gradient_paths.blocked_message(
            self.graph, trainable_parameters(self.sim, trainable_objects(self.network)),
            tensor_nodes, probes)
        if message is not None:
            warn(f"fit: {message}")

    def _make_train_step(self, nodes, probes, steps, stateful, with_outputs):
        graph, opt = self.graph, self.optimizer
        variables = self.trainable_variables
        learned = graph.learned_masks()  # (carried from minibatch to minibatch)
        # (ys, ws: all target probes'; losses: those of the probes with a loss)
        with_loss = [j for j, p in enumerate(probes) if self._has_loss(p)]
        weights = [float(self.loss_weights.get(probes[j], 1.0)) for j in with_loss]
        loss_fns = [self._loss_for(probes[j]) for j in with_loss]

        def step(xs, ys, ws, init, t0):
            """``ws``: the sample weights by probe, or ``()`` (none)."""
            with tf.GradientTape() as tape:
                outs, final = graph(dict(zip(nodes, xs)), steps, probes,
                                    init=init, t0=t0, return_state=True)
                outs = {p: self._history(p, o) for p, o in outs.items()}
                losses = [self._reduce(f(outs[probes[j]], tf.cast(ys[j], outs[probes[j]].dtype)),
                                       probes[j], ws[j] if ws else None)
                          for f, j in zip(loss_fns, with_loss)]
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
            where ``i - 1`` ended, at time step ``t0 + i * steps``; else from
            ``state0`` with what online learning rules learned in ``i - 1``.
            Returns the sums over these minibatches of the loss and of each
            probe's loss, the final state, and the outputs for the metrics."""
            init0 = list(state0) if state0 else None
            out_arrays = [tf.TensorArray(graph.dtype, size=stop - start) for _ in with_outputs]

            def body(i, total, per_probe, state, arrays):
                sel = order[i]
                if init0 is None:
                    init = None
                elif stateful:
                    init = list(state)
                elif learned is not None:  # the state's start, with what was learned
                    init = with_learned(learned, state, init0)
                else:
                    init = init0
                steps_before = t0 + tf.cast(i * steps, f64) if stateful else t0
                loss, losses, final, outs = step(
                    tuple(tf.gather(v, sel) for v in x_full),
                    tuple(tf.gather(v, sel) for v in y_full),
                    tuple(tf.gather(v, sel) for v in w_full), init, steps_before)
                per_probe = [a + tf.cast(v, f64) for a, v in zip(per_probe, losses)]
                carry = stateful or learned is not None
                state = final if (carry and init0 is not None) else state
                arrays = [a.write(i - start, o) for a, o in zip(arrays, outs)]
                return i + 1, total + tf.cast(loss, f64), per_probe, state, arrays

            state = list(init0) if init0 is not None else []
            _, total, per_probe, state, arrays = tf.while_loop(
                lambda i, *_: i < stop, body,
                (start, tf.constant(0.0, f64), [tf.constant(0.0, f64) for _ in with_loss],
                 state, out_arrays))
            return total, per_probe, state, [a.stack() for a in arrays]

        def call(*args):
            # (a trace of train_range would otherwise stay in TensorFlow's registry)
            with forgetting_custom_gradients():
                return train_range(*args)

        call.experimental_get_tracing_count = train_range.experimental_get_tracing_count
        return call

    def check_gradients(self, inputs=None, outputs=None, atol=1e-5, rtol=1e-3, n_steps=None):
        """NengoDL's ``sim.check_gradients`` (`gradient_check.check_gradients`)."""
        return gradient_check.check_gradients(self, inputs, outputs, atol, rtol, n_steps)


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


