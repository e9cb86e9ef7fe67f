"""Choosing a backend from the ``device`` argument."""

from nengo.exceptions import ValidationError

from .. import _native


def cuda_status():
    """(available, reason): whether a CUDA device can be used, and why not."""
    n, why = _native.cuda_device_count()
    if n == 0:
        return False, why
    return False, (
        f"{n} CUDA device(s) visible, but the CUDA backend is not implemented yet "
        "in this build (see issue 3)"
    )


def select_backend(device):
    """The backend class for ``device`` (None: the best available)."""
    from .cpu import CpuBackend  # noqa: PLC0415

    if device is None or device == "cpu":
        return CpuBackend
    if device == "cuda":
        ok, why = cuda_status()
        if not ok:
            raise ValidationError(f"device='cuda' is unavailable: {why}", attr="device")
    raise ValidationError(
        f"Unknown device {device!r}; expected None, 'cpu' or 'cuda'", attr="device"
    )
