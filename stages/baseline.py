"""baseline stage: can colour alone solve it? Colour-only baselines for the bird images.

    python -m stages.baseline  ->  metrics/baseline.json

If a linear classifier on global colour statistics (mean colour, or a coarse colour histogram) already
classifies the test images, a network's accuracy says little about shape; these numbers bound that.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stages.shared.errors import run_stage
from stages.shared.atomic import write_json
from stages.shared.paths import BASELINE_FILE
from stages.shared.splits import read_split
from stages.shared.params import load_params

_BINS = 4  # histogram bins per channel: 4 x 4 x 4 = 64 colour cells

PARAMS = ("seed",)  # the params this stage reads: dvc.yaml lists the same keys


def colour_features(image: Image.Image, kind: str) -> np.ndarray:
    """`mean`: mean R, G, B in 0..1 (3 numbers).
    `histogram`: joint RGB histogram, 4 bins per channel (64 numbers), normalised to sum 1."""
    pixels = np.asarray(image.convert("RGB"))
    if kind == "mean":
        return pixels.reshape(-1, 3).mean(axis=0) / 255.0
    if kind == "histogram":
        cells = (pixels // (256 // _BINS)).astype(np.int64)
        codes = (cells[..., 0] * _BINS + cells[..., 1]) * _BINS + cells[..., 2]
        counts = np.bincount(codes.ravel(), minlength=_BINS ** 3)
        return counts / counts.sum()
    raise ValueError(f"unknown colour feature kind {kind!r}; expected 'mean' or 'histogram'")


def _features(items: list[tuple[str | os.PathLike, str]], kind: str) -> tuple[np.ndarray, list[str]]:
    rows = []
    for path, _ in items:
        with Image.open(path) as image:
            rows.append(colour_features(image, kind))
    return np.stack(rows), [label for _, label in items]


def colour_baseline(train: list[tuple[str | os.PathLike, str]], test: list[tuple[str | os.PathLike, str]],
                    kind: str, seed: int) -> float:
    """Test accuracy of a logistic regression on colour features alone, fitted on `train`."""
    x_train, y_train = _features(train, kind)
    x_test, y_test = _features(test, kind)
    # Standardising first keeps the default regularisation from muting small-valued features
    # (histogram cells), so the baseline is as strong as a linear colour model can fairly be.
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
    model.fit(x_train, y_train)
    return float(model.score(x_test, y_test))


def main() -> None:
    seed = load_params(*PARAMS).seed
    train, test = ([(e.path, e.label) for e in read_split(name)] for name in ("train", "test"))
    scores = {kind: round(colour_baseline(train, test, kind, seed), 6) for kind in ("mean", "histogram")}
    write_json(BASELINE_FILE, {"colour_only_accuracy": scores})
    print(f"baseline: colour alone scores {scores} on the test images")


if __name__ == "__main__":
    run_stage(main)
