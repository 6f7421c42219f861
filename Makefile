# `make demo` and `make test` create (or reuse) .venv/ and install the project into it.
# TORCH_SPEC picks the torch build installed before everything else; the default is the
# CPU build. On a CUDA machine use e.g. `make demo TORCH_SPEC='torch==2.13.0'` with the
# matching index in PIP_EXTRA_INDEX_URL.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow install browser clean pretrain pretrain-full

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet '$(TORCH_SPEC)'
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The demo: fine-tune the shipped pretrained model (models/arc-efe-tiny) for a minute on fresh
# generated tasks (small grids, memory on), with training accuracy, the memory bank and
# in-context accuracy after each epoch; then test-time training + voting on a fixed handful of
# ARC-AGI-1 evaluation tasks (README, "The demo", says how they were chosen), the official
# score, and the HTML report of the run with those tasks drawn. About 1.5 minutes on 2 CPU cores.
DEMO_DIR ?= runs
DEMO_RUN := $(DEMO_DIR)/demo_$(shell date +%Y%m%d_%H%M%S)
DEMO_TASKS := 66e6c45b e633a9e5 00576224
DEMO_TTT_STEPS := 48
demo: $(STAMP)
	$(PY) -m arc_efe train --init models/arc-efe-tiny --data synthetic/calibration:5+synthetic:5 \
		--mix 0.7,0.3 --epochs 3 --max-batches 25 --batch-size 8 --agent-lr 2e-4 --warmup-steps 5 \
		--train-eval-queries 32 --max-val-tasks 16 --icl-tasks 32 --device cpu --seed 0 \
		--output-dir $(dir $(DEMO_RUN)) --run-name $(notdir $(DEMO_RUN))
	$(PY) -m arc_efe evaluate --data arc-agi-1/evaluation --task-ids $(DEMO_TASKS) \
		--checkpoint $(DEMO_RUN) --device cpu --ttt-steps $(DEMO_TTT_STEPS) --no-progress \
		--output-dir $(DEMO_RUN)/eval
	$(PY) -m arc_efe report $(DEMO_RUN)

# The pretraining recipe (README, "Pretraining on generated tasks"): generated tasks of the seven
# calibration families and of all 53 families with grids growing from 3x3 to 8x8, mixed with
# ARC-AGI-1 training tasks under views (those outside the development split arc-agi-1/dev, on
# which choices are made); the risk term alone, no memory. About 90 minutes on one CPU
# core (models/arc-efe-tiny was made by it with --positions 2d-mirror, before 2d-paired and 2d-match existed); set PRETRAIN_ARGS to change it, e.g. PRETRAIN_ARGS='--device cuda --model-name small'.
PRETRAIN_ARGS ?= --device cpu
pretrain: $(STAMP)
	$(PY) -m arc_efe train --data synthetic/calibration:8+synthetic:8+arc-agi-1/training-no-dev \
		--mix 0.55,0.35,0.1 --curriculum --positions 2d-match --model-name tiny --epochs 8 --max-batches 1800 \
		--batch-size 8 --agent-lr 1e-3 --warmup-steps 100 --max-len 768 --risk-weight 1 \
		--consistency-weight 0 --bidirectional-weight 0 --step-weight 0 --no-memory --icl-tasks 64 \
		--max-val-tasks 16 --train-eval-queries 16 --save-every-steps 500 --seed 0 \
		--output-dir runs --run-name pretrain_$(shell date +%Y%m%d_%H%M%S) $(PRETRAIN_ARGS)

# The full-size stage (README, "Pretraining to full size"): from the small-grid stage's weights
# (PRETRAIN_INIT: the shipped model by default; PRETRAIN_INIT= starts from random weights),
# generated grids grow from 3x3 to 30x30 over the first half, whole ARC tasks up to 8,192
# tokens in packed rows of 8,192, and ARC tasks are 40% of the queries: ARC-AGI-1 training
# outside the development split and the ARC-AGI-2 training tasks in neither evaluation set
# (one pool, drawn by query). Hours on a CPU: stop it at any time, and `arc-efe train
# --resume runs/pretrain_full_...` goes on from its last checkpoint (every 100 steps).
PRETRAIN_INIT ?= models/arc-efe-tiny
pretrain-full: $(STAMP)
	$(PY) -m arc_efe train $(if $(PRETRAIN_INIT),--init $(PRETRAIN_INIT),--model-name tiny) \
		--data synthetic/calibration+synthetic+arc-agi-1/training-no-dev+arc-agi-2/training-extra \
		--mix 0.3,0.3,0.2,0.2 --curriculum --epochs 4 --max-batches 1000 --batch-size 8 --agent-lr 5e-4 \
		--warmup-steps 50 --max-len 8192 --max-tokens 8192 --risk-weight 1 --consistency-weight 0 \
		--bidirectional-weight 0 --step-weight 0 --no-memory --icl-tasks 64 --max-val-tasks 16 \
		--train-eval-queries 16 --save-every-steps 100 --seed 0 \
		--output-dir runs --run-name pretrain_full_$(shell date +%Y%m%d_%H%M%S) $(PRETRAIN_ARGS)

# The report's browser test drives Debian's Chromium through Playwright (Playwright's own
# browser download is not used). Installed here when missing and apt-get can run as root (as in
# CI); elsewhere that test is skipped and says why.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing chromium for the report's browser test"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; \
	else \
		echo "note: no chromium, and apt-get cannot install it here: the browser test will be skipped"; \
	fi

test: $(STAMP) browser
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis src/*.egg-info
