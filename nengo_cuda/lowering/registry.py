"""Registry mapping Nengo operator types to lowerings."""

_LOWERINGS = {}


class Lowering:
    """How to lower one operator type; see `nengo_cuda.lowering`."""

    def __init__(self, key, lower):
        self.key = key
        self.lower = lower


def register(*op_types):
    """Decorator registering ``cls`` (with ``key`` and ``lower``) for ``op_types``."""

    def decorator(cls):
        for op_type in op_types:
            _LOWERINGS[op_type] = Lowering(cls.key, cls.lower)
        return cls

    return decorator


def find_lowering(op):
    """The lowering registered for ``type(op)`` exactly (subclasses may differ)."""
    return _LOWERINGS.get(type(op))
