# Two commands set up everything on a fresh machine: `make repro` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
# No $(abspath): make splits words on spaces, and the checkout's path may have some. Quoted below.
BIN    := $(CURDIR)/$(VENV)/bin

# DVC stages call `python`: the venv's interpreter must come first on PATH.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup repro speed test bench bench-int8 bench-train bench-scale check-repro check-repro-lock mutate
setup: $(VENV)/.installed

# The pipeline's packages, then the runtime package (birds_onnx, the birds-predict command) as
# an editable install, so the stages and the command run the checkout's code.
$(VENV)/.installed: requirements.txt requirements.lock pyproject.toml
	test -x "$(BIN)/python" || $(PYTHON) -m venv "$(VENV)"
	"$(BIN)/python" -m pip install --quiet -r requirements.txt -c requirements.lock
	"$(BIN)/python" -m pip install --quiet --no-deps -e .
	touch "$@"

# The machine stage first, forced: on a machine other than the one that made the committed
# results its file changes and evaluate measures this machine's speeds; on the same machine
# nothing changes and the pipeline stays up to date. ARGS: what to pass on to dvc repro,
# e.g. `make repro ARGS=train@20` (one stage and what it needs).
repro: setup
	dvc repro --force --single-item machine
	dvc repro $(ARGS)

# Measure the speeds again on this machine (every evaluate@N, then the report), e.g. once it is idle
speed: setup
	dvc repro --force --single-item machine
	dvc repro --force --single-item --glob 'evaluate@*'
	dvc repro

test: setup
	python -m pytest

bench: setup
	python -m stages.tools.bench

# where the int8 model's time goes at batch 1: per ResNet stage and kind of node, against the int8 GEMM peak
bench-int8: setup
	python -m stages.tools.int8_profile

# img/s of a full training step: fp32 eager beside the setting params.yaml chooses; then the
# training loop over fixed steps: 1 vs 2 processes, in memory vs read from disk at 190 and
# 19,000 images, peak memory (about 0.5 GB of temporary files and 5 GB of RAM at its largest)
bench-train: setup
	python -m stages.tools.train_bench

# the crawl stage at 190, 1,900 and 19,000 synthetic images and a folder of the largest: time,
# peak memory with its workers, the duplicate search's share; then 1 vs 2 workers
bench-scale: setup
	python -m stages.tools.scale_bench

# dvc repro twice, each in a fresh clone of HEAD, on the tests' tiny profile; fails if
# dvc status is not clean after a run or if the two runs' outputs differ (timings aside)
check-repro: setup
	python -m stages.tools.check_repro --tiny

# The default pipeline in a fresh clone of HEAD, every output compared with the committed
# dvc.lock: identical, or the accuracy deltas and the likely cause. Takes the full pipeline's time.
check-repro-lock: setup
	python -m stages.tools.check_repro --against-lock

# Mutation testing of every module with logic (mutmut, settings in pyproject.toml): each mutant against the
# unit tests that reach it; prints the share killed per module and every survivor. Not in `make test`.
mutate: setup
	python -m stages.tools.mutate
