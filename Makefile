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

# A short training run on the embedded ARC-AGI-1 training set (tiny backbone, CPU), with
# training accuracy and pass@2 validation accuracy on held-out tasks after each epoch.
demo: $(STAMP)
	$(PY) -m arc_efe train --data arc-agi-1/training --epochs 2 --max-batches 20 \
		--agent-lr 1e-3 --device cpu --train-eval-queries 16 --max-val-tasks 16 --output-dir runs

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis src/*.egg-info
