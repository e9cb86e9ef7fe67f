"""Element runs of Nengo signals within their base signals.

Operators that the planner rewrites (`nengo_cuda.fusion`,
`nengo_cuda.splitting`) need two things Nengo's `Signal` does not give
directly: the elements of the base a view may touch, and a view of part of a
view.  Slicing a view with Nengo's ``Signal.__getitem__`` keeps the right
NumPy array but records its offset from the view instead of from the base
(``base[20:68][0:20].elemoffset == 0``), and the layout places signals by that
offset; `run` computes it from the base.
"""

from nengo.builder.signal import Signal


def span(sig):
    """(first, last + 1) element of ``sig`` within its base (an over-estimate
    for views that skip elements; all of a sparse signal, which has no views)."""
    if sig.sparse:
        return (0, sig.size)
    reach = [(n - 1) * s for n, s in zip(sig.shape, sig.elemstrides) if n > 0]
    return (sig.elemoffset + sum(min(0, r) for r in reach),
            sig.elemoffset + sum(max(0, r) for r in reach) + 1)


def forward_runs(*signals):
    """Whether ``signals`` are 1-D, of one shape, with positive strides (so
    element i of each is one run's i-th element, and `run` can cut them)."""
    return all(s.ndim == 1 and s.shape == signals[0].shape and s.elemstrides[0] > 0
               for s in signals)


def overlap(a, b):
    """Whether signals ``a`` and ``b`` may share elements (their spans meet)."""
    if a.base is not b.base or a.size == 0 or b.size == 0:
        return False
    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1


def run(sig, start, stop):
    """Elements ``start:stop`` of the 1-D signal ``sig``, as a view of its base."""
    if sig.ndim != 1:
        raise ValueError(f"{sig}: cannot take elements of a signal of shape {sig.shape}")
    return leading(sig, start, stop)


def leading(sig, start, stop):
    """``sig[start:stop]`` (elements of a 1-D signal, rows of a 2-D one) as a
    view of its base.  (Nengo's ``Signal.__getitem__`` on a view gives an
    offset from the view, where a view's offset is from its base.)"""
    if sig.ndim == 0 or not 0 <= start < stop <= sig.shape[0]:
        raise ValueError(f"{sig}: cannot take {start}:{stop} of a signal of shape "
                         f"{sig.shape}")
    if start == 0 and stop == sig.shape[0]:
        return sig
    return Signal(sig.initial_value[start:stop], name=f"{sig.name}[{start}:{stop}]",
                  base=sig.base, offset=sig.offset + start * sig.strides[0],
                  readonly=sig.readonly)
