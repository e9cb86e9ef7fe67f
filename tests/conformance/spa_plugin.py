"""pytest plugin: NengoSPA's own test suite against nengo_cuda.Simulator.

NengoSPA's tests take their simulator from a ``Simulator`` fixture that returns
``nengo.Simulator`` (without the old pytest-nengo package), so this plugin puts
nengo_cuda's in its place (``--spa-simulator``: float32, the default dtype, or
float64; ``cuda`` or ``cuda-emulator``: the CUDA backend on a GPU or the host
emulator; ``nengo`` runs the reference for comparison). Run from this folder:
``PYTHONPATH=. pytest -c spa.ini --pyargs nengo_spa`` (``make test-spa``).
"""

import zlib

import nengo
import numpy as np
import pytest
from nengo.rc import rc

# NengoSPA 2.0.0's own failures with NumPy 2 and Nengo 4.1: each fails the same
# way on nengo.Simulator (checked 2026-11-30: `--spa-simulator nengo`), so they
# say nothing about us (two statistical tests failed or passed with the order of
# the tests until the global generator was seeded per test, below). strict: if one starts to pass, the list is stale.
KNOWN_FAILURES = {
    "ast/tests/test_symbolic.py::test_divide_pointer_symbol_by_fixed_scalar[2.0]":
        "NumPy 2 scalar repr 'np.float64(2.0)' in an expression NengoSPA evals",
    "modules/tests/test_associative_memory.py::test_am_default_output":
        "nengo_spa.examine uses np.array(copy=False), an error in NumPy 2",
    "modules/tests/test_associative_memory.py::test_am_spa_keys_as_expressions":
        "nengo_spa.examine uses np.array(copy=False), an error in NumPy 2",
    "tests/test_examine.py::test_similarity":
        "nengo_spa.examine uses np.array(copy=False), an error in NumPy 2",
    "tests/test_examine.py::test_text":
        "nengo_spa.examine uses np.array(copy=False), an error in NumPy 2",
    "modules/tests/test_thalamus.py::test_errors":
        "uses an ABC class as a context manager, which Python 3.11 refuses",
    "algebras/tests/test_algebras.py::test_binding_and_invert"
    "[TvtbAlgebra-ElementSidedness.TWO_SIDED-36]":
        "random vectors: 6 of 8 unbind above 0.6, the test wants 7 (no simulator)",
}


def pytest_addoption(parser):
    parser.addoption("--spa-simulator", default="float32",
                     choices=("float32", "float64", "cuda-emulator", "cuda", "nengo"),
                     help="the simulator NengoSPA's tests get (cuda, cuda-emulator: "
                          "the CUDA backend, float32)")


def pytest_configure(config):
    which = config.getoption("--spa-simulator")
    if which != "nengo":
        from nengo_cuda import testing  # noqa: PLC0415
        from nengo_cuda.backends import cuda_testing  # noqa: PLC0415

        nengo.Simulator = {"float32": testing.Float32Simulator,
                           "float64": testing.Float64Simulator,
                           "cuda-emulator": cuda_testing.EmulatedCudaFloat32Simulator,
                           "cuda": cuda_testing.CudaFloat32Simulator}[which]


def pytest_ignore_collect(collection_path, config):
    # runs the example notebooks: needs Jupyter, and builds nothing we would not
    return collection_path.name == "test_examples.py" or None


def pytest_collection_modifyitems(config, items):
    for item in items:
        reason = KNOWN_FAILURES.get(item.nodeid.split("nengo_spa/", 1)[-1])
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


def pytest_runtest_setup(item):
    # Some of NengoSPA's tests draw from NumPy's global generator, so their
    # outcome depended on which tests ran before; seed it per test instead.
    np.random.seed(zlib.crc32(item.nodeid.encode()))
    rc.reload_rc([])
    rc["decoder_cache"]["enabled"] = "False"
    rc["progress"]["progress_bar"] = "False"
