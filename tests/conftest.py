import os
import sys
import zlib
from pathlib import Path

# TensorFlow runs channels-first (NCHW, NCDHW) convolutions on a CPU only
# through oneDNN, which it turns on by default only where the CPU has AVX-512
# VNNI/BF16 or AMX: elsewhere (an AVX2 machine) the Keras reference models of
# the converter tests could not run their channels-first layers at all
# ("Conv3DBackpropInputOpV2 only supports NDHWC on the CPU").  Set before
# TensorFlow is first imported; a value the caller set is kept.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np
import pytest

from nengo_cuda import _native
from nengo_cuda.testing import simd_level

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def rng(request):
    # deterministic per test
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.RandomState(seed)


@pytest.fixture(params=["native", "avx2", "baseline"])
def simd(request):
    """The test runs with the CPU kernels' native SIMD code (the widest the CPU
    has), again capped at AVX2 (where the CPU has AVX-512: else that is the
    native run) and with their baseline code (SSE2 on x86-64): CI machines run
    AVX2 or AVX-512, so the narrower code would otherwise never run."""
    if request.param == "native":
        yield request.param
    elif request.param == "avx2" and _native.cpu_simd_level() != "avx512":
        pytest.skip("the CPU has no AVX-512: its native run is the AVX2 code")
    else:
        with simd_level(request.param):
            yield request.param
