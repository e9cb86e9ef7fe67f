"""Simulator loaders for running Nengo's own test suite on the CUDA backend.

Used by ``tests/conformance/cuda.ini`` (a GPU) and ``cuda_emulator.ini`` (the
host emulator of the CUDA backend, any machine), through the
``nengo_simloader`` option of Nengo's pytest plugin.
"""

from ..simulator import Simulator


def _on_device(device, dtype, name):
    class DeviceSimulator(Simulator):
        __doc__ = f"`nengo_cuda.Simulator` with ``device={device!r}, dtype={dtype!r}``."

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("device", device)
            kwargs.setdefault("dtype", dtype)
            super().__init__(*args, **kwargs)

    DeviceSimulator.__name__ = DeviceSimulator.__qualname__ = name  # picklable by name
    return DeviceSimulator


CudaFloat32Simulator = _on_device("cuda", "float32", "CudaFloat32Simulator")
CudaFloat64Simulator = _on_device("cuda", "float64", "CudaFloat64Simulator")
EmulatedCudaFloat32Simulator = _on_device(
    "cuda-emulator", "float32", "EmulatedCudaFloat32Simulator"
)


def cuda_float32_simloader(request):
    return CudaFloat32Simulator


def cuda_float64_simloader(request):
    return CudaFloat64Simulator


def emulated_float32_simloader(request):
    return EmulatedCudaFloat32Simulator
