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
once the trace is done: `forgetting_custom_gradients` removes it (only the
``all_reduce`` gradients: a user's own custom gradient in a nested
``tf.function`` is looked up by name when that function's cached trace is
differentiated later). (What is
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
import threading

import tensorflow as tf

from tensorflow.python.framework import ops as _tf_ops

_PREFIX = "CustomGradient-"
_LOCK = threading.Lock()


def _registry():
    """TensorFlow's gradient registry (a dict), or None where its internals differ."""
    registry = getattr(getattr(_tf_ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


def _is_all_reduce_gradient(entry, depth=3):
    """Whether a registry entry is the gradient of ``tf.distribute``'s
    ``all_reduce`` (a function whose closures, a few levels down, hold
    ``ReplicaContextBase.all_reduce``'s ``grad_wrapper``). Other custom
    gradients (a user's ``tf.custom_gradient`` in a ``tf.function`` that a
    TensorNode calls, whose cached trace names its gradient and may be
    differentiated later) are kept."""
    fn = entry.get("type") if isinstance(entry, dict) else None
    todo = [(fn, 0)]
    while todo:
        fn, level = todo.pop()
        if ".all_reduce." in (getattr(fn, "__qualname__", "") or ""):
            return True
        if level < depth:
            for cell in getattr(fn, "__closure__", None) or ():
                try:
                    todo.append((cell.cell_contents, level + 1))
                except ValueError:  # (an empty cell)
                    pass
    return False


@contextlib.contextmanager
def forgetting_custom_gradients():
    """Removes the ``all_reduce`` gradients registered inside the block (see
    the module doc); use only around calls whose traces are not
    differentiated from outside. Entries other threads add meanwhile are
    removed only if they are such gradients too, which nothing looks up."""
    registry = _registry()
    if registry is None:
        yield
        return
    with _LOCK:  # (simulators fitting in two threads)
        before = set(list(registry))
    try:
        yield
    finally:
        with _LOCK:
            for key, entry in list(registry.items()):
                if key not in before and key.startswith(_PREFIX) and \
                        _is_all_reduce_gradient(entry):
                    registry.pop(key, None)


class _OurRetracing(logging.Filter):
    """Drops TensorFlow's retracing warnings about nengo_cuda's training
    functions (their qualified names, made inside these methods)."""

    OURS = ("Trainer._make_train_step.<locals>.", "Trainer.forward.<locals>.",
            "Trainer._rate_runs.<locals>.")

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
