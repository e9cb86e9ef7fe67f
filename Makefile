# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, build, run the tutorial network on nengo_cuda and nengo
#   make test   - create .venv, build, run our tests and Nengo's own test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest
SOURCES := $(shell find csrc nengo_cuda -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' \)) CMakeLists.txt setup.py pyproject.toml

.PHONY: install demo test test-ours test-nengo test-nengo-float32 bench sanitize clean

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

test: test-ours test-nengo test-nengo-float32

test-ours: install
	$(PYTEST) tests -q

# Nengo's own Simulator tests against nengo_cuda.Simulator (float64), the conformance suite.
test-nengo: install
	cd tests/conformance && ../../$(PYTEST) -c float64.ini --pyargs nengo -q

test-nengo-float32: install
	cd tests/conformance && ../../$(PYTEST) -c float32.ini --pyargs nengo -q

bench: install
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info nengo_cuda/*.so
