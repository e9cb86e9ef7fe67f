"""Helpers shared by lowerings."""

import numpy as np

from ..layout import FLOAT


def all_float(layout, signals):
    """True when every signal lives in the float pool (so kernels can address it)."""
    return all(s is not None and layout.pool_of(s) == FLOAT for s in signals)


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
