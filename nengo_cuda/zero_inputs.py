"""Zero inputs: increments by a product with a signal that is zero at every
step are dropped from the program.

Nengo builds every ensemble's input current as ``J = bias`` followed by
``J += encoders @ x``, where ``x`` is the ensemble's decoded input, which
Nengo resets to zero at the start of every step.  An ensemble that only
receives connections into its neurons (every layer of a converted Keras
model, `nengo_cuda.Converter`) has an ``x`` that nothing else writes, so each
step adds ``encoders @ 0`` to J: a pass over J and the encoders that changes
no value.  ``y + 0.0 == y`` for every y but -0.0 (which Nengo turns into
+0.0: only the sign of a zero differs, which no arithmetic of the step and no
comparison of probes sees), and a product with zeros is zero when its
other factor is finite (``inf * 0`` is nan), so the planner drops

- ``DotInc``, ``BsrDotInc``, ``SparseDotInc`` and ``ElementwiseInc`` whose
  ``X`` is always zero and whose ``A`` is constant (no operator writes it)
  and finite when the simulator is built (training that makes weights
  infinite would have made Nengo's current nan as well: not checked again),
- ``Copy(..., inc=True)`` whose source is always zero.

A signal is always zero when its elements start at zero, no operator but
``Reset(..., 0)`` writes them, and nothing outside the operators does (the
outputs of input nodes, which ``data=`` feeds: `drop`'s ``external``). The
predecessors of a dropped operator keep its successors as theirs, so the
order of everything else stays Nengo's. Only the planner sees the change;
the simulator's step order (random seeds, training, reset) keeps Nengo's
operators.
"""

import numpy as np
from nengo.builder.operator import BsrDotInc, Copy, DotInc, ElementwiseInc, Reset, SparseDotInc

from .rewrite import written_by_others, written_spans
from .views import span

# Planner default; tests turn it off to compare.
ENABLED = True

_PRODUCTS = (DotInc, BsrDotInc, SparseDotInc, ElementwiseInc)


def _zero_resets(ops):
    """The operators that reset signals to zero (they keep a zero signal zero)."""
    return {op for op in ops if type(op) is Reset and op.value == 0}


def always_zero(sig, written, resets, external=()):
    """Whether ``sig`` is zero at every step: its initial values are zero, its
    base is not in ``external`` and no operator but a zero reset writes
    elements of its span."""
    if sig.size == 0 or sig.sparse or sig.base in external or np.any(sig.initial_value != 0):
        return False
    lo, hi = span(sig)
    return not written_by_others(sig, lo, hi, written, resets)


def _constant_and_finite(sig, written):
    """Whether no operator writes ``sig`` and its values are finite now."""
    lo, hi = span(sig)
    if written_by_others(sig, lo, hi, written, ()):
        return False
    values = sig.initial_value
    data = values.data if sig.sparse and hasattr(values, "data") else values
    return bool(np.all(np.isfinite(np.asarray(data))))


def adds_nothing(op, written, resets, external=()):
    """Whether ``op`` increments by a product with an always-zero input (or
    copies an always-zero source onto its destination with ``inc``)."""
    if type(op) is Copy:
        return op.inc and always_zero(op.src, written, resets, external)
    if type(op) in _PRODUCTS:
        return (always_zero(op.X, written, resets, external)
                and _constant_and_finite(op.A, written))
    return False


def drop(step_order, dg, external=()):
    """The step order and dependency graph without the operators that add
    nothing (`adds_nothing`); each dropped operator's predecessors precede
    its successors.  ``external``: base signals written from outside the
    operators (fed inputs)."""
    written = written_spans(step_order)
    resets = _zero_resets(step_order)
    dropped = {op for op in step_order if adds_nothing(op, written, resets, external)}
    if not dropped:
        return step_order, dg
    new_dg = {op: set(succs) for op, succs in dg.items()}
    preds = {}
    for op, succs in dg.items():
        for succ in succs:
            preds.setdefault(succ, set()).add(op)
    for op in dropped:  # bypass each, updating both maps (chains of dropped ones too)
        succs, before = new_dg.pop(op, set()), preds.pop(op, set())
        for pred in before:
            new_dg[pred].discard(op)
            new_dg[pred].update(succs)
        for succ in succs:
            preds[succ].discard(op)
            preds[succ].update(before)
    return [op for op in step_order if op not in dropped], new_dg
