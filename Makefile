# Two commands set up everything on a fresh machine: `make repro` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin

# DVC stages call `python`: the venv's interpreter must come first on PATH.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup repro test bench bench-train check-repro
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt -c requirements.lock
	touch $@

repro: setup
	dvc repro

test: setup
	python -m pytest

bench: setup
	python -m stages.bench

# img/s of a full training step: fp32 eager beside the setting params.yaml chooses
bench-train: setup
	python -m stages.train_bench

# dvc repro twice, each in a fresh clone of HEAD, on a small profile (9 classes of 3 small
# images, 1 and 2 epochs); fails if dvc status is not clean or the runs' outputs differ
REPRO_PROFILE := --set crawl.synthetic.total_images=27 --set crawl.synthetic.min_size=48 \
	--set crawl.synthetic.max_size=96 --set split.train=18 --set split.test=9 \
	--set preprocess.resize=72 --set preprocess.crop=64 --set 'train.epochs=[1,2]' \
	--set train.batch_size=4 --set evaluate.passes=1 --set evaluate.warmup=1 \
	--set evaluate.timed_runs=3 --set evaluate.batch_size=2
check-repro: setup
	python -m stages.check_repro $(REPRO_PROFILE)
