# Two commands set up everything on a fresh machine: `make repro` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin

# DVC stages call `python`: the venv's interpreter must come first on PATH.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup repro test bench bench-train check-repro
setup: $(VENV)/.installed

# The pipeline's packages, then the runtime package (birds_onnx, the birds-predict command) as
# an editable install, so the stages and the command run the checkout's code.
$(VENV)/.installed: requirements.txt requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt -c requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

repro: setup
	dvc repro

test: setup
	python -m pytest

bench: setup
	python -m stages.tools.bench

# img/s of a full training step: fp32 eager beside the setting params.yaml chooses; then the
# training loop over fixed steps: 1 vs 2 processes, in memory vs read from disk at 190 and
# 19,000 images, peak memory (about 0.5 GB of temporary files and 5 GB of RAM at its largest)
bench-train: setup
	python -m stages.tools.train_bench

# dvc repro twice, each in a fresh clone of HEAD, on the tests' tiny profile; fails if
# dvc status is not clean after a run or if the two runs' outputs differ (timings aside)
check-repro: setup
	python -m stages.tools.check_repro --tiny
