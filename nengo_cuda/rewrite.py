"""Rewriting the operator graph (for `nengo_cuda.fusion` and
`nengo_cuda.deferral`): which operators write where, copies and resets of
what a rewrite leaves, and operators replaced by others that keep their
dependencies."""

from nengo.builder.operator import Copy, Reset

from .views import leading, span


def written_spans(ops):
    """Base signal (by id) -> (first, end, operator) of the elements each
    operator that writes the base writes."""
    spans = {}
    for op in ops:
        for sig in op.sets + op.incs + op.updates:
            if sig.size:
                spans.setdefault(id(sig.base), []).append(span(sig) + (op,))
    return spans


def written_by_others(sig, lo, hi, written, ours):
    """Whether an operator not in ``ours`` writes elements [lo, hi) of ``sig.base``."""
    return any(a < hi and lo < b and op not in ours for a, b, op in written.get(id(sig.base), ()))


def _gaps(n, covered):
    """The (first, end) ranges of [0, n) outside the ``covered`` ranges, which
    do not overlap."""
    gaps, start = [], 0
    for first, end in sorted(covered) + [(n, n)]:
        if first > start:
            gaps.append((start, first))
        start = end
    return gaps


def copies_outside(copy, covered):
    """Copies (set or increment, as ``copy``) of the parts of ``copy`` along
    its first axis (elements of a 1-D copy, rows of a 2-D one) outside the
    ``covered`` (first, end) ranges, which do not overlap."""
    return [Copy(leading(copy.src, a, b), leading(copy.dst, a, b), inc=copy.inc,
                 tag=f"{copy.tag}[{a}:{b}]") for a, b in _gaps(copy.src.shape[0], covered)]


def resets_outside(reset, covered):
    """Resets (to ``reset``'s value) of the parts of ``reset``'s destination
    along its first axis outside the ``covered`` (first, end) ranges."""
    return [Reset(leading(reset.dst, a, b), value=reset.value, tag=f"{reset.tag}[{a}:{b}]")
            for a, b in _gaps(reset.dst.shape[0], covered)]


def replace_operators(step_order, dg, new_ops):
    """The step order and dependency graph with each operator in ``new_ops``
    replaced by its list of operators.

    A new operator takes the place of the first operator (in ``step_order``)
    that lists it, and inherits every dependency of every operator that lists
    it: each of their predecessors precedes it, each of their successors
    follows it.  Operators listed for one old operator have no dependencies
    among themselves.
    """
    if not new_ops:
        return step_order, dg
    order, placed = [], set()
    for op in step_order:
        for new in new_ops.get(op, [op]):
            if id(new) not in placed:
                placed.add(id(new))
                order.append(new)
    new_dg = {}
    for op, succs in dg.items():
        siblings = set(new_ops.get(op, [op]))  # replace one operator: independent
        targets = {t for s in succs for t in new_ops.get(s, [s])} - siblings
        for new in siblings:
            new_dg.setdefault(new, set()).update(targets)
    return order, new_dg
