"""Where the evaluate and report stages put their results (one place, read by both and by
stages/tools/check_repro.py; light: no torch)."""

from __future__ import annotations

from pathlib import Path

# every evaluate@N writes under this one folder, which the report stage depends on
RESULTS_DIR = Path("metrics/evaluate")
# the headline of each setting and format, written by report, shown by `dvc metrics show`
SUMMARY_DIR = Path("metrics/summary")
# dvclive's per-epoch files written by train@N, one per figure; evaluate@N copies them
TRAINING_FIGURES = ("train_loss", "train_acc", "test_acc", "lr")


def results_dir(epochs: int) -> Path:
    return RESULTS_DIR / f"e{epochs}"
