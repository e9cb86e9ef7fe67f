"""Warnings that point at the user's line.

``warnings.warn(..., stacklevel=n)`` needs the number of frames between the
warning and the user's call, which changes whenever a helper is added between
them (and differs between ``sim.fit`` and ``sim.evaluate`` for one helper).
`warn` counts them: the warning points at the first frame outside nengo_cuda.
"""

import sys
import warnings


def user_stacklevel():
    """The ``stacklevel`` that, given to ``warnings.warn`` by the caller of
    this function, names the first frame outside the nengo_cuda package."""
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_globals.get("__name__") or "").startswith("nengo_cuda"):
        frame, level = frame.f_back, level + 1
    return level


def warn(message, category=UserWarning):
    """``warnings.warn`` at the user's line (see the module doc)."""
    warnings.warn(message, category, stacklevel=user_stacklevel())
