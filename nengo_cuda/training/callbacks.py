"""Keras callbacks in ``sim.fit`` (see docs/training-state.md, "Callbacks").

`FitModel` is ``sim.keras_model`` and what callbacks see as ``self.model``: a
stand-in for the Keras model NengoDL would train, with the parts of the Keras
model API that callbacks and users use to steer and inspect training
(``stop_training``, ``optimizer``, ``get_weights``/``set_weights``,
``trainable_weights``, ``history``, ``summary``).  `CallbackList` calls the
callbacks' hooks in Keras 3's order.
"""

import os

import numpy as np
import tensorflow as tf
from nengo.exceptions import SimulationError, ValidationError

from .summaries import TensorBoardLogs


class IsolateState(tf.keras.callbacks.Callback):
    """NengoDL's: isolates the simulation's state from the calls it is given
    to.  After each minibatch of ``fit``, ``predict`` or ``evaluate`` the
    simulation returns to the state it had when this callback was made (so
    after the call too), and the next minibatch starts from there; what online
    learning rules learned stays, as with ``stateful=False`` (NengoDL's
    ``stateful=False`` is this callback).  Where the training graph carries
    the state between minibatches (``fit``; ``predict``/``evaluate`` under
    ``learning_phase=True``) the call runs as ``stateful=False`` instead:
    every minibatch starts from the call's start state, which is the
    callback's when it is made right before the call.  As in NengoDL, a call
    not asked to be stateful ends in the state it started in whatever the
    callback saved (NengoDL adds an IsolateState of its own after the user's)."""

    def __init__(self, sim):
        super().__init__()
        self.sim = sim
        sim._pull_assigned()  # (a user's writes into sim.signals count)
        self.saved_state = sim._save_state()

    def reset(self):
        """Returns the simulation to the saved state."""
        self.sim._restore_state(self.saved_state)

    def on_train_batch_end(self, batch, logs=None):
        self.reset()

    def on_predict_batch_end(self, batch, logs=None):
        self.reset()

    def on_test_batch_end(self, batch, logs=None):
        self.reset()


def isolates_state(callbacks):
    """Whether ``callbacks`` hold an `IsolateState` (see `Inference._isolated`)."""
    return any(isinstance(cb, IsolateState) for cb in callbacks or ())


def unsupported(callback):
    """Why ``callback`` cannot run in ``sim.fit`` (it needs a real Keras model:
    saving one, or its training state), or None."""
    names = {c.__name__ for c in type(callback).__mro__}
    if "ModelCheckpoint" in names and not getattr(callback, "save_weights_only", False):
        return ("it saves a Keras model; give it save_weights_only=True (the weights, "
                "which sim.keras_model.load_weights reads), or save the parameters from a "
                "LambdaCallback with sim.save_params(path)")
    if "BackupAndRestore" in names:
        return "it saves and restores a Keras model's training state"
    return None


BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")
TEST_HOOKS = ("on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end")


class FitModel:
    """``sim.keras_model``, and ``callback.model`` in ``fit``/``evaluate``/``predict``.

    ``stop_training``: set True to stop after the current minibatch (as Keras);
    ``optimizer``: the compiled optimizer; ``trainable_weights``: what ``fit``
    optimises (the trainable Nengo parameters and the TensorNodes' Keras layer
    variables); ``weights``: those and the Keras layers' other variables;
    ``non_trainable_weights``: the others (all, with ``inference_only``);
    ``get_weights``/``set_weights``: ``weights`` as arrays (what
    ``EarlyStopping(restore_best_weights=True)`` uses; set weights run in the
    simulator too, as do values assigned to ``weights``' variables); ``save_weights``/``load_weights``: them in a file (what
    ``ModelCheckpoint(save_weights_only=True)`` saves); ``count_params``,
    ``summary``; ``input_names``/``output_names`` (NengoDL's); ``history``:
    the last ``fit``'s History; ``simulator``: the
    `nengo_cuda.Simulator`.  Anything else raises an AttributeError that says so
    (nengo_cuda trains its own graph, not a Keras model).
    """

    def __init__(self, trainer):
        self._trainer = trainer
        self.simulator = trainer.sim
        self.stop_training = False
        self.history = None

    @property
    def optimizer(self):
        return self._trainer.optimizer

    @property
    def input_names(self):
        """NengoDL's Keras model's input names: the input Nodes' (`get_name`, in
        the order data lists take them), then its ``"n_steps"`` input."""
        sim = self.simulator
        return [sim.get_name(node) for node in sim._input_nodes] + ["n_steps"]

    @property
    def output_names(self):
        """NengoDL's Keras model's output names: the Probes' (`get_name`), then
        its ``"steps_run"`` output."""
        sim = self.simulator
        return [sim.get_name(probe) for probe in sim.model.probes] + ["steps_run"]

    @property
    def trainable_variables(self):
        self._trainer.graph.handed_out()  # (the user may assign them)
        return list(self._trainer.trainable_variables)

    trainable_weights = trainable_variables

    @property
    def non_trainable_variables(self):
        """``weights`` that ``fit`` leaves (e.g. a Keras layer's moving statistics)."""
        trainable = {id(v) for v in self.trainable_variables}
        return [v for v in self.weights if id(v) not in trainable]

    non_trainable_weights = non_trainable_variables

    def _weight_variables(self):
        return (list(self._trainer.graph.trainable_variables)
                + self._trainer._keras_variables(trainable=False))

    @property
    def weights(self):
        self._trainer.graph.handed_out()  # (the user may assign them)
        return self._weight_variables()

    variables = weights

    def count_params(self):
        """How many numbers ``weights`` holds."""
        return int(sum(np.prod(v.shape) for v in self._weight_variables()))

    def summary(self, print_fn=None):
        """Print the weights as a table (name, shape, count, trainable) and the totals."""
        print_fn = print if print_fn is None else print_fn
        trainable = {id(v) for v in self._trainer.trainable_variables}
        rows = [(v.name, str(tuple(v.shape)), str(int(np.prod(v.shape))),
                 "yes" if id(v) in trainable else "no") for v in self._weight_variables()]
        header = ("weight", "shape", "count", "trainable")
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
        lines = [f"nengo_cuda model of {self.simulator.model.label or 'the network'}",
                 "  ".join(h.ljust(w) for h, w in zip(header, widths))]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
        # (a variable over signals Nengo's optimizer merged trains only some of them)
        total, n_trainable = self.count_params(), self._trainer.trained_count()
        lines += [f"Total params: {total}", f"Trainable params: {n_trainable}",
                  f"Non-trainable params: {total - n_trainable}"]
        print_fn("\n".join(lines))

    def get_weights(self):
        return [np.array(v.numpy()) for v in self._weight_variables()]

    def set_weights(self, weights):
        variables = self._weight_variables()
        weights = list(weights)
        if len(weights) != len(variables) or any(
                np.shape(w) != tuple(v.shape) for w, v in zip(weights, variables)):
            raise ValidationError(
                f"set_weights got {len(weights)} arrays of shapes "
                f"{[np.shape(w) for w in weights]}; the model's weights have shapes "
                f"{[tuple(v.shape) for v in variables]}", attr="weights")
        for var, value in zip(variables, weights):
            var.assign(np.asarray(value, dtype=var.dtype.as_numpy_dtype
                                  if hasattr(var.dtype, "as_numpy_dtype") else var.dtype))
        # the simulator runs the new values too (as NengoDL's, whose simulation
        # reads the Keras model's variables)
        self._trainer.graph.write_back()

    def save(self, *args, **kwargs):
        raise SimulationError("sim.fit's callbacks cannot save a Keras model (there is "
                              "none); use save_weights, or sim.save_params(path)")

    def save_weights(self, filepath, overwrite=True, **kwargs):
        """Saves the weights to ``filepath`` (as named, e.g. ModelCheckpoint's
        ``.weights.h5``; `save_params`'s format, a NumPy archive: for
        `load_weights` or ``sim.load_params`` of any build of the network, not
        for Keras)."""
        if not overwrite and os.path.exists(filepath):
            raise SimulationError(f"save_weights: {filepath} exists (overwrite=False)")
        self._trainer.write_params(filepath)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        """Loads what `save_weights` saved (into the simulation too), or
        ``sim.save_params(filepath)`` (``filepath.npz``); ``skip_mismatch``:
        only what fits this network, warning about the rest (as Keras skips
        layers whose weights differ)."""
        if not os.path.exists(filepath) and os.path.exists(f"{filepath}.npz"):
            filepath = f"{filepath}.npz"
        self._trainer.read_params(filepath, skip_mismatch=skip_mismatch)

    def __call__(self, *args, **kwargs):
        raise TypeError(
            "nengo_cuda trains its own graph, not a Keras model: sim.keras_model (and a "
            "callback's model) is a stand-in that cannot be called on inputs; use "
            "sim.predict or sim.predict_on_batch for outputs, sim.fit to train")

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"nengo_cuda trains its own graph, not a Keras model: sim.keras_model (and a "
            f"callback's model) is a stand-in that has no {name!r} (it has stop_training, "
            "optimizer, trainable_weights, non_trainable_weights, weights, get_weights, "
            "set_weights, save_weights, "
            "load_weights, count_params, summary, history, simulator)")


def _overrides(callback, names):
    """True when ``callback`` implements one of the hooks ``names`` (not Keras's
    no-op defaults)."""
    base = tf.keras.callbacks.Callback
    for name in names:
        method = getattr(callback, name, None)
        if method is None:
            continue
        if getattr(method, "__func__", method) is not getattr(base, name, None):
            return True
    return False


class CallbackList:
    """The user's callbacks plus the returned History, called as Keras 3's
    ``fit`` calls them (the same logs dict goes to every callback in turn)."""

    def __init__(self, callbacks, model, params, fit=False):
        if isinstance(callbacks, tf.keras.callbacks.CallbackList):
            callbacks = callbacks.callbacks
        # Keras's TensorBoard reads a Keras model's layers: the same logs from ours
        callbacks = [TensorBoardLogs.like(cb) if isinstance(cb, tf.keras.callbacks.TensorBoard)
                     else cb for cb in (callbacks or [])]
        for cb in callbacks:
            why = unsupported(cb)
            if why is not None:
                raise ValidationError(
                    f"sim.fit does not support the {type(cb).__name__} callback: {why}",
                    attr="callbacks")
            if not hasattr(cb, "on_epoch_end"):
                raise ValidationError(f"{cb!r} is not a Keras callback", attr="callbacks")
        self.history = next(
            (cb for cb in callbacks if isinstance(cb, tf.keras.callbacks.History)), None)
        if self.history is None:
            self.history = tf.keras.callbacks.History()
            callbacks.append(self.history)
        self.callbacks = callbacks
        self.model = model
        if fit:  # (as Keras: predict and evaluate leave the last fit's History)
            model.history = self.history
        for cb in callbacks:
            cb.set_model(model)
            cb.set_params(dict(params))
        self.batch_hooks = any(_overrides(cb, BATCH_HOOKS) for cb in callbacks)
        self.test_hooks = any(_overrides(cb, TEST_HOOKS) for cb in callbacks)

    def __call__(self, hook, index=None, logs=None):
        """Calls ``hook`` of every callback as Keras 3's CallbackList does: one
        copy of ``logs`` (keys sorted; ``{}`` for None) shared by the callbacks
        in turn; batch hooks get it as ``logs=``."""
        logs = dict(sorted((logs or {}).items()))
        for cb in self.callbacks:
            method = getattr(cb, hook)
            if "batch" in hook:
                method(index, logs=logs)
            elif index is not None:
                method(index, logs)
            else:
                method(logs)
