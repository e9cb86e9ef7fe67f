"""Helpers shared by lowerings."""

import numpy as np

from ..layout import FLOAT


def memoised(layout, name, op, compute):
    """``compute(op, layout)``, computed once per layout, operator and ``name``."""
    cache = layout.__dict__.setdefault("_lowering_memo", {})
    key = (name, op)
    if key not in cache:
        cache[key] = compute(op, layout)
    return cache[key]


def all_float(layout, signals):
    """True when every signal lives in the float pool (so kernels can address it)."""
    return all(s is not None and layout.pool_of(s) == FLOAT for s in signals)


def vector_view(layout, sig, start=0):
    """(address, stride) of a 1-D signal, from element ``start``."""
    (stride,) = layout.strides(sig)
    return layout.address(sig) + start * stride, stride


def matrix_view(layout, sig):
    """(address, row stride, column stride) of a 2-D signal."""
    rs, cs = layout.strides(sig)
    return layout.address(sig), rs, cs


def address_span(layout, sig):
    """(lowest, highest) address of a signal's elements; None when it is empty."""
    if sig.size == 0:
        return None
    lo = hi = layout.address(sig)
    for n, s in zip(sig.shape, layout.strides(sig)):
        lo, hi = lo + min(0, (n - 1) * s), hi + max(0, (n - 1) * s)
    return lo, hi


def color_disjoint_spans(items, span):
    """Split ``items`` into groups whose ``span(item)`` address ranges do not overlap.

    Like `color_disjoint` for items that write large views, where a range
    (conservative for interleaved views) is cheaper than a set of addresses.
    """
    groups, used = [], []
    for item in items:
        lo_hi = span(item)
        for group, spans in zip(groups, used):
            if lo_hi is None or all(lo_hi[1] < lo or hi < lo_hi[0] for lo, hi in spans):
                group.append(item)
                if lo_hi is not None:
                    spans.append(lo_hi)
                break
        else:
            groups.append([item])
            used.append([lo_hi] if lo_hi is not None else [])
    return groups


def per_element(value, n):
    """A scalar or length-``n`` parameter as ``n`` float64 values."""
    return np.broadcast_to(np.asarray(value, dtype=np.float64).ravel(), (n,))


def color_disjoint(items, written):
    """Split ``items`` into groups whose ``written(item)`` address sets are disjoint.

    Kernels run the members of one group in parallel, so two members must never
    increment the same element.  Greedy: each item joins the first group it fits.
    """
    groups, used = [], []
    for item in items:
        addrs = set(np.asarray(written(item)).ravel().tolist())
        for group, seen in zip(groups, used):
            if seen.isdisjoint(addrs):
                group.append(item)
                seen |= addrs
                break
        else:
            groups.append([item])
            used.append(addrs)
    return groups
