"""Simulator loaders for running Nengo's own test suite against nengo_cuda.

Used by ``tests/conformance/*.ini`` through the ``nengo_simloader`` option of
Nengo's pytest plugin: ``pytest -c tests/conformance/float64.ini --pyargs nengo``.
Also the splitting policy of CPU runs and the kernels' SIMD level, for tests
(``forced_splitting``, ``simd_level``, ``baseline_simd``).
"""

import contextlib
import os

from . import _native
from .simulator import Simulator


@contextlib.contextmanager
def split_policy(min_work=None, ignore_load=None):
    """For the scope: instructions of CPU runs split their work over threads
    from ``min_work`` element updates a step (csrc/cpu/parallel.h), also on a
    busy machine when ``ignore_load``; None leaves a setting as it is."""
    old = _native.set_split_policy(min_work, ignore_load)
    try:
        yield
    finally:
        _native.set_split_policy(*old)


def forced_splitting():
    """Every instruction that can split its work does, whatever its size and
    the machine's load (tests of the split path)."""
    return split_policy(min_work=1, ignore_load=True)


def no_splitting():
    """Every instruction runs on the run's own thread."""
    return split_policy(min_work=2**62)


@contextlib.contextmanager
def simd_level(level):
    """For the scope: CPU kernels built in it use at most ``level``'s SIMD code
    ('baseline': SSE2 on x86-64, 'avx2', 'avx512'), even where the CPU runs
    wider code (tests of the narrower code, which CI machines would skip)."""
    old = _native.set_simd_level(level)
    try:
        yield
    finally:
        _native.set_simd_level(old)


def baseline_simd():
    """For the scope: CPU kernels built in it use their baseline (SSE2) code."""
    return simd_level("baseline")


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


def _session_settings():
    """Settings of a conformance session from the environment:
    NC_FORCED_SPLITTING=1 splits every instruction over threads,
    NC_BASELINE_SIMD=1 runs the kernels' baseline (SSE2) code (as NC_SIMD=baseline,
    which the native module reads itself)."""
    if os.environ.get("NC_FORCED_SPLITTING", "") not in ("", "0"):
        _native.set_split_policy(min_work=1, ignore_load=True)
    if os.environ.get("NC_BASELINE_SIMD", "") not in ("", "0"):
        _native.set_simd_level("baseline")


def float64_simloader(request):
    _session_settings()
    return Float64Simulator


def float32_simloader(request):
    _session_settings()
    return Float32Simulator


def reference_simloader(request):
    """`nengo.Simulator` itself: the baseline for the conformance comparison."""
    import nengo  # noqa: PLC0415

    return nengo.Simulator
