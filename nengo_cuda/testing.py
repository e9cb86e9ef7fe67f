"""Simulator loaders for running Nengo's own test suite against nengo_cuda.

Used by ``tests/conformance/*.ini`` through the ``nengo_simloader`` option of
Nengo's pytest plugin: ``pytest -c tests/conformance/float64.ini --pyargs nengo``.
"""

from .simulator import Simulator


def _with_dtype(dtype, name):
    class DtypeSimulator(Simulator):
        __doc__ = f"`nengo_cuda.Simulator` with ``dtype={dtype!r}``."

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("dtype", dtype)
            super().__init__(*args, **kwargs)

    DtypeSimulator.__name__ = DtypeSimulator.__qualname__ = name  # picklable by name
    return DtypeSimulator


Float64Simulator = _with_dtype("float64", "Float64Simulator")
Float32Simulator = _with_dtype("float32", "Float32Simulator")


def float64_simloader(request):
    return Float64Simulator


def float32_simloader(request):
    return Float32Simulator


def reference_simloader(request):
    """`nengo.Simulator` itself: the baseline for the conformance comparison."""
    import nengo  # noqa: PLC0415

    return nengo.Simulator
