# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, build, run the tutorial network on nengo_cuda and nengo
#   make test   - create .venv, build, run our tests, Nengo's own test suite and NengoSPA's,
#                 and Nengo's suite on the CUDA backend's host emulator (test-emulator)
#   make sanitize - our tests again, against an ASan/UBSan build of the native module
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest
SOURCES := $(shell find csrc nengo_cuda -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' \)) CMakeLists.txt setup.py pyproject.toml

.PHONY: install demo test test-ours test-nengo test-nengo-float32 test-spa test-emulator bench sanitize clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	touch $@

$(VENV)/.installed: $(VENV)/.created $(SOURCES)
	$(PY) -m pip install -q -e '.[test,tf]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) benchmarks/demo.py

test: test-ours test-nengo test-nengo-float32 test-spa test-emulator

test-ours: install
	$(PYTEST) tests -q

# Nengo's own Simulator tests against nengo_cuda.Simulator (float64), the conformance suite.
test-nengo: install
	cd tests/conformance && ../../$(PYTEST) -c float64.ini --pyargs nengo -q

test-nengo-float32: install
	cd tests/conformance && ../../$(PYTEST) -c float32.ini --pyargs nengo -q

# NengoSPA's own test suite against nengo_cuda.Simulator (float32, the default):
# real models built from every Nengo network NengoSPA uses.
test-spa: install
	cd tests/conformance && PYTHONPATH=. ../../$(PYTEST) -c spa.ini --pyargs nengo_spa -q

# The CUDA backend's host emulator (device="cuda-emulator", docs/cuda.md), which
# runs the GPU's kernels and host logic without a GPU: Nengo's suite on it;
# then our device tests and Nengo's suite again with each launch's logical
# threads in a new order (NC_EMU_ORDER=shuffle), and our device tests with them
# in order (forward): a kernel whose result depends on the order of its threads
# (a race on the GPU) can pass in the default order, reverse, by luck.
EMU_TESTS := tests/test_cuda_kernels.py tests/test_cuda_simulator.py tests/test_cuda_networks.py \
	tests/test_cuda_profile.py
test-emulator: install
	cd tests/conformance && ../../$(PYTEST) -c cuda_emulator.ini --pyargs nengo -q
	NC_EMU_ORDER=shuffle $(PYTEST) -q $(EMU_TESTS)
	NC_EMU_ORDER=forward $(PYTEST) -q $(EMU_TESTS)
	cd tests/conformance && NC_EMU_ORDER=shuffle ../../$(PYTEST) -c cuda_emulator.ini --pyargs nengo -q

bench: install
	$(PY) benchmarks/run.py

# Our tests once more against a native module built with AddressSanitizer and
# UBSan (NC_SANITIZE), in its own build dir: build/sanitize/pkg holds a copy of
# the package with that module, put first on PYTHONPATH (run from tests/, so
# that the source tree's package is not found first).  Python itself is not
# instrumented, so libasan is preloaded (with libstdc++, whose __cxa_throw ASan
# must find at start-up); its leak check is off (Python keeps memory until exit
# by design); any ASan or UBSan report stops the run.  csrc/ is copied into
# pkg/ so that the TensorFlow ops (not sanitized) find their sources.
SAN_DIR := build/sanitize
SAN_PKG := $(abspath $(SAN_DIR))/pkg
SAN_ENV := LD_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libstdc++.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
	NC_SANITIZED=1 PYTHONPATH=$(SAN_PKG)

sanitize: install
	$(PY) -m pip install -q cmake ninja pybind11
	$(VENV)/bin/cmake -S . -B $(SAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
		-DNC_SANITIZE=ON -DNC_ENABLE_CUDA=OFF -DPython_EXECUTABLE=$(abspath $(PY)) \
		-DCMAKE_CXX_COMPILER=$$(command -v $(CXX)) \
		-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=$(SAN_PKG)/nengo_cuda
	$(VENV)/bin/cmake --build $(SAN_DIR)
	$(PY) -c "import shutil; shutil.copytree('nengo_cuda', '$(SAN_PKG)/nengo_cuda', \
		ignore=shutil.ignore_patterns('*.so', '__pycache__'), dirs_exist_ok=True); \
		shutil.copytree('csrc', '$(SAN_PKG)/csrc', dirs_exist_ok=True)"
	cd tests && $(SAN_ENV) $(abspath $(PY)) -c \
		"import nengo_cuda._native as m; assert m.__file__.startswith('$(SAN_PKG)'), m.__file__"
	cd tests && $(SAN_ENV) $(abspath $(PY)) -m pytest -q -p no:cacheprovider .

clean:
	rm -rf $(VENV) build *.egg-info nengo_cuda/*.so
