"""Keras's default float type while a simulator works, as NengoDL sets it.

NengoDL runs its methods (and the body of ``with Simulator(...) as sim:``)
with ``tf.keras.backend.floatx()`` set to the simulator's dtype
(``configure_settings(dtype=...)``), so Node functions and Keras layers made
meanwhile see float64 in a float64 simulator.  Simulation never imports
TensorFlow: without it imported there is no floatx to set.
"""

import contextlib
import functools
import sys
import threading

import numpy as np


def _keras():
    tf = sys.modules.get("tensorflow")
    return getattr(tf, "keras", None) if tf is not None else None


# Keras's floatx is the process's: simulators working in several threads at
# once share it.  The floatx before the first of them set it comes back when
# the last one is done (each restoring its own "before" could leave a
# simulator's dtype behind: another thread's "before" was that dtype).
_LOCK = threading.Lock()
_ACTIVE = {"depth": 0, "outer": None}


def set_floatx(dtype):
    """Sets Keras's floatx to ``dtype``; returns what to give `restore_floatx`
    (None, with nothing set, when TensorFlow is not imported)."""
    if _keras() is None:
        return None
    with _LOCK:
        before = _apply(dtype)
        if _ACTIVE["depth"] == 0:
            _ACTIVE["outer"] = before
        _ACTIVE["depth"] += 1
    return before


def restore_floatx(before):
    """Undoes `set_floatx` (given what it returned): the floatx it replaced,
    or, when no other `set_floatx` is still in effect, the one before all."""
    if before is None or _keras() is None:
        return
    with _LOCK:
        _ACTIVE["depth"] -= 1
        _undo(_ACTIVE["outer"] if _ACTIVE["depth"] == 0 else before)


def _apply(dtype):
    """Keras's floatx set to ``dtype``; returns what `_undo` takes.

    Keras 3 makes new layers' variables in its global dtype policy, which it
    fixes on first use (tf.keras 2 followed floatx): a policy that is just the
    floatx before follows it here too; a mixed-precision one stays."""
    keras = _keras()
    name = np.dtype(dtype).name
    before = keras.backend.floatx()
    config = getattr(keras, "config", None)
    policy = None
    if config is not None and hasattr(config, "set_dtype_policy"):
        policy = config.dtype_policy()  # (made from floatx on first use: read first)
        if policy.name == before:
            config.set_dtype_policy(name)
        else:
            policy = None
    keras.backend.set_floatx(name)
    return before, policy


def _undo(before):
    keras = _keras()
    floatx, policy = before
    keras.backend.set_floatx(floatx)
    if policy is not None:
        keras.config.set_dtype_policy(policy)


@contextlib.contextmanager
def keras_floatx(dtype):
    """Keras's floatx is ``dtype`` inside the block (if TensorFlow is imported)."""
    before = set_floatx(dtype)
    try:
        yield
    finally:
        restore_floatx(before)


def in_floatx(method):
    """A Simulator method that runs with Keras's floatx at the simulator's dtype."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if "tensorflow" not in sys.modules:  # (nothing to set: a step loop's ~2 us)
            return method(self, *args, **kwargs)
        with keras_floatx(self.dtype):
            return method(self, *args, **kwargs)

    return wrapper
