"""TensorBoard logs from ``sim.fit`` (NengoDL's ``nengo_dl.callbacks``).

Keras's ``TensorBoard`` callback reads a Keras model's layers and graph, which
``sim.fit`` does not have; given one, ``fit`` runs `TensorBoardLogs` in its
place: the same files a Keras fit writes for its scalars and weights
(``<log_dir>/train`` and ``<log_dir>/validation``: ``epoch_<name>`` for every
log value each epoch, ``batch_<name>`` every ``update_freq`` minibatches when
that is an int, and weight histograms every ``histogram_freq`` epochs).
`NengoSummaries` (NengoDL's) adds histograms of chosen Nengo objects'
parameters: an Ensemble's encoders, a Neurons' biases, a Connection's weights.
"""

import re

import numpy as np
import nengo
import tensorflow as tf
from nengo.exceptions import ValidationError
from tensorflow.core.framework import summary_pb2

from ..user_warnings import warn


def _metadata(plugin):
    """Summary metadata naming the TensorBoard plugin that shows a value."""
    meta = summary_pb2.SummaryMetadata()
    meta.plugin_data.plugin_name = plugin
    return meta.SerializeToString()


def write_scalar(tag, value, step):
    """A scalar summary as TensorBoard's scalar plugin reads it (written with
    TensorFlow alone: ``tf.summary.scalar`` needs the tensorboard package)."""
    tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step,
                     metadata=_metadata("scalars"))


def write_histogram(tag, values, step, bins=30):
    """A histogram summary in TensorBoard's format: rows (left edge, right edge,
    count)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    counts, edges = np.histogram(values, bins=bins if values.size else 1)
    table = np.stack([edges[:-1], edges[1:], counts], axis=1)
    tf.summary.write(tag, tf.constant(table, tf.float64), step=step,
                     metadata=_metadata("histograms"))


class TensorBoardLogs(tf.keras.callbacks.Callback):
    """Writes what Keras's ``TensorBoard(log_dir, histogram_freq, update_freq)``
    would, from ``fit``'s logs and the trained variables."""

    def __init__(self, log_dir="logs", histogram_freq=0, update_freq="epoch"):
        super().__init__()
        self.log_dir = str(log_dir)
        self.histogram_freq = int(histogram_freq or 0)
        self.update_freq = update_freq
        self._writers = {}
        self._batches = 0
        if not isinstance(update_freq, int):
            # no batch hook: fit then runs each epoch in one graph call
            self.on_train_batch_end = tf.keras.callbacks.Callback.on_train_batch_end.__get__(self)

    @classmethod
    def like(cls, keras_callback):
        """The stand-in for a ``tf.keras.callbacks.TensorBoard`` instance
        (with a warning naming what it asks for that is not written)."""
        unwritten = [name for name, asked in (
            ("profile_batch", getattr(keras_callback, "_start_batch", 0) > 0),
            ("write_images", getattr(keras_callback, "write_images", False)),
            ("embeddings_freq", getattr(keras_callback, "embeddings_freq", 0)),
            ("write_steps_per_second", getattr(keras_callback, "write_steps_per_second", False)),
        ) if asked]
        if unwritten:
            warn(f"TensorBoard({', '.join(unwritten)}): not written by the simulator's "
                 f"training (its steps run in its own kernels, not in a Keras model's "
                 f"graph); its scalars and weight histograms are", UserWarning)
        return cls(keras_callback.log_dir, getattr(keras_callback, "histogram_freq", 0),
                   getattr(keras_callback, "update_freq", "epoch"))

    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = tf.summary.create_file_writer(f"{self.log_dir}/{name}")
        return self._writers[name]

    def _scalars(self, logs, prefix, step):
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}
        for name, values in (("train", train), ("validation", val)):
            if values:
                with self._writer(name).as_default(step=step):
                    for key, value in values.items():
                        write_scalar(f"{prefix}_{key}", value, step)

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if isinstance(self.update_freq, int) and self._batches % self.update_freq == 0:
            self._scalars(logs or {}, "batch", self._batches)

    def on_epoch_end(self, epoch, logs=None):
        self._scalars(logs or {}, "epoch", epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            with self._writer("train").as_default(step=epoch):
                # (the trainer's list: reading them does not hand them to user code)
                for var in self.model._trainer.trainable_variables:
                    write_histogram(f"{var.name}/histogram", var.numpy(), epoch)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


class NengoSummaries(tf.keras.callbacks.Callback):
    """NengoDL's ``NengoSummaries(log_dir, sim, objects)``: after every epoch,
    histograms of ``objects``' parameters from ``sim.data`` (their trained
    values), under NengoDL's tags ``<type>_<label>_<parameter>``: an
    Ensemble's (scaled) encoders (``Ensemble_<label>_encoders``), a Neurons'
    bias (``Ensemble.neurons_<label>_bias``), a Connection's weights
    (``Connection_<label>_weights``)."""

    def __init__(self, log_dir, sim, objects):
        super().__init__()
        self.summaries = [(_tag(obj, sim), obj) for obj in objects]
        self.sim = sim
        self.writer = tf.summary.create_file_writer(str(log_dir))

    @staticmethod
    def _value(data, obj):
        if isinstance(obj, nengo.Ensemble):
            return data[obj].scaled_encoders
        if isinstance(obj, nengo.ensemble.Neurons):
            return data[obj.ensemble].bias
        return data[obj].weights

    def on_epoch_end(self, epoch, logs=None):
        with self.writer.as_default(step=epoch):
            for tag, obj in self.summaries:
                write_histogram(tag, self._value(self.sim.data, obj), epoch)

    def on_train_end(self, logs=None):
        self.writer.flush()


def _tag(obj, sim):
    """NengoDL's histogram tag for ``obj``'s parameter (characters a summary
    name cannot hold as ``_``); a ValidationError for other objects."""
    if isinstance(obj, nengo.Ensemble):
        name = f"Ensemble_{obj.label}_encoders"
    elif isinstance(obj, nengo.ensemble.Neurons):
        name = f"Ensemble.neurons_{obj.ensemble.label}_bias"
    elif isinstance(obj, nengo.Connection):
        if sim.model.sig.get(obj, {}).get("weights") is None:  # (NoTransform, not decoded)
            raise ValidationError(  # (NengoDL's check)
                f"NengoSummaries: Connection '{obj}' does not have any weights to log",
                attr="objects")
        name = f"Connection_{obj.label}_weights"
    else:
        raise ValidationError(
            f"NengoSummaries: {obj} is not an Ensemble, Neurons or Connection",
            attr="objects")
    return re.sub(r"[^\w.\-/]", "_", name)


__all__ = ["NengoSummaries", "TensorBoardLogs"]
