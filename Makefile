# `make demo` and `make test` create (or reuse) .venv/ and install the project into it.
# TORCH_SPEC picks the torch build installed before everything else; the default is the
# CPU build. On a CUDA machine use e.g. `make demo TORCH_SPEC='torch==2.13.0'` with the
# matching index in PIP_EXTRA_INDEX_URL.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow install clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet '$(TORCH_SPEC)'
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m arc_efe data validate arc-agi-1/evaluation
	$(PY) -m arc_efe data show arc-agi-1/training 007bbfb7

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis src/*.egg-info
