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

Likewise Nengo builds a convolution's output as ``Y = 0`` (a `Reset`) followed
by ``Y += conv(W, X)`` (a `ConvInc` or `ConvTransposeInc`), and its optimizer
merges the resets of several layers.  Where the convolution alone adds to Y,
`ConvSet` computes ``Y = conv(W, X)`` (``conv_inc`` with ``set``): a pass over
Y fewer, and no read of Y in the convolution.  The sum is the same: it starts
from +0 either way, and ``0 + s`` is ``s``.

Only the planner sees the fused operators; the simulator's step order (random
seeds, training, reset) keeps Nengo's operators.
"""

import numpy as np
from nengo.builder.operator import BsrDotInc, Copy, DotInc, ElementwiseInc, Operator, Reset
from nengo.builder.transforms import GeneralConvInc

from .rewrite import (copies_outside, replace_operators, resets_outside, written_by_others,
                      written_spans)
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


class ConvSet(Operator):
    """``Y = conv(W, X)``: a `Reset` of Y to zero and the (transposed)
    convolution that alone adds to Y, as one operator (sets Y).

    Attributes
    ----------
    reset : Reset
        The reset whose destination holds Y (Nengo's optimizer may have merged
        it with others; they keep the rest of it).
    conv_op : GeneralConvInc
        The convolution (``W``, ``X``, ``Y``, ``conv`` are its).
    """

    kernel = "conv_inc"

    def __init__(self, reset, conv_op):
        super().__init__(tag=f"{conv_op.tag} (sets)")
        self.reset, self.conv_op = reset, conv_op
        self.sets, self.incs, self.updates = [conv_op.Y], [], []
        self.reads = list(conv_op.reads)

    W = property(lambda self: self.conv_op.W)
    X = property(lambda self: self.conv_op.X)
    Y = property(lambda self: self.conv_op.Y)
    conv = property(lambda self: self.conv_op.conv)

    @property
    def parts(self):
        return [self.reset, self.conv_op]

    def make_step(self, signals, dt, rng):  # only the native kernels run it
        raise NotImplementedError("ConvSet runs only as a native conv_inc")


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


def _by_output_base(step_order, accept):
    """Base signal (by id) -> the operators that ``accept`` takes, by the base
    of their output ``Y``, in step order."""
    by_base = {}
    for op in step_order:
        if accept(op):
            by_base.setdefault(id(op.Y.base), []).append(op)
    return by_base


def _is_plain_copy(op):
    """A `Copy` that sets a 1-D signal from one of equal shape, both forwards."""
    return (type(op) is Copy and not op.inc and op.src_slice is None and op.dst_slice is None
            and op.dst.size > 0 and forward_runs(op.src, op.dst))


def _rows_in(copy, dot):
    """(first, end) of the elements of ``copy.dst`` (a 1-D copy or reset)
    that ``dot.Y`` covers, or None when Y is not a run of them (another
    stride, outside)."""
    if copy.dst.ndim != 1 or dot.Y.ndim != 1:
        return None
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
    by_base = _by_output_base(step_order, lambda op: (
        type(op) in (DotInc, BsrDotInc, ElementwiseInc) and _covers_each_row_once(op)
        and lowerable(op)))
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


def _is_zero_reset(op):
    """A `Reset` to zero of a 1-D signal."""
    return type(op) is Reset and op.dst.ndim == 1 and op.dst.size > 0 and op.value == 0


def settable_convolutions(step_order, dg, lowerable):
    """(reset, convolutions) to fuse into `ConvSet`s: a `Reset` to zero and the
    (transposed) convolutions (``lowerable``) that follow it directly, whose
    outputs are disjoint runs of its destination that no other operator
    writes, and whose weights and inputs lie outside it (set first, a
    convolution would read them before the reset)."""
    written = written_spans(step_order)
    by_base = _by_output_base(step_order, lambda op: (
        isinstance(op, GeneralConvInc) and op.Y.size > 0 and lowerable(op)))
    groups = []
    for reset in step_order:
        if not _is_zero_reset(reset):
            continue
        successors = dg.get(reset, ())
        convs = [op for op in by_base.get(id(reset.dst.base), ())
                 if op in successors and _rows_in(reset, op) is not None
                 and not written_by_others(op.Y, *span(op.Y), written, (reset, op))
                 and not any(overlap(sig, reset.dst) for sig in op.reads)]
        if convs:
            groups.append((reset, convs))
    return groups


def fuse(step_order, dg, groups):
    """The step order and dependency graph with each (copy, products) replaced
    by a `CopyThenDotInc` of its mat-vecs, a `CopyThenElementwiseInc` of its
    element-wise products and copies of what the products leave, and each
    (reset, convolutions) by `ConvSet`s and resets of what they leave (all at
    the copy's or reset's place, each with every dependency the copy or reset
    or the products had)."""
    new_ops = {}  # old operator -> the operators that replace it
    conv_sets = []
    for first, products in groups:  # a copy or a reset, and the products after it
        covered = [_rows_in(first, op) for op in products]
        if type(first) is Reset:
            sets = [ConvSet(first, op) for op in products]
            new_ops[first] = resets_outside(first, covered) + sets
            new_ops.update((s.conv_op, [s]) for s in sets)
            conv_sets += sets
        else:
            dots = [op for op in products if type(op) is not ElementwiseInc]
            elementwise = [op for op in products if type(op) is ElementwiseInc]
            fused = ([CopyThenDotInc(first, dots)] if dots else []) + (
                [CopyThenElementwiseInc(first, elementwise)] if elementwise else [])
            new_ops[first] = copies_outside(first, covered) + fused
            for op in products:
                new_ops[op] = [f for f in fused if op in f.parts]
    order, new_dg = replace_operators(step_order, dg, new_ops)
    for s in conv_sets:
        # A merged reset precedes the readers of every layer's output; a
        # `ConvSet` keeps only those of its own (a later layer's convolution
        # follows an earlier layer's readers: keeping theirs would be a cycle).
        own = {new for old in dg.get(s.conv_op, ()) for new in new_ops.get(old, [old])}
        new_dg[s] = {t for t in new_dg.get(s, ()) if t in own or _touches(t, s.Y)}
    return order, new_dg


def _touches(op, sig):
    return any(overlap(other, sig) for other in op.all_signals)
