import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from nengo_cuda.testing import baseline_simd

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def rng(request):
    # deterministic per test
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.RandomState(seed)


@pytest.fixture(params=["native", "baseline"])
def simd(request):
    """The test runs with the CPU kernels' native SIMD code (AVX2 where the CPU
    has it) and again with their baseline code (SSE2 on x86-64): CI machines
    have AVX2, so the baseline code would otherwise never run."""
    if request.param == "native":
        yield request.param
    else:
        with baseline_simd():
            yield request.param
