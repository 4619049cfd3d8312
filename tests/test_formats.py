"""Every format the evaluate stage compares: the file it names, run by its runtime, and a batch's
answers those of each image classified alone (a probability per class, summing to 1 per image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from birds_onnx.onnx_model import OnnxClassifier, softmax
from birds_onnx.openvino_model import OpenVinoClassifier
from birds_onnx.preprocess import preprocess_batch
from stages.shared.formats import TorchClassifier, load_classifier
from stages.shared.paths import MODEL_FILES, model_path
from stages.shared.splits import read_split

pytestmark = pytest.mark.usefixtures("on_the_stage_network")  # the project's model.pth is of that network (conftest.py)

# README's table of formats: the file of models/eN/ each one runs, and with what
RUNS = {
    "pth": ("model.pth", lambda path: TorchClassifier(path, 1)),
    "onnx": ("model.onnx", lambda path: OnnxClassifier(path, 1)),
    "onnx-int8": ("model.int8.onnx", lambda path: OnnxClassifier(path, 1)),
    "openvino": ("model.onnx", lambda path: OpenVinoClassifier(path, 1)),
    "openvino-int8": ("model.int8.onnx", lambda path: OpenVinoClassifier(path, 1, precision="fp32")),
}


@pytest.fixture
def batch(exported, monkeypatch) -> np.ndarray:
    """The exported project's training and test images (12), preprocessed; the working directory
    is the project."""
    monkeypatch.chdir(exported)
    spec = TorchClassifier(model_path(1, "pth"), 1).spec
    return preprocess_batch([e.path for e in read_split("train") + read_split("test")], spec)


def test_each_format_runs_the_file_it_names(batch):
    assert set(MODEL_FILES) == set(RUNS)
    answers = {}
    for fmt, (file, run) in RUNS.items():
        assert model_path(1, fmt) == Path("models/e1") / file
        answers[fmt] = load_classifier(fmt, model_path(1, fmt), threads=1)(batch)
        np.testing.assert_allclose(answers[fmt], run(Path("models/e1") / file)(batch), rtol=0, atol=1e-5, err_msg=fmt)
    # the files differ in what they compute, so a format running another's file would show above
    for a, b in [("pth", "onnx-int8"), ("onnx", "onnx-int8"), ("openvino", "openvino-int8")]:
        assert np.abs(answers[a] - answers[b]).max() > 1e-3, (a, b)


@pytest.mark.parametrize("fmt", list(MODEL_FILES))
def test_a_batchs_probabilities_are_each_images_own(batch, fmt):
    classifier = load_classifier(fmt, model_path(1, fmt), threads=1)
    probabilities = softmax(classifier(batch))
    assert probabilities.shape == (len(batch), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    alone = np.concatenate([softmax(classifier(batch[i : i + 1])) for i in range(len(batch))])
    tolerance = 2e-3 if fmt == "openvino" else 1e-5  # bf16 on a CPU that computes it natively
    np.testing.assert_allclose(probabilities, alone, rtol=0, atol=tolerance)


def test_softmax_normalises_each_row_alone():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, 0.0], [-5.0, 0.0, 5.0]], np.float32)
    probabilities = softmax(logits)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    for row, p in zip(logits, probabilities):
        np.testing.assert_allclose(p, np.exp(row - row.max()) / np.exp(row - row.max()).sum(), rtol=1e-6)
    np.testing.assert_allclose(probabilities[1], [0.5, 0.5, 0.0], atol=1e-7)  # no overflow for large logits
