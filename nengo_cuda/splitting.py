"""Splitting: merged element-wise operators cut into the parts that other
operators use apart.

Nengo's optimizer merges operators of a kind in the iteration order of sets,
so from one build to the next it may merge the copy into one node's input with
the copy into an unrelated node's input (circular convolution: the network's
``input`` and ``output`` nodes).  The merged copy then depends on everything
either part depends on, and everything after either part waits for both: a
false path from the end of one chain of the network to the start of another.
The planner must keep every dependency, so such a path splits a kind into more
groups (circular convolution: one LIF group or two, 20 or 27 instructions,
from one build to the next).

A `Copy` (``dst[i] = src[i]`` or ``+=``) and an `ElementwiseInc` (``Y[i] +=
A[i] * X[i]``, a scalar A or X broadcast) compute each element on its own.
`split_elementwise` cuts each such operator that has a predecessor at the
element boundaries of every other operator's views of its operands, so that
each piece touches a run of elements that the same operators touch; each piece
keeps only those dependencies of the original whose operators share memory
with it.  Every element is computed by the same arithmetic, after and before
the same operators, so results are unchanged.

Operators without predecessors (a copy of a constant: biases) cannot lie on a
false path; they stay whole.  Only the planner sees the pieces; the
simulator's step order (random seeds, training, reset) keeps Nengo's operators.
"""

import bisect

from nengo.builder.operator import Copy, ElementwiseInc

from .views import forward_runs, overlap, run, span

# Planner default; tests and benchmarks turn it off to compare.
ENABLED = True


def _tag(op, a, b):
    return f"{op.tag or type(op).__name__}[{a}:{b}]"


def _slicer(op):
    """For an element-wise operator that can be cut: (its per-element output,
    its per-element inputs, ``piece(a, b)`` making the operator on elements
    [a, b)); else None.  Operands of size 1 that broadcast stay whole.  Not
    when an input overlaps the output (that copy reads all before it writes)."""
    if type(op) is Copy and op.src_slice is None and op.dst_slice is None:
        out, ins = op.dst, [op.src]

        def piece(a, b):
            return Copy(run(op.src, a, b), run(op.dst, a, b), inc=op.inc, tag=_tag(op, a, b))
    elif type(op) is ElementwiseInc and op.Y.ndim == 1:
        out = op.Y
        ins = [s for s in (op.A, op.X) if s.shape == out.shape]
        if any(s.size != 1 for s in (op.A, op.X) if s.shape != out.shape):
            return None

        def cut(s, a, b):
            return run(s, a, b) if s.shape == out.shape else s

        def piece(a, b):
            return ElementwiseInc(cut(op.A, a, b), cut(op.X, a, b), run(op.Y, a, b),
                                  tag=_tag(op, a, b))
    else:
        return None
    if out.size < 2 or not forward_runs(out, *ins) or any(overlap(out, s) for s in ins):
        return None
    return out, ins, piece


def _extents(op):
    """(base id, first, end) of each signal ``op`` touches (`span`)."""
    return [(id(sig.base),) + span(sig) for sig in op.all_signals if sig.size]


def _meet(extents1, extents2):
    """Whether two operators' extents share an element of a base."""
    return any(b1 == b2 and lo1 < hi2 and lo2 < hi1
               for b1, lo1, hi1 in extents1 for b2, lo2, hi2 in extents2)


def _cuts(sig, edges):
    """Indices 0 < i < sig.size of ``sig``'s elements at the base elements
    ``edges`` (where other operators' views start or end) or just after."""
    (stride,) = sig.elemstrides
    offset, size = sig.elemoffset, sig.size
    cuts = {-((offset - edge) // stride) for edge in edges}  # rounded up
    return {i for i in cuts if 0 < i < size}


def _edges_inside(index, sig, op):
    """The edges of operators other than ``op`` that can cut ``sig`` (a forward
    run): those in (first element, last element], found by bisection in its
    base's sorted edges, so a large merged base costs no scan per operator."""
    values, owners = index[id(sig.base)]
    (stride,) = sig.elemstrides
    lo = bisect.bisect_right(values, sig.elemoffset)
    hi = bisect.bisect_right(values, sig.elemoffset + (sig.size - 1) * stride)
    return [values[i] for i in range(lo, hi) if owners[i] is not op]


def split_elementwise(step_order, dg, lowerable=lambda op: True):
    """The step order and dependency graph with element-wise operators
    (``lowerable``: as native kernels, since callbacks run Nengo's operators)
    cut where their parts are used apart (see the module docstring);
    unchanged when none is cut."""
    edges = {}  # base id -> [(edge, operator)]: where operators' views start, end
    for op in step_order:
        for base, lo, hi in _extents(op):
            edges.setdefault(base, []).extend(((lo, op), (hi, op)))
    index = {}  # base id -> (sorted edges, their operators)
    for base, pairs in edges.items():
        pairs.sort(key=lambda pair: pair[0])
        index[base] = ([edge for edge, _ in pairs], [other for _, other in pairs])
    has_predecessors = {succ for succs in dg.values() for succ in succs}

    pieces = {}  # operator -> the operators that replace it
    for op in step_order:
        # without predecessors (a constant's copy) no path runs through it
        cutter = _slicer(op) if op in has_predecessors else None
        if cutter is None or not lowerable(op):
            continue
        out, ins, piece = cutter
        cuts = set()
        for sig in [out] + ins:
            cuts |= _cuts(sig, _edges_inside(index, sig, op))
        if cuts:
            bounds = [0] + sorted(cuts) + [out.size]
            pieces[op] = [piece(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    if not pieces:
        return step_order, dg

    order = [new for op in step_order for new in pieces.get(op, [op])]
    extents = {}  # memo: Nengo computes a signal's offset and strides on each access

    def meet(op1, op2):
        for op in (op1, op2):
            if op not in extents:
                extents[op] = _extents(op)
        return _meet(extents[op1], extents[op2])

    new_dg = {}
    for op, succs in dg.items():
        for new in pieces.get(op, [op]):
            new_dg[new] = {s for succ in succs for s in pieces.get(succ, [succ])
                           if (op not in pieces and succ not in pieces) or meet(new, s)}
    return order, new_dg
