"""The export and evaluate stages' main(), run in this process on a tiny model: which model and
which images each step used, and the figures computed from them (the end-to-end tests run the
same code through `dvc repro`, where a wrong input still gives plausible-looking numbers)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import numpy_helper

from conftest import TINY_CLASSES, params_file
from birds_onnx.onnx_model import OnnxClassifier
from birds_onnx.preprocess import preprocess_batch
from stages import evaluate
from stages.export import parity
from stages.formats import TorchClassifier, model_path
from stages.manifest import read_split
from stages.results import TRAINING_FIGURES

FORMATS = ["pth", "onnx", "onnx-int8"]


def input_scale(model: Path) -> float:
    """The scale of the int8 model's first QuantizeLinear, the one on the input image."""
    proto = onnx.load(str(model))
    [node] = [n for n in proto.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "image"]
    scales = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    return float(scales[node.input[1]])


def minmax_scale(batch: np.ndarray) -> float:
    return (max(batch.max(), 0.0) - min(batch.min(), 0.0)) / 255  # uint8 over a range holding 0


def test_int8_calibration_uses_the_training_images(exported, monkeypatch):
    monkeypatch.chdir(exported)
    spec = TorchClassifier(Path("models/e1/model.pth")).spec
    scale = input_scale(Path("models/e1/model.int8.onnx"))
    train = preprocess_batch([e.path for e in read_split("train")], spec)
    test = preprocess_batch([e.path for e in read_split("test")], spec)
    assert scale == pytest.approx(minmax_scale(train), rel=1e-4)
    assert scale != pytest.approx(minmax_scale(test), rel=0.05)


def test_export_parity_compares_each_model_with_pytorch_on_the_test_images(exported, monkeypatch):
    monkeypatch.chdir(exported)
    report = json.loads(Path("metrics/e1/export.json").read_text())
    torch_model = TorchClassifier(Path("models/e1/model.pth"))
    batch = preprocess_batch([e.path for e in read_split("test")], torch_model.spec)
    reference = torch_model(batch)
    for fmt, file in (("onnx", "model.onnx"), ("onnx-int8", "model.int8.onnx")):
        expected = parity(reference, OnnxClassifier(Path("models/e1") / file)(batch))
        assert report[fmt]["max_abs_logit_diff"] == pytest.approx(expected["max_abs_logit_diff"], rel=1e-5)
        assert report[fmt]["top1_agreement"] == expected["top1_agreement"]
    assert report["onnx-int8"]["max_abs_logit_diff"] > 10 * report["onnx"]["max_abs_logit_diff"]


@pytest.mark.parametrize("required, article", [(5.0, 5.0), (5.0, 4.99), (0.5, 7.0)])
def test_evaluate_computes_accuracy_agreement_and_the_verdict_from_its_figures(converted, monkeypatch, required, article):
    # the timings are stood in for (the timing functions have their own tests): the verdict is
    # checked at its edge, from the figure evaluate itself reports
    monkeypatch.chdir(converted)
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["evaluate"]["required_img_per_s"] = required
    params["evaluate"]["formats"] = ["onnx-int8", "pth", "onnx"]  # evaluated pth first: the others are compared with it
    params_file(converted, params)
    monkeypatch.setattr(evaluate, "article_img_per_s", lambda classifier, paths, passes: article)
    monkeypatch.setattr(evaluate, "streaming_img_per_s", lambda *args: 2 * article)
    monkeypatch.setattr(evaluate, "model_speed", lambda classifier, inputs, cfg: {"latency_ms_median": 1.0})
    monkeypatch.setattr("sys.argv", ["evaluate", "--epochs", "1"])
    evaluate.main()

    accuracy = json.loads(Path("metrics/evaluate/e1/accuracy.json").read_text())
    speed = json.loads(Path("metrics/evaluate/e1/speed.json").read_text())
    test = read_split("test")
    actual = np.array([TINY_CLASSES.index(e.label) for e in test])
    predictions = {}
    for fmt in FORMATS:
        model = TorchClassifier(model_path(1, fmt)) if fmt == "pth" else OnnxClassifier(model_path(1, fmt))
        predictions[fmt] = np.array([model(preprocess_batch([e.path], model.spec)).argmax(1)[0] for e in test])
    assert list(accuracy) == list(speed)[4:] == ["pth", "onnx-int8", "onnx"]
    for fmt in FORMATS:
        assert accuracy[fmt]["accuracy"] == pytest.approx((predictions[fmt] == actual).mean(), abs=1e-6)
        assert accuracy[fmt]["agreement_with_pth"] == pytest.approx((predictions[fmt] == predictions["pth"]).mean(), abs=1e-6)
        assert accuracy[fmt]["size_mb"] == round(model_path(1, fmt).stat().st_size / 1e6, 2)
        assert accuracy[fmt]["precision"] == ("int8" if fmt == "onnx-int8" else "fp32")
        with open(f"metrics/evaluate/e1/confusion/{fmt}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["actual"] for r in rows] == [e.label for e in test]
        assert [r["predicted"] for r in rows] == [TINY_CLASSES[p] for p in predictions[fmt]]
        assert speed[fmt]["article_img_per_s"] == article and speed[fmt]["streaming_img_per_s"] == 2 * article
        assert speed[fmt]["meets_requirement"] is (article >= required)
    assert speed["required_img_per_s"] == required and speed["measured_on"]["id"] == "test"
    assert (speed["threads"], speed["batch_size"]) == (params["evaluate"]["threads"], params["evaluate"]["batch_size"])
    with open("metrics/evaluate/e1/training.csv", newline="") as f:
        assert list(csv.DictReader(f)) == [{"epoch": "1", **{figure: "0.5" for figure in TRAINING_FIGURES}}]
