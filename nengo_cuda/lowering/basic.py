"""TimeUpdate, Reset, Copy and ElementwiseInc lower to element-wise kernels.

Each operand becomes an array of addresses computed with NumPy indexing on
address arrays, so slices, fancy indices, negative indices, boolean masks and
broadcasting behave exactly as Nengo's ``make_step`` would apply them.
"""

import numpy as np
from nengo.builder.operator import Copy, ElementwiseInc, Reset, TimeUpdate
from nengo.builder.probe import SimProbe

from ..fusion import CopyThenElementwiseInc
from ..layout import FLOAT, INT
from ..program import Instruction
from .common import all_float
from .registry import register


@register(TimeUpdate)
class TimeUpdateLowering:
    @staticmethod
    def key(op, layout):
        ok = layout.pool_of(op.step) == INT and layout.pool_of(op.time) == FLOAT
        return ("time_update",) if ok and op.step.size == 1 and op.time.size == 1 else None

    @staticmethod
    def lower(ops, layout):
        return [
            Instruction(
                "time_update",
                [op],
                scalars={"step": layout.address(op.step), "time": layout.address(op.time)},
            )
            for op in ops
        ]


@register(SimProbe)
class SimProbeLowering:
    """SimProbe only marks a signal as read (for the dependency graph): no work."""

    @staticmethod
    def key(op, layout):
        return ("no_op",)

    @staticmethod
    def lower(ops, layout):
        return []


@register(Reset)
class ResetLowering:
    @staticmethod
    def key(op, layout):
        if not all_float(layout, [op.dst]):
            return None
        try:
            np.broadcast_to(np.asarray(op.value, dtype=np.float64), op.dst.shape)
        except (ValueError, TypeError):
            return None
        return ("reset",)

    @staticmethod
    def lower(ops, layout):
        dst = [layout.addresses(op.dst).ravel() for op in ops]
        value = [
            np.broadcast_to(np.asarray(op.value, dtype=np.float64), op.dst.shape).ravel()
            for op in ops
        ]
        return [
            Instruction(
                "reset", ops, ints={"dst": np.concatenate(dst)}, floats={"value": np.concatenate(value)}
            )
        ]


def _copy_addresses(op, layout):
    """(src, dst) address arrays for a Copy, or None when Nengo would refuse it."""
    src = layout.addresses(op.src)
    dst = layout.addresses(op.dst)
    try:
        if op.src_slice is not None:
            src = src[op.src_slice]
        if op.dst_slice is not None:
            dst = dst[op.dst_slice]
        src = np.broadcast_to(src, dst.shape)
    except (IndexError, ValueError, TypeError):
        return None
    dst = dst.ravel()
    if not op.inc and len(np.unique(dst)) < len(dst):
        return None  # Nengo raises a BuildError for this; let its make_step say so
    return src.ravel(), dst


def contiguous_runs(src, dst, n_shared):
    """Splits parallel address arrays into runs where both advance by one.

    Returns (src_start, dst_start, length) arrays, or None when runs would not
    be shorter than the element lists.  A run never crosses the shared/state
    boundary (``n_shared``), where consecutive addresses stop being adjacent
    in memory.
    """
    if src.size == 0:
        return None
    breaks = (np.diff(src) != 1) | (np.diff(dst) != 1)
    breaks |= (src[1:] == n_shared) | (dst[1:] == n_shared)
    starts = np.concatenate([[0], np.flatnonzero(breaks) + 1])
    if len(starts) * 4 > src.size:  # mostly scattered: element lists are as cheap
        return None
    lengths = np.diff(np.concatenate([starts, [src.size]]))
    return src[starts], dst[starts], lengths


@register(Copy)
class CopyLowering:
    """``dst[dst_slice] (+)= src[src_slice]``: as contiguous runs where possible."""

    @staticmethod
    def key(op, layout):
        if not all_float(layout, [op.src, op.dst]) or _copy_addresses(op, layout) is None:
            return None
        return ("copy", bool(op.inc))

    @staticmethod
    def lower(ops, layout):
        pairs = [_copy_addresses(op, layout) for op in ops]
        src = np.concatenate([p[0] for p in pairs])
        dst = np.concatenate([p[1] for p in pairs])
        overlap = bool(np.intersect1d(src, dst).size)
        inc = ops[0].inc
        runs = None if overlap else contiguous_runs(src, dst, layout.f_shared)
        if runs is not None:
            return [
                Instruction(
                    "copy_runs",
                    ops,
                    ints={"src": runs[0], "dst": runs[1], "length": runs[2]},
                    scalars={"inc": inc},
                )
            ]
        return [
            Instruction(
                "copy",
                ops,
                ints={"src": src, "dst": dst},
                scalars={"inc": inc, "overlap": overlap},
            )
        ]


def _elementwise_addresses(op, layout):
    """(Y, A, X) address arrays broadcast to Y's shape, or None."""
    try:
        shape = np.broadcast_shapes(op.A.shape, op.X.shape)
        np.broadcast_shapes(shape, op.Y.shape)
        y = layout.addresses(op.Y)
        a = np.broadcast_to(layout.addresses(op.A), op.Y.shape)
        x = np.broadcast_to(layout.addresses(op.X), op.Y.shape)
    except ValueError:
        return None
    if np.broadcast_shapes(shape, op.Y.shape) != op.Y.shape:
        return None
    return y.ravel(), a.ravel(), x.ravel()


def _initial_addresses(op, layout, y):
    """Addresses of the copied constant for the outputs ``y`` of a
    `CopyThenElementwiseInc` (element i of the copy's destination reads element
    i of its source)."""
    dst = layout.addresses(op.copy.dst).ravel()
    src = layout.addresses(op.copy.src).ravel()
    order = np.argsort(dst, kind="stable")
    at = order[np.searchsorted(dst[order], y)]
    assert np.array_equal(dst[at], y), "fusion gave outputs outside the copy"
    return src[at].astype(np.int64)


@register(ElementwiseInc, CopyThenElementwiseInc)
class ElementwiseIncLowering:
    """``Y += A * X`` (``elementwise_inc``); a `CopyThenElementwiseInc` lowers
    to ``Y = I + A * X`` (the optional ``I`` addresses), its own group."""

    @staticmethod
    def key(op, layout):
        fused = isinstance(op, CopyThenElementwiseInc)
        products = op.products if fused else [op]
        signals = [op.copy.src, op.copy.dst] if fused else []
        for p in products:
            if not (all_float(layout, signals + [p.A, p.X, p.Y])
                    and _elementwise_addresses(p, layout)):
                return None
        return ("elementwise_inc", "I") if fused else ("elementwise_inc",)

    @staticmethod
    def lower(ops, layout):
        fused = isinstance(ops[0], CopyThenElementwiseInc)
        parts, inits, nengo_ops = [], [], []
        for op in ops:
            for p in op.products if fused else [op]:
                parts.append(_elementwise_addresses(p, layout))
                if fused:
                    inits.append(_initial_addresses(op, layout, parts[-1][0]))
            nengo_ops.extend(op.parts if fused else [op])
        ints = {
            "Y": np.concatenate([p[0] for p in parts]),
            "A": np.concatenate([p[1] for p in parts]),
            "X": np.concatenate([p[2] for p in parts]),
        }
        if fused:
            ints["I"] = np.concatenate(inits)
        return [Instruction("elementwise_inc", nengo_ops, ints=ints)]
