"""A Node's Python function (Nengo's `SimPyFunc`) as a step function that
costs less per call than Nengo's own.

Nengo's step checks the function's value with ``np.all(np.isfinite(y))``,
whose dispatch through NumPy's reduction wrappers costs more than a typical
Node function itself (about 1.5 us of a 3.5 us call here); models with many
Python Nodes spend most of their step there.  This step does the same work
in the same order: it passes a copy of the input and the time as a Python
float, refuses ``None``, non-finite and unconvertible values with Nengo's
errors and messages, and writes the value into the output (broadcasting as
``output[...] = y`` does).  Floats (NumPy's float64 scalars too) are
checked by `math.isfinite`, small float arrays element by element, anything
else by ``np.isfinite(y).all()``, NumPy's check without the wrappers
(`all_finite`).  It draws no random numbers, as Nengo's does not.
"""

import math

import numpy as np
from nengo.exceptions import SimulationError
from nengo.utils.functions import function_name


def make_step(op, signals):
    """The step function of ``op`` (a `nengo.builder.operator.SimPyFunc`) on
    ``signals``: ``output[...] = fn(t, x)`` (or ``fn(t)``, ``fn(x)``; no
    output: the value is dropped)."""
    fn = op.fn
    t = signals[op.t] if op.t is not None else None
    x = signals[op.x] if op.x is not None else None
    if t is None and x is None:
        call = fn
    elif t is None:
        def call():
            return fn(x.copy(order="K"))
    elif x is None:
        def call():
            return fn(t.item())
    else:
        def call():
            return fn(t.item(), x.copy(order="K"))
    if op.output is None:
        return call
    write = _checked_write(signals[op.output], function_name(fn))

    def step_simpyfunc():
        write(call())

    return step_simpyfunc


def make_trial_step(op, first, signals):
    """The step of input-Node function ``op`` (no input ``x``) for a later
    trial of a minibatch: trial 0's value (on `LayoutSignalDict` ``first``),
    copied.  NengoDL calls an input Node's function once per step for all
    trials (a function with its own state, an iterator say, is not advanced
    once per trial)."""
    if op.output is None:
        return lambda: None
    source, target = first[op.output], signals[op.output]

    def step_copy_trial0():
        target[...] = source

    return step_copy_trial0


# Float arrays of at most this many elements are checked element by element
# in Python (NumPy's isfinite-then-all costs about 1.2 us whatever the size).
SMALL_ARRAY = 32


def all_finite(y):
    """``np.isfinite(y).all()``, cheaper for the values Node functions return
    most: floats (Python's, and NumPy's float64 scalars, a float subclass) by
    `math.isfinite`; small arrays of float16/32/64 (whose elements `tolist`
    turns into the same Python floats; not long double's) element by element."""
    if isinstance(y, float):
        return math.isfinite(y)
    if type(y) is np.ndarray and y.dtype.kind == "f" and y.itemsize <= 8 and y.size <= SMALL_ARRAY:
        return all(map(math.isfinite, y.ravel().tolist()))
    return np.isfinite(y).all()


def _checked_write(output, name):
    """``output[...] = y`` for a finite ``y``; Nengo's `SimulationError` otherwise."""

    def write(y):
        try:
            if y is None or not all_finite(y):
                raise SimulationError(f"Function '{name}' returned non-finite value")
            output[...] = y
        except (TypeError, ValueError) as e:
            raise SimulationError(
                f"Function '{name}' returned a value {y!r} of invalid type {type(y)!r}"
            ) from e

    return write
