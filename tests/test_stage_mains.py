"""The export and evaluate stages' main(), run in this process on a small model: which model and
which images each step used, and the figures computed from them (the end-to-end tests run the
same code through `dvc repro`, where a wrong input still gives plausible-looking numbers)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers.models import TINY_CLASSES, activation_scales
from helpers.project import params_file
from birds_onnx.onnx_model import OnnxClassifier
from birds_onnx.preprocess import preprocess_batch
from stages import evaluate
from stages.export import parity
from stages.shared.formats import TorchClassifier, load_classifier
from stages.shared.paths import model_path
from stages.shared.splits import read_split
from stages.shared.params import load_params

FORMATS = ["pth", "onnx", "onnx-int8"]
pytestmark = pytest.mark.usefixtures("on_the_stage_network")  # the project's model.pth is of that network (conftest.py)


def minmax_scale(batch: np.ndarray) -> float:
    return (max(batch.max(), 0.0) - min(batch.min(), 0.0)) / 255  # uint8 over a range holding 0


def test_int8_calibration_uses_the_training_images(exported, monkeypatch):
    monkeypatch.chdir(exported)
    spec = TorchClassifier(Path("models/e1/model.pth")).spec
    scale = activation_scales(Path("models/e1/model.int8.onnx"))["image"]
    train = preprocess_batch([e.path for e in read_split("train")], spec)
    test = preprocess_batch([e.path for e in read_split("test")], spec)
    assert scale == pytest.approx(minmax_scale(train), rel=1e-4)
    assert scale != pytest.approx(minmax_scale(test), rel=0.05)


def test_export_parity_compares_each_model_with_pytorch_on_the_test_images(exported, monkeypatch):
    monkeypatch.chdir(exported)
    report = json.loads(Path("metrics/epochs/e1/export.json").read_text())
    threads = load_params("evaluate.threads").evaluate.threads  # as the stage reads it
    torch_model = TorchClassifier(Path("models/e1/model.pth"), threads)
    batch = preprocess_batch([e.path for e in read_split("test")], torch_model.spec)
    reference = torch_model(batch)
    for fmt, file in (("onnx", "model.onnx"), ("onnx-int8", "model.int8.onnx")):
        expected = parity(reference, OnnxClassifier(Path("models/e1") / file, threads)(batch))
        assert report[fmt]["max_abs_logit_diff"] == pytest.approx(expected["max_abs_logit_diff"], rel=1e-5)
        assert report[fmt]["top1_agreement"] == expected["top1_agreement"]
    assert report["onnx-int8"]["max_abs_logit_diff"] > 10 * report["onnx"]["max_abs_logit_diff"]


class TimingStandIn:
    """Stands in for one of evaluate's timing functions (they have their own tests): returns
    `figure` and, with `keep`, what each call was given, the classifier as its logits on the test
    images (which model it was)."""

    def __init__(self, figure, keep: bool = False):
        self.figure, self.keep, self.calls = figure, keep, []

    def __call__(self, classifier, *args):
        if self.keep:
            images = preprocess_batch([e.path for e in read_split("test")], classifier.spec)
            self.calls.append((classifier(images), *args))
        return self.figure


def run_evaluate(project: Path, monkeypatch, required: float, article: float, keep: bool = False):
    """evaluate.main() on the stage network's three formats, the timings stood in for: the evaluate
    params, accuracy.json, speed.json and the stand-ins."""
    monkeypatch.chdir(project)
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["evaluate"]["required_img_per_s"] = required
    params["evaluate"]["formats"] = ["onnx-int8", "pth", "onnx"]  # evaluated pth first: the others are compared with it
    params_file(project, params)
    timed = {"article_img_per_s": TimingStandIn(article, keep),
             "streaming_img_per_s": TimingStandIn(2 * article + 0.004, keep),
             "model_speed": TimingStandIn({"latency_ms_median": 1.25}, keep)}
    for name, stand_in in timed.items():
        monkeypatch.setattr(evaluate, name, stand_in)
    monkeypatch.setattr("sys.argv", ["evaluate", "--epochs", "1"])
    evaluate.main()
    accuracy, speed = (json.loads(Path(f"metrics/epochs/e1/evaluate/{name}.json").read_text()) for name in ("accuracy", "speed"))
    return params["evaluate"], accuracy, speed, timed


@pytest.mark.parametrize("required, article", [(5.0, 5.0), (5.0, 4.99), (5.0, 4.996), (0.5, 7.0)])
def test_evaluate_computes_accuracy_agreement_and_the_verdict_from_its_figures(converted, monkeypatch, capsys, required, article):
    # the verdict at its edge, from the figure evaluate itself measured: 4.996 img/s is reported
    # as 5.0 and does not meet 5
    cfg, accuracy, speed, _ = run_evaluate(converted, monkeypatch, required, article)
    test = read_split("test")
    actual = np.array([TINY_CLASSES.index(e.label) for e in test])
    predictions = {}
    for fmt in FORMATS:
        model = load_classifier(fmt, model_path(1, fmt), threads=1)
        predictions[fmt] = np.array([model(preprocess_batch([e.path], model.spec)).argmax(1)[0] for e in test])
    assert list(accuracy) == list(speed)[4:] == ["pth", "onnx-int8", "onnx"]
    for fmt in FORMATS:
        assert accuracy[fmt]["accuracy"] == pytest.approx((predictions[fmt] == actual).mean(), abs=1e-6)
        assert accuracy[fmt]["agreement_with_pth"] == pytest.approx((predictions[fmt] == predictions["pth"]).mean(), abs=1e-6)
        assert accuracy[fmt]["size_mb"] == round(model_path(1, fmt).stat().st_size / 1e6, 2)
        assert accuracy[fmt]["precision"] == ("int8" if fmt == "onnx-int8" else "fp32")
        assert accuracy[fmt]["provider"] == ("torch CPU" if fmt == "pth" else "CPUExecutionProvider")  # the CPU's, always
        with open(f"metrics/epochs/e1/evaluate/confusion/{fmt}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["actual"] for r in rows] == [e.label for e in test]
        assert [r["predicted"] for r in rows] == [TINY_CLASSES[p] for p in predictions[fmt]]
        assert speed[fmt]["article_img_per_s"] == round(article, 2)
        assert speed[fmt]["streaming_img_per_s"] == round(2 * article + 0.004, 2)
        assert speed[fmt]["latency_ms_median"] == 1.25
        assert speed[fmt]["meets_requirement"] is (article >= required)
    assert speed["required_img_per_s"] == required and speed["measured_on"]["id"] == "test"
    assert (speed["threads"], speed["batch_size"]) == (cfg["threads"], cfg["batch_size"])
    assert capsys.readouterr().out.splitlines() == [
        f"evaluate e1 {fmt}: accuracy {accuracy[fmt]['accuracy']:.3f}, {article:.2f} img/s (article's figure), "
        "1.2 ms median latency" for fmt in accuracy
    ]
    assert sorted(p.name for p in Path("metrics/epochs/e1/evaluate").iterdir()) == ["accuracy.json", "confusion", "speed.json"]


def test_evaluate_times_each_formats_own_model_on_the_test_images_with_its_settings(converted, monkeypatch):
    cfg, accuracy, _, timed = run_evaluate(converted, monkeypatch, 5.0, 6.0, keep=True)
    paths, order = [e.path for e in read_split("test")], list(accuracy)
    models = {fmt: load_classifier(fmt, model_path(1, fmt), threads=1) for fmt in order}
    images = preprocess_batch(paths, models["onnx"].spec)
    expected = {fmt: model(images) for fmt, model in models.items()}
    article_calls, streaming_calls, speed_calls = (timed[name].calls for name in timed)
    assert [args for _, *args in article_calls] == [[paths, cfg["passes"]]] * len(order)
    assert [args for _, *args in streaming_calls] == [[paths, cfg["batch_size"], cfg["threads"]]] * cfg["passes"] * len(order)
    timed_models = [out for out, *_ in article_calls + streaming_calls[:: cfg["passes"]] + speed_calls]
    for model_out, fmt in zip(timed_models, order * 3, strict=True):
        np.testing.assert_allclose(model_out, expected[fmt], rtol=1e-5, atol=1e-5)
    for _, inputs, speed_cfg in speed_calls:
        np.testing.assert_array_equal(inputs, images)
        read = ("warmup", "timed_runs", "batch_size")  # what model_speed reads of the stage's declared params
        assert {key: getattr(speed_cfg, key) for key in read} == {key: cfg[key] for key in read}
