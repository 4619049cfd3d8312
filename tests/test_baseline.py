"""Colour-only baselines: the features are right, and colour alone does not solve the synthetic set."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from helpers.project import params_file, tiny_params
from stages import baseline
from stages.baseline import colour_baseline, colour_features
from stages.shared.splits import Example, write_split
from stages.sources.synthetic import SPECIES, synthesize

TEST_PER_CLASS = 4


@pytest.fixture(scope="module")
def split(module_tmp_path) -> tuple[list, list]:
    """All 9 species, 12 small images each: 8 per class to train on, 4 to test."""
    train, test = [], []
    for slug, index, data in synthesize(list(SPECIES), 12 * len(SPECIES), 7, size_range=(64, 128)):
        path = module_tmp_path / f"{slug}_{index:02d}.jpg"
        path.write_bytes(data)
        (test if index < TEST_PER_CLASS else train).append((path, slug))
    return train, test


def test_mean_features_are_the_mean_rgb_in_0_to_1():
    image = Image.new("RGB", (4, 2), (255, 0, 51))
    assert np.allclose(colour_features(image, "mean"), [1.0, 0.0, 0.2])


def test_histogram_has_64_cells_summing_to_one():
    image = Image.new("RGB", (5, 3), (255, 0, 70))  # bins 3, 0, 1 -> cell 3 * 16 + 0 * 4 + 1
    histogram = colour_features(image, "histogram")
    assert histogram.shape == (64,)
    assert histogram.sum() == pytest.approx(1.0)
    assert histogram[49] == pytest.approx(1.0)


def test_features_of_a_real_picture_are_its_pixels_mean_and_colour_cells(split):
    path, _ = split[0][0]
    with Image.open(path) as image:
        mean, histogram = colour_features(image, "mean"), colour_features(image, "histogram")
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    assert mean == pytest.approx(pixels.mean(axis=0) / 255)
    # each pixel counted once in its cell of 4 x 4 x 4 ranges of 64 values (R major, B minor)
    counts, _ = np.histogramdd(pixels, bins=(4, 4, 4), range=[(0, 256)] * 3)
    assert histogram == pytest.approx(counts.ravel() / len(pixels))
    assert len(np.unique(pixels // 64, axis=0)) > 4  # a picture of many colour cells, not a flat one


def test_greyscale_images_are_converted_to_rgb():
    assert colour_features(Image.new("L", (3, 3), 255), "mean").shape == (3,)


def test_unknown_feature_kind_is_refused():
    with pytest.raises(ValueError, match="median"):
        colour_features(Image.new("RGB", (2, 2)), "median")


def test_colour_alone_does_not_solve_the_synthetic_birds(split, module_tmp_path, monkeypatch):
    train, test = split
    assert len(test) == TEST_PER_CLASS * len(SPECIES)
    mean_accuracy = colour_baseline(train, test, "mean", seed=0)
    histogram_accuracy = colour_baseline(train, test, "histogram", seed=0)
    # Chance is 1/9; a generator whose classes differ mostly in colour would score near 1.0 here.
    assert mean_accuracy < 0.75
    assert histogram_accuracy < 0.95

    # the stage on the same split writes these figures (its seed from params.yaml: 0 here)
    params = tiny_params()
    params["seed"] = 0
    params_file(module_tmp_path, params)
    for name, examples in (("train", train), ("test", test)):
        write_split(module_tmp_path / f"data/split/{name}.csv", [Example(p.relative_to(module_tmp_path), c) for p, c in examples])
    monkeypatch.chdir(module_tmp_path)
    baseline.main()
    written = json.loads((module_tmp_path / "metrics/baseline.json").read_text(encoding="utf-8"))
    assert written == {"colour_only_accuracy": {"mean": round(mean_accuracy, 6), "histogram": round(histogram_accuracy, 6)}}


def test_a_class_told_apart_by_colour_alone_is_found(tmp_path):
    # the baseline must learn: where colour is the whole difference, it scores (nearly) perfectly
    colours = {"red": (200, 30, 40), "green": (40, 180, 60), "blue": (30, 60, 200)}
    rng = np.random.default_rng(0)
    examples = []
    for label, rgb in colours.items():
        for i in range(6):
            pixels = np.clip(np.array(rgb) + rng.integers(-20, 21, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(path := tmp_path / f"{label}_{i}.png")
            examples.append((path, label))
    train = [e for i, e in enumerate(examples) if i % 6 < 4]
    test = [e for i, e in enumerate(examples) if i % 6 >= 4]
    assert colour_baseline(train, test, "mean", seed=0) == 1.0
    assert colour_baseline(train, test, "histogram", seed=0) == 1.0
