"""NengoDL's callbacks (``nengo_dl.callbacks``), for ``sim.fit(callbacks=...)``.

``TensorBoard`` is Keras's (``fit`` writes its scalars and weight histograms
through `nengo_cuda.training.summaries.TensorBoardLogs`); `NengoSummaries`
logs histograms of Nengo objects' parameters; `IsolateState` keeps a call's
minibatches from changing the simulation's state.  Importing this module imports
TensorFlow; ``nengo_cuda.callbacks`` loads it on first use.
"""

import tensorflow as tf

from .training.callbacks import IsolateState
from .training.summaries import NengoSummaries

TensorBoard = tf.keras.callbacks.TensorBoard

__all__ = ["IsolateState", "NengoSummaries", "TensorBoard"]
