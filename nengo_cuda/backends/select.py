"""Choosing a backend from the ``device`` argument.

- ``"cpu"``: the C++ step loop.
- ``"cuda"``: CUDA kernels; raises a `ValidationError` naming the cause when
  no CUDA device is usable (built without nvcc, no driver, no device, no CuPy).
- ``None``: CUDA when a device is really usable, else the CPU.
- ``"cuda-emulator"``: the CUDA backend's logic and kernels run on the host
  (slow; for testing the CUDA backend on machines without a GPU).
"""

import functools

from nengo.exceptions import ValidationError

from .. import _native

DEVICES = (None, "cpu", "cuda", "cuda-emulator")


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
    """The backend class for ``device`` (None: the best available)."""
    from .cpu import CpuBackend  # noqa: PLC0415

    if device == "cpu":
        return CpuBackend
    if device is None or device == "cuda":
        ok, why = cuda_status()
        if ok:
            from .cuda import CudaBackend  # noqa: PLC0415

            return CudaBackend
        if device is None:
            return CpuBackend
        raise ValidationError(f"device='cuda' is unavailable: {why}", attr="device")
    if device == "cuda-emulator":
        from .cuda import EmulatedCudaBackend  # noqa: PLC0415

        return EmulatedCudaBackend
    raise ValidationError(
        f"Unknown device {device!r}; expected None, 'cpu' or 'cuda'", attr="device"
    )
