import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def rng(request):
    # deterministic per test
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.RandomState(seed)
