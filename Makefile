# Two commands set up everything on a fresh machine: `make repro` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
# No $(abspath): make splits words on spaces, and the checkout's path may have some. Quoted below.
BIN    := $(CURDIR)/$(VENV)/bin

# DVC stages call `python`: the venv's interpreter must come first on PATH.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1

.PHONY: setup setup-s3 repro speed test loop-crawl push pull bench bench-int8 bench-train bench-scale check-repro check-repro-lock mutate test-random
setup: $(VENV)/.installed

# The pipeline's packages, then the runtime package (birds_onnx, the birds-predict command) as
# an editable install, so the stages and the command run the checkout's code.
$(VENV)/.installed: requirements.txt requirements.lock pyproject.toml
	test -x "$(BIN)/python" || $(PYTHON) -m venv "$(VENV)"
	"$(BIN)/python" -m pip install --quiet -r requirements.txt -c requirements.lock
	"$(BIN)/python" -m pip install --quiet --no-deps -e .
	touch "$@"

# An S3 remote: DVC's S3 plugin and the S3 server its tests run against (requirements-s3.txt)
setup-s3: $(VENV)/.installed-s3

$(VENV)/.installed-s3: $(VENV)/.installed requirements-s3.txt requirements.lock
	"$(BIN)/python" -m pip install --quiet -r requirements-s3.txt -c requirements.lock
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

test: setup setup-s3
	python -m pytest

# The suite in a random order (pytest-randomly: modules and the tests in each shuffled, the modules
# with slow tests still first; random seeds reset per test): a test that needs another to have run
# first fails. `make test-random SEED=1234` repeats an order (each run prints its seed at the top).
SEED ?= default
test-random: setup setup-s3
	python -m pytest -p randomly --randomly-seed=$(SEED)

# The crawl's tests with processes, threads and timeouts (decoding workers, hostile servers), LOOPS
# times in a row, one process: fails at the first run that fails. A green run proves little for such code.
LOOPS ?= 50
CRAWL_RACE_TESTS := tests/test_sandbox.py tests/test_nasty.py tests/test_hostile.py tests/test_crawl.py::test_a_decoder_that_hangs_or_dies_while_others_wait_is_rejected_with_why_and_without_its_bytes
loop-crawl: setup
	log=$$(mktemp); for i in $$(seq $(LOOPS)); do \
		python -m pytest -q -n 0 -p no:cacheprovider $(CRAWL_RACE_TESTS) > "$$log" 2>&1 || { cat "$$log"; exit 1; }; \
		echo "run $$i of $(LOOPS): $$(tail -1 "$$log")"; \
	done

# dvc push / dvc pull to the default remote, after checking that it answers and takes the
# credentials: one line saying why not (DVC's own message for wrong S3 credentials is "Forbidden")
push: setup
	python -m stages.tools.remote push

pull: setup
	python -m stages.tools.remote pull

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
