"""Keeps TensorFlow's global gradient registry from growing with every fit.

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
once the trace is done: `forgetting_custom_gradients` removes it.
"""

import contextlib

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
