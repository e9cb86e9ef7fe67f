"""Simulating trained networks: ``predict``, ``evaluate`` and the training graph's
forward pass.

- ``predict``/``evaluate`` run the network as defined (spiking) with the native
  kernels, one minibatch at a time (`Inference._native_runs`); with
  ``configure_settings(learning_phase=True)`` through the training graph
  instead (rate neurons, `Inference._rate_runs`), as ``sim.run`` does then.
- ``stateful`` (NengoDL 3; default False): False starts every minibatch from
  the simulator's current state and leaves that state as it was; True runs the
  minibatches one after another from the current state and keeps the final
  state (``n_steps`` and ``time`` advance).  ``sim.data`` is never changed.
- ``forward``: the training graph's outputs, as ``fit`` sees them.
"""

import time

import numpy as np
import tensorflow as tf
from nengo.exceptions import SimulationError, ValidationError

from .callbacks import CallbackList, IsolateState, isolates_state
from .epochs import steps_argument
from .graph import with_learned
from .losses import io_names
from ..errors import steps_count
from ..user_warnings import warn


def verbose_level(verbose):
    """Keras's ``verbose`` resolved as Keras resolves ``"auto"`` (to 1)."""
    return 1 if verbose == "auto" else verbose


def format_logs(logs):
    """``{name: value}`` as one line, ``"loss: 0.0123, probe_loss: 0.0123"``."""
    return ", ".join(f"{name}: {value:.6g}" for name, value in logs.items())


class Inference:
    """`Trainer`'s runs of the network for ``predict``, ``evaluate`` and
    ``forward``.  The trainer provides ``sim``, ``graph``, ``losses``,
    ``loss_weights``, ``keras_model``, ``_train_fns`` (traced functions by key),
    the data checks (`data.DataChecks`) and the losses (``_loss_for``,
    ``_reduce``, ``_metrics_for``, ``_regularization``)."""

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
            steps = steps_count(n_steps, "n_steps")
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

    def _isolated(self, stateful, what, callbacks, carried):
        """``(stateful, callbacks)`` of a call given ``callbacks``: its `_stateful`,
        except with an `IsolateState` where the training graph carries the
        state from batch to batch (``carried``: fit, ``learning_phase=True``).
        Such a callback resets the simulation after each batch, which a native
        run starts from; the graph's batches cannot, so the call is made not
        stateful (its batches start from the call's start state: the callback's,
        when it is made right before the call).  A call not asked to be
        stateful gets NengoDL's own IsolateState of its start state after the
        user's, so it ends where it started, as NengoDL's does."""
        stateful = self._stateful(stateful, what)
        if not (carried and isolates_state(callbacks)):
            return stateful, callbacks
        if not stateful:
            callbacks = list(callbacks) + [IsolateState(self.sim)]
        return False, callbacks

    def _stateful(self, stateful, what):
        """The call's ``stateful``, as NengoDL: True is ignored (with a warning) when
        the network is configured ``stateful=False``."""
        if stateful and not self.sim.stateful:
            warn(f"{what}: Ignoring stateful=True, since the network was configured with "
                 "configure_settings(stateful=False)")
            return False
        return bool(stateful)

    def _carried(self):
        """Whether predict/evaluate's batches run in the training graph
        (``learning_phase=True``), which carries the state from one to the next."""
        return self.setting("learning_phase") is True

    def _native_runs(self, x, batch, steps, stateful):
        """Runs the minibatches of ``x`` with the native kernels; yields each one's
        ``{probe: (minibatch, n_samples, size)}``.

        Each minibatch starts from the simulator's state at the call
        (``stateful=False``; the state is restored afterwards) or from the previous
        minibatch's final state (``stateful=True``; the state, ``n_steps`` and
        ``time`` are kept).  ``sim.data``'s probe data is left as it was either
        way; what online learning rules learn carries on from minibatch to
        minibatch and stays (NengoDL's parameters: `_restore_state` keeps it).
        """
        if self.setting("learning_phase") is True:
            yield from self._rate_runs(x, batch, steps, stateful)
            return
        sim = self.sim
        mb = sim.n_trials
        start = sim._save_state()
        sim._show_saved_recordings()  # (sim.data as it was, meanwhile)
        try:
            for i in range(batch // mb):
                if not stateful and i > 0:
                    sim._restore_state(start)
                before = {p: rec.n_samples for p, rec in sim._recordings.items()}
                with sim._every_step_probes():  # (NengoDL's outputs: every step)
                    sim.run_steps(steps, data={k: v[i * mb : (i + 1) * mb] for k, v in x.items()},
                                  progress_bar=False)
                out = {}
                for p, rec in sim._recordings.items():
                    out[p] = rec.values_since(before[p]).reshape(mb, -1, self._probe_size(p))
                    rec.truncate(before[p])
                yield out
        finally:
            sim._restore_shown_recordings()
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
        state, t0 = graph.read_state(), sim._step_counter()  # (Nengo's step signal)
        # what online learning rules learn carries on (as in `_native_runs`)
        masks = graph.learned_masks()
        carried = state
        for i in range(batch // mb):
            xs = tuple(tf.constant(np.asarray(x[n][i * mb: (i + 1) * mb], dtype=sim.dtype))
                       for n in nodes)
            start = state
            if masks is not None and not stateful:
                start = with_learned(masks, carried, state)
            with graph.host_errors():
                outs, final = self._train_fns[key](
                    xs, tuple(tf.constant(v) for v in start), tf.constant(float(t0), tf.float64))
            if stateful:
                state, t0 = [v.numpy() for v in final], t0 + steps
            if masks is not None:
                carried = [v.numpy() for v in final]
            yield {p: v.numpy() for p, v in zip(probes, outs)}
        if stateful:
            graph.write_state(state)
            sim._set_step_count(t0)
        elif masks is not None:
            graph.write_learned(masks, carried)

    def predict(self, x=None, n_steps=None, stateful=False, batch_size=None, verbose="auto",
                steps=None, **kwargs):
        """Probe outputs ``{probe: (batch, n_steps, size)}`` (``(batch, 1, size)``
        for keep_history=False probes) of the network as defined (spiking, native
        kernels).

        As NengoDL 3: ``stateful=False`` (default): every minibatch starts from the
        simulator's current state, which is left unchanged; ``stateful=True``: the
        minibatches run one after another from the current state and the final
        state is kept (``n_steps``/``time`` advance by every minibatch's steps).
        ``sim.data``'s probe data is not changed; online learning rules learn
        through the minibatches, one after the other, and keep what they learned
        (as in NengoDL).

        Keras arguments: ``batch_size`` as in `fit`; ``verbose``: 0 prints
        nothing, otherwise (Keras's default ``"auto"``) one line when done
        (minibatches, seconds); ``steps``: run the first that many minibatches;
        ``callbacks`` get Keras's predict hooks.
        """
        callbacks = kwargs.pop("callbacks", None)
        # (NengoDL's one-step warning sees the stateful asked for; predict_on_batch's
        # is the simulator's setting)
        asked = kwargs.pop("_asked_stateful", stateful)
        self._check_keras_kwargs("predict", kwargs, batch_size=batch_size)
        stateful, callbacks = self._isolated(stateful, "predict", callbacks, self._carried())
        n_batches = steps_argument(steps, "steps")
        x, _, _ = self._from_batches(x, None, n_batches, "predict")
        x = self._as_dict(x, "input")
        if not x:
            if n_steps is None:
                raise ValidationError("predict needs input data or n_steps", attr="n_steps")
            batch, steps = self.sim.n_trials, steps_count(n_steps, "n_steps")
        else:
            batch, steps = self._check(x, {}, n_steps)
        x, _, _, batch = self._first_minibatches((x, {}, None, batch), n_batches, "steps",
                                                 "predict")
        self._warn_one_step("predict", steps, asked,  # (NengoDL's: those with a loss)
                            [p for p in self.sim.model.probes if self._has_loss(p)])
        cbs = self._callbacks(callbacks, batch)
        began = time.perf_counter()
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
        if verbose_level(verbose):
            print(f"predict: {batch // self.sim.n_trials} minibatches of {self.sim.n_trials} x "
                  f"{steps} steps, {time.perf_counter() - began:.3g} s")
        # (the simulator's dtype also where no step ran, or a sparse probe's dense values)
        return {p: np.concatenate(v, axis=0).astype(self.sim.dtype, copy=False)
                for p, v in results.items()}

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
        # (follows configure_settings(stateful=False) without a warning, as NengoDL)
        return self.predict(x, n_steps=n_steps, stateful=stateful and self.sim.stateful,
                            verbose=0, _asked_stateful=self.sim.stateful)

    def evaluate(self, x=None, y=None, n_steps=None, stateful=False, batch_size=None,
                 verbose="auto", sample_weight=None, steps=None, return_dict=True, **kwargs):
        """Losses and metrics of the network as defined (spiking, native kernels).

        Returns ``{"loss": sum of weighted probe losses, "<probe>_loss": ...,
        "<probe>_<metric>": ...}`` (names: `names.io_names`); each value is the
        mean over the minibatches of ``x``/``y``.  ``stateful``: as in `predict`.

        Keras arguments: ``batch_size`` as in `fit`; ``verbose``: 0 prints
        nothing, otherwise (Keras's default ``"auto"``) the results in one
        line; ``return_dict`` is accepted, the result is always
        the dict (as NengoDL's); ``sample_weight`` as in `fit`; ``steps``: run
        the first that many minibatches; ``callbacks`` get Keras's test hooks.
        """
        callbacks = kwargs.pop("callbacks", None)
        self._check_keras_kwargs("evaluate", kwargs, batch_size=batch_size)
        asked = stateful
        stateful, callbacks = self._isolated(stateful, "evaluate", callbacks, self._carried())
        if self.losses is None:
            raise SimulationError("call sim.compile(loss=...) before sim.evaluate")
        n_batches = steps_argument(steps, "steps")
        x, y, sample_weight = self._from_batches(x, y, n_batches, "evaluate", sample_weight)
        x, y = self._as_dict(x, "input"), self._as_dict(y, "target")
        batch, steps = self._check(x, y, n_steps)
        weights = self._sample_weights(sample_weight, y, "evaluate")
        x, y, weights, batch = self._first_minibatches((x, y, weights, batch), n_batches,
                                                       "steps", "evaluate")
        self._warn_one_step("evaluate", steps, asked, [p for p in y if self._has_loss(p)])
        cbs = self._callbacks(callbacks, batch)
        if cbs is not None:
            cbs("on_test_begin")
        logs = self._evaluate(x, y, batch, steps, stateful, cbs, weights)
        if cbs is not None:
            cbs("on_test_end", logs=logs)
        if verbose_level(verbose):
            print("evaluate: " + format_logs(logs))
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
        per_probe = {p: [] for p in self._loss_probes(list(y))}
        for i, out in enumerate(self._native_runs(x, batch, steps, stateful)):
            if callbacks is not None:
                callbacks("on_test_batch_begin", i)
            sl = slice(i * mb, (i + 1) * mb)
            for p, target in y.items():
                o = tf.constant(self._history(p, out[p]))
                t = tf.constant(target[sl].astype(o.dtype.as_numpy_dtype))
                w = None if weights is None else weights[p][sl]
                if p in per_probe:
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
        for p, of_p in metrics.items():  # probes with metrics but no loss
            if p not in probe_losses:
                for metric in of_p:
                    result[f"{names[p]}_{metric.name}"] = metric.result()
        result["loss"] = total
        return result
