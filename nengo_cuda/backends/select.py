"""Choosing a backend from the ``device`` argument.

- ``"cpu"``: the C++ step loop.
- ``"cuda"``: CUDA kernels on CuPy's current device, ``"cuda:N"`` on device N;
  raises a `ValidationError` naming the cause when no CUDA device is usable
  (built without nvcc, no driver, no device, no CuPy, no device N).
- ``None``: CUDA when a device is really usable, else the CPU.
- ``"cuda-emulator"``: the CUDA backend's logic and kernels run on the host
  (slow; for testing the CUDA backend on machines without a GPU).

NengoDL's TensorFlow device names work too, so that ``nengo_dl.Simulator(net,
device="/gpu:0")`` ports unchanged: ``"/cpu:0"`` is ``"cpu"``, ``"/gpu:N"``
(or ``"/device:GPU:N"``) is ``"cuda:N"``, except that without a usable CUDA
device it runs on the CPU with a warning, as TensorFlow's soft placement runs
NengoDL's ``/gpu:0`` on a machine without a GPU (``"cuda"`` names our
backend, and raises).
"""

import warnings

import functools
import re

from nengo.exceptions import ValidationError

from .. import _native

DEVICES = (None, "cpu", "cuda", "cuda:N", "cuda-emulator", "/cpu:0", "/gpu:N")

_INDEXED = re.compile(r"(cuda|gpu|cpu):(\d+)")


def parse_device(device):
    """``(kind, index)`` for a ``device`` argument: kind is None, "cpu", "cuda"
    or "cuda-emulator"; index is the CUDA device number, or None for CuPy's
    current device."""
    if device is None:
        return None, None
    if not isinstance(device, str):
        raise ValidationError(
            f"device must be a string or None (got {device!r}); expected one of "
            + ", ".join(map(repr, DEVICES)), attr="device")
    if device in ("cpu", "cuda", "cuda-emulator"):
        return device, None
    name = device.lower()
    if name.startswith("/"):  # TensorFlow's names, as NengoDL takes them
        name = name[len("/device:"):] if name.startswith("/device:") else name[1:]
    match = _INDEXED.fullmatch(name)
    if match is not None:
        kind, index = match.group(1), int(match.group(2))
        return ("cpu", None) if kind == "cpu" else ("cuda", index)
    raise ValidationError(
        f"Unknown device {device!r}; expected one of " + ", ".join(map(repr, DEVICES)),
        attr="device")


@functools.lru_cache(maxsize=None)
def cuda_status():
    """(available, reason): whether the CUDA backend can run here, and why not.

    Checked once per process, cheapest first: the build, the driver and
    devices (through the CUDA runtime linked into ``_native``), then CuPy.
    """
    if not getattr(_native, "built_with_cuda", False):
        return False, (
            "nengo_cuda was built without nvcc (rebuild with the CUDA toolkit on the PATH)"
        )
    n, why = _native.cuda_device_count()
    if n == 0:
        return False, f"no usable CUDA device or driver ({why})"
    try:
        import cupy  # noqa: PLC0415
    except ImportError as e:
        return False, f"CuPy is not installed: pip install 'nengo_cuda[cuda]' ({e})"
    try:
        n_cupy = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - CuPy raises its own CUDA error types
        return False, f"CuPy cannot use the CUDA device: {e}"
    if n_cupy == 0:
        return False, "CuPy sees no CUDA device"
    return True, f"{n} CUDA device(s)"


def select_backend(device):
    """The backend class for ``device`` (None: the best available); for a
    numbered CUDA device, the class bound to that device."""
    from .cpu import CpuBackend  # noqa: PLC0415

    kind, index = parse_device(device)
    if kind == "cpu":
        return CpuBackend
    if kind == "cuda-emulator":
        from .cuda import EmulatedCudaBackend  # noqa: PLC0415

        return EmulatedCudaBackend
    ok, why = cuda_status()
    if not ok:
        if kind is None:
            return CpuBackend
        if device.startswith("/"):
            warnings.warn(f"device={device!r}: {why}; running on the CPU (as TensorFlow "
                          "places it where there is no GPU)", UserWarning, stacklevel=3)
            return CpuBackend
        raise ValidationError(f"device={device!r} is unavailable: {why}", attr="device")
    from .cuda import CudaBackend  # noqa: PLC0415

    if index is None:
        return CudaBackend
    n = cuda_device_count()
    if index >= n:
        raise ValidationError(
            f"device={device!r} is unavailable: CUDA device {index} does not exist "
            f"({n} device(s), numbered from 0)", attr="device")
    return functools.partial(CudaBackend, device_index=index)


def cuda_device_count():
    """The number of CUDA devices CuPy sees (call only when `cuda_status` is ok)."""
    import cupy  # noqa: PLC0415

    return int(cupy.cuda.runtime.getDeviceCount())
