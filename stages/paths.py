"""Where each epoch setting's models and metrics live (the paths dvc.yaml names for train@N,
export@N and evaluate@N). Apart from stages/formats.py, so that a stage needing only a path does
not depend on how every format is loaded."""

from __future__ import annotations

from pathlib import Path

CHECKPOINT = "model.pth"  # the trained PyTorch weights, in model_dir


def model_dir(epochs: int) -> Path:
    return Path("models") / f"e{epochs}"


def metrics_dir(epochs: int) -> Path:
    return Path("metrics") / f"e{epochs}"
