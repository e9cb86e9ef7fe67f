"""Fusion: a constant copied into a signal that a product then increments runs
as one product that starts from the constant.

Nengo builds every ensemble's input current as ``J = bias`` (a `Copy`) followed
by ``J += encoders @ x`` (a `DotInc`), so J is written twice per step and read
once more in between.  `CopyThenDotInc` does both: ``J = bias + encoders @ x``
(the ``dot_inc`` kernel's optional ``I`` block field), which saves a pass over J
per trial.  The sum is the same, in the same order: the product is accumulated
first and then added to the constant once, as ``J += encoders @ x`` adds it to J.
A connection into an ensemble's neurons adds ``gains * x`` (an
`ElementwiseInc`); where that is the only increment of J (the encoder product
of an ensemble without decoded input is gone, `nengo_cuda.zero_inputs`),
`CopyThenElementwiseInc` computes ``J = bias + gains * x`` (``elementwise_inc``
with ``I``), the same one rounding.

Nengo's optimizer merges copies in the iteration order of sets: the bias copies
of several ensembles become one copy, sometimes together with an unrelated copy
(a probe's), while encoder products merge only when their shapes agree.  So the
products may cover a copy's destination in pieces, or only part of it: the
covered elements are fused, the others stay a (smaller) `Copy`.

Only the planner sees the fused operators; the simulator's step order (random
seeds, training, reset) keeps Nengo's operators.
"""

import numpy as np
from nengo.builder.operator import BsrDotInc, Copy, DotInc, ElementwiseInc, Operator

from .rewrite import copies_outside, replace_operators, written_by_others, written_spans
from .views import forward_runs, overlap, span

# Planner default; benchmarks turn it off to measure what fusion gains.
ENABLED = True


class CopyThenProducts(Operator):
    """``Y[part] = src[part]; Y[part] += product`` for products whose outputs
    are disjoint parts of a copy's destination Y, as one operator (sets the
    parts); the subclasses name the kernel that runs it.

    Attributes
    ----------
    copy : Copy
        The copy of a constant ``src`` into ``Y``.
    products : list of Operator
        Products that add to every element of their output, a part of Y, once.
    """

    kernel = None  # the native instruction kind that runs it

    def __init__(self, copy, products):
        super().__init__(tag=f"{copy.tag} + {len(products)} {self.kernel} products")
        self.copy, self.products = copy, list(products)
        self.sets = [op.Y for op in products]
        self.incs = []
        self.reads = [copy.src] + [sig for op in products for sig in op.reads]
        self.updates = []

    @property
    def parts(self):
        return [self.copy] + self.products

    def make_step(self, signals, dt, rng):  # only the native kernels run it
        raise NotImplementedError(f"{type(self).__name__} runs only as a native {self.kernel}")


class CopyThenDotInc(CopyThenProducts):
    """``Y[part] = src[part] + A @ X``: mat-vecs (`DotInc`, `BsrDotInc`), as
    a ``dot_inc`` whose blocks start from the constant."""

    kernel = "dot_inc"


class CopyThenElementwiseInc(CopyThenProducts):
    """``Y[part] = src[part] + A * X``: element-wise products with 1-D outputs
    (`ElementwiseInc`), as an ``elementwise_inc`` with ``I``."""

    kernel = "elementwise_inc"


def _covers_each_row_once(dot):
    """Whether ``dot`` adds to every element of Y exactly once (one block per
    row; an element-wise product always does)."""
    if dot.Y.ndim != 1:
        return False
    if type(dot) is ElementwiseInc:
        return dot.Y.size > 0
    if isinstance(dot, BsrDotInc):
        return dot.A.ndim == 3 and dot.A.size > 0 and bool(np.all(np.diff(dot.indptr) == 1))
    return dot.A.ndim == 2 and dot.A.size > 0


def _is_plain_copy(op):
    """A `Copy` that sets a 1-D signal from one of equal shape, both forwards."""
    return (type(op) is Copy and not op.inc and op.src_slice is None and op.dst_slice is None
            and op.dst.size > 0 and forward_runs(op.src, op.dst))


def _rows_in(copy, dot):
    """(first, end) of the elements of ``copy.dst`` that ``dot.Y`` covers, or
    None when Y is not a run of them (another stride, outside)."""
    (stride,) = copy.dst.elemstrides
    first, rest = divmod(dot.Y.elemoffset - copy.dst.elemoffset, stride)
    if rest or dot.Y.elemstrides != (stride,) or first < 0 or first + dot.Y.size > copy.dst.size:
        return None
    return first, first + dot.Y.size


def _fusable_rows(copy, dot, rows, written):
    """Whether no operator writes the source elements that ``rows`` read (a
    constant), none but the copy and ``dot`` writes ``dot.Y`` (fusing moves
    the product first among the increments of Y: with others, the order of the
    sum, and its rounding, would change), and the product reads nothing of
    the copy's destination (fused, it would read it before the copy)."""
    (s,) = copy.src.elemstrides
    lo, hi = copy.src.elemoffset + rows[0] * s, copy.src.elemoffset + (rows[1] - 1) * s + 1
    y_lo, y_hi = span(dot.Y)
    return not (written_by_others(copy.src, lo, hi, written, ())
                or written_by_others(dot.Y, y_lo, y_hi, written, (copy, dot))
                or any(overlap(sig, copy.dst) for sig in (dot.A, dot.X)))


def fusable_groups(step_order, dg, lowerable):
    """(copy, products) to fuse: a plain `Copy` and products (mat-vecs and
    element-wise products, ``lowerable``, each adding to each element of its
    output once) that follow the copy directly, whose outputs are disjoint
    runs of the copy's destination that nothing else writes, and that read
    elements of its source that no operator writes.  None of the copy's other
    successors may precede a product (fusing would make that a cycle; `plan`
    also falls back to no fusion on a cycle).  So the fused program computes
    every sum in the same order."""
    written = written_spans(step_order)
    by_base = {}
    for op in step_order:
        if (type(op) in (DotInc, BsrDotInc, ElementwiseInc) and _covers_each_row_once(op)
                and lowerable(op)):
            by_base.setdefault(id(op.Y.base), []).append(op)
    groups = []
    for copy in step_order:
        if not _is_plain_copy(copy):
            continue
        successors = dg.get(copy, ())
        dots = []
        for dot in by_base.get(id(copy.dst.base), ()):
            rows = _rows_in(copy, dot) if dot in successors else None
            if rows is not None and _fusable_rows(copy, dot, rows, written):
                dots.append(dot)
        others = [s for s in successors if s not in dots]
        if dots and not any(dot in dg.get(o, ()) for o in others for dot in dots):
            groups.append((copy, dots))
    return groups


def fuse(step_order, dg, groups):
    """The step order and dependency graph with each (copy, products) replaced
    by a `CopyThenDotInc` of its mat-vecs, a `CopyThenElementwiseInc` of its
    element-wise products and copies of what the products leave (all at the
    copy's place, each with every dependency the copy or the products had)."""
    new_ops = {}  # old operator -> the operators that replace it
    for copy, products in groups:
        dots = [op for op in products if type(op) is not ElementwiseInc]
        elementwise = [op for op in products if type(op) is ElementwiseInc]
        fused = ([CopyThenDotInc(copy, dots)] if dots else []) + (
            [CopyThenElementwiseInc(copy, elementwise)] if elementwise else [])
        new_ops[copy] = copies_outside(copy, [_rows_in(copy, op) for op in products]) + fused
        for op in products:
            new_ops[op] = [f for f in fused if op in f.parts]
    return replace_operators(step_order, dg, new_ops)
