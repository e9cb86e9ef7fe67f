"""TensorFlow's process-wide state, which every simulator's traced functions
would otherwise grow or clutter.

Gradient registry: `forgetting_custom_gradients`.

Keras 3's TensorFlow optimizers all-reduce the gradients through
``tf.distribute`` (``_all_reduce_sum_gradients``), whose ``all_reduce`` is a
``tf.custom_gradient``. Inside a traced function every such call registers a
new gradient function ("CustomGradient-<n>") in TensorFlow's process-wide
registry, and that function holds the traced graph (here the whole training
loop) for as long as the process lives: a loop making simulators and fitting
each grew by ~5.4 MB per simulator, and TensorFlow's function library by two
functions (measured 2026-12-03, TensorFlow 2.21, Keras 3.15).

A gradient function is looked up when a traced graph is differentiated. Our
training step differentiates its own forward pass while it is traced and is
never differentiated from outside, so what its trace registered is not needed
once the trace is done: `forgetting_custom_gradients` removes it. (What is
left, ~0.35 MB per fitted simulator, is TensorFlow's own: a loop of plain
``tf.function``s with an optimizer keeps ~0.14 MB each.)

Retracing warnings: TensorFlow warns when one Python function is traced often
("5 out of the last 9 calls to <function Trainer._make_train_step.<locals>.
train_range> triggered tf.function retracing ... define your @tf.function
outside of the loop"), counting the traces of every function made from the
same code. Each simulator traces its own training functions once by design,
so a loop of simulators (a hyperparameter sweep) drew that warning, about our
code, to the user: `quiet_retracing_warnings` drops it for our functions.
"""

import contextlib
import logging

import tensorflow as tf

from tensorflow.python.framework import ops as _tf_ops

_PREFIX = "CustomGradient-"


def _registry():
    """TensorFlow's gradient registry (a dict), or None where its internals differ."""
    registry = getattr(getattr(_tf_ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


@contextlib.contextmanager
def forgetting_custom_gradients():
    """Removes the custom gradients registered inside the block (see the
    module doc); use only around calls whose traces are not differentiated
    from outside."""
    registry = _registry()
    before = None if registry is None else set(registry)
    try:
        yield
    finally:
        if registry is not None:
            for key in [k for k in registry if k not in before and k.startswith(_PREFIX)]:
                del registry[key]


class _OurRetracing(logging.Filter):
    """Drops TensorFlow's retracing warnings about nengo_cuda's training functions."""

    OURS = ("Trainer.", "TrainingGraph.")

    def filter(self, record):
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message
                    and any(f"<function {name}" in message for name in self.OURS))


_FILTER = _OurRetracing()


def quiet_retracing_warnings():
    """Installs the filter of TensorFlow's logger (once; see the module doc)."""
    logger = tf.get_logger()
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
