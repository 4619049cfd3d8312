"""The standalone predictor: top-k output, clear errors, and no torch anywhere on its path."""

import subprocess
import sys

import numpy as np
import onnx
import pytest

from conftest import ROOT, TINY_CLASSES, photo
from stages.predict import main, top_classes

# Runs the predictor as a user would, with every package it must not need made unimportable.
WITHOUT_TORCH = """
import runpy, sys

class Unavailable:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"torch", "torchvision", "onnx", "onnxscript", "sklearn", "yaml", "dvc"}:
            raise ImportError(f"{name} is not installed on the device")

sys.meta_path.insert(0, Unavailable())
sys.argv = ["predict", *sys.argv[1:]]
runpy.run_module("stages.predict", run_name="__main__")
"""


@pytest.mark.parametrize("fmt", ["onnx", "onnx-int8"])
def test_predicts_without_torch(tmp_path, tiny_models, fmt):
    image = photo(tmp_path / "bird.jpg", (120, 90))
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, str(tiny_models[fmt]), str(image), "--top", "2"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    path, _, ranked = result.stdout.strip().partition(": ")
    assert path == str(image)
    names, probabilities = zip(*(item.split() for item in ranked.split(", ")))
    assert len(names) == 2 and set(names) <= set(TINY_CLASSES)
    assert list(map(float, probabilities)) == sorted(map(float, probabilities), reverse=True)


def test_the_guard_does_catch_torch():
    """The check above means something: the same guard stops a program that imports torch."""
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH.replace("stages.predict", "stages.formats")],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode != 0 and "torch is not installed on the device" in result.stderr


def test_top_classes_are_ranked():
    probabilities = np.array([0.1, 0.6, 0.05, 0.25])
    assert top_classes(probabilities, ["a", "b", "c", "d"], 2) == [("b", 0.6), ("d", 0.25)]
    assert [name for name, _ in top_classes(probabilities, ["a", "b", "c", "d"], 10)] == ["b", "d", "a", "c"]


def test_bad_images_are_reported_one_line_each(tmp_path, tiny_models, capsys):
    good = photo(tmp_path / "good.jpg", (100, 80))
    broken = tmp_path / "broken.jpg"
    broken.write_text("<html>not a picture</html>")
    missing = tmp_path / "missing.jpg"
    assert main([str(tiny_models["onnx-int8"]), str(broken), str(good), str(missing)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"{good}: ") and out.count("\n") == 1
    assert err.splitlines() == [
        f"predict: {broken}: not a readable image (cannot identify image file '{broken}')",
        f"predict: {missing}: no such image file",
    ]


def test_bad_model_is_one_line_and_exit_2(tmp_path, tiny_models, capsys):
    image = photo(tmp_path / "bird.jpg", (100, 80))
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"\x00not a model")
    assert main([str(broken), str(image)]) == 2
    assert main([str(tmp_path / "none.onnx"), str(image)]) == 2
    foreign = tmp_path / "foreign.onnx"  # a valid model that the export stage did not write
    proto = onnx.load(str(tiny_models["onnx"]))
    del proto.metadata_props[:]
    onnx.save(proto, str(foreign))
    assert main([str(foreign), str(image)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 3 and all(line.startswith("predict: ") for line in lines)
    assert "ONNX Runtime cannot load it" in lines[0]
    assert "no such model file" in lines[1]
    assert "class names or preprocessing missing from its metadata" in lines[2]
