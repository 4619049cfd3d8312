import json
import threading

import numpy as np
import pytest

from birds_onnx.errors import BirdsOnnxError
from birds_onnx.onnx_model import OnnxClassifier
from birds_onnx.preprocess import preprocess
from helpers.images import photo
from stages.shared.atomic import write_json
from stages.shared.errors import PipelineError
from stages.evaluate import (article_img_per_s, measured_on, model_speed, predict_one_by_one, quality, streaming_img_per_s,
                             timed_runs)
from stages.shared.params import Evaluate


def test_quality_counts_accuracy_recall_and_agreement():
    classes = ["a", "b", "c"]
    actual = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    reference = np.array([0, 1, 1, 0, 2, 2])
    q = quality(classes, actual, predicted, reference)
    assert q["accuracy"] == round(4 / 6, 6)
    assert q["recall"] == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert q["agreement_with_pth"] == round(4 / 6, 6)


def test_recall_is_per_class_of_the_model_even_for_a_class_missing_from_the_test_images():
    # "c" has no test image and is never predicted: its recall is 0, and "d"'s stays "d"'s
    classes = ["a", "b", "c", "d"]
    actual = np.array([0, 0, 0, 1, 3, 3])
    predicted = np.array([0, 1, 1, 1, 3, 0])
    q = quality(classes, actual, predicted, predicted)
    assert q["recall"] == {"a": 0.333333, "b": 1.0, "c": 0.0, "d": 0.5}


def test_timed_runs_times_each_call_after_the_warm_up(monkeypatch):
    # a clock that the calls advance: 1 s for each warm-up call, then 10, 20, ... 50 ms
    clock = [0.0]
    monkeypatch.setattr("stages.evaluate.time.perf_counter", lambda: clock[0])
    durations = iter([1.0, 1.0, 0.010, 0.020, 0.030, 0.040, 0.050])
    calls = []

    def call():
        calls.append(1)
        clock[0] += next(durations)

    times = timed_runs(call, warmup=2, runs=5)
    assert len(calls) == 7
    assert times == pytest.approx([0.010, 0.020, 0.030, 0.040, 0.050])


def test_model_speed_feeds_batches_of_the_asked_sizes():
    shapes = []

    def classifier(batch):
        shapes.append(batch.shape)
        return np.zeros((len(batch), 3))

    inputs = np.zeros((3, 3, 8, 8), np.float32)
    figures = model_speed(classifier, inputs, Evaluate(warmup=1, timed_runs=4, batch_size=5))
    assert set(figures) == {"latency_ms_median", "latency_ms_p90", "img_per_s_batch1", "img_per_s_batch5"}
    assert shapes[:5] == [(1, 3, 8, 8)] * 5
    assert set(shapes[5:]) == {(5, 3, 8, 8)}


def test_model_speed_figures_are_computed_from_the_timings(monkeypatch):
    # a clock that advances 10 ms per image classified: every figure follows exactly
    clock = [0.0]
    monkeypatch.setattr("stages.evaluate.time.perf_counter", lambda: clock[0])

    def classifier(batch):
        clock[0] += 0.010 * len(batch)
        return np.zeros((len(batch), 3))

    figures = model_speed(classifier, np.zeros((3, 3, 8, 8), np.float32), Evaluate(warmup=2, timed_runs=5, batch_size=4))
    assert figures == {"latency_ms_median": 10.0, "latency_ms_p90": 10.0, "img_per_s_batch1": 100.0, "img_per_s_batch4": 100.0}


class Ticking:
    """The tiny ONNX model on a clock that advances 20 ms per image it classifies."""

    def __init__(self, model, clock):
        self.model, self.spec, self.clock = model, model.spec, clock
        self.batches, self.threads = [], []  # each call's batch size, and the threads alive then

    def __call__(self, batch):
        self.clock[0] += 0.020 * len(batch)
        self.batches.append(len(batch))
        self.threads.append(threading.active_count())
        return self.model(batch)


def test_end_to_end_rates_are_images_over_the_wall_time(tmp_path, tiny_models, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("stages.evaluate.time.perf_counter", lambda: clock[0])
    model = OnnxClassifier(tiny_models["onnx"])
    classifier = Ticking(model, clock)
    paths = [photo(tmp_path / f"{i}.jpg", (80 + 6 * i, 70), seed=i) for i in range(5)]

    assert article_img_per_s(classifier, paths, passes=3) == pytest.approx(50.0)
    assert clock[0] == pytest.approx(3 * 5 * 0.020)  # every image of every pass, one at a time
    assert streaming_img_per_s(classifier, paths, batch_size=2, workers=2) == pytest.approx(50.0)
    classifier.batches.clear()
    classifier.threads.clear()
    alone = threading.active_count()
    assert streaming_img_per_s(classifier, paths, batch_size=3, workers=0) == pytest.approx(50.0)
    assert classifier.batches == [3, 2] and set(classifier.threads) == {alone}  # workers=0: decoded in line
    labels = predict_one_by_one(model, paths)
    assert list(labels) == [int(model(preprocess(p, model.spec)[None]).argmax()) for p in paths]

    broken = tmp_path / "broken.jpg"
    broken.write_text("<html>")
    with pytest.raises(BirdsOnnxError, match="broken.jpg: not a readable image"):
        streaming_img_per_s(classifier, [*paths, broken], batch_size=2, workers=2)


def test_the_measuring_machine_is_what_the_machine_stage_recorded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineError, match=r"metrics/machine.json not found: run `dvc repro machine` first"):
        measured_on()
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/machine.json").write_text(json.dumps({"cpu": "Test CPU", "logical_cpus": 4, "id": "x1", "flags": ["avx2"]}))
    assert measured_on() == {"cpu": "Test CPU", "logical_cpus": 4, "id": "x1"}


def test_a_cpu_name_beyond_ascii_is_read_whatever_the_locale(tmp_path, monkeypatch, ascii_locale):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    machine = {"cpu": "Intel® Xeon® Gold 6430", "logical_cpus": 64, "id": "x2"}
    write_json(tmp_path / "metrics/machine.json", machine)  # as the machine stage writes it: UTF-8
    assert measured_on() == machine


def test_model_speed_figures_keep_their_precision_and_percentile(monkeypatch):
    """Latencies of 10.33 to 19.33 ms after two slow warm-up calls, batches of 4 in 70 ms: the
    median, the 90th percentile and both rates to the digits speed.json keeps."""
    clock = [0.0]
    monkeypatch.setattr("stages.evaluate.time.perf_counter", lambda: clock[0])
    single = iter([1.0, 1.0] + [(10 + i + 1 / 3) / 1000 for i in range(10)])
    calls = []

    def classifier(batch):
        calls.append(len(batch))
        clock[0] += next(single) if len(batch) == 1 else 0.070
        return np.zeros((len(batch), 3))

    figures = model_speed(classifier, np.zeros((3, 3, 8, 8), np.float32), Evaluate(warmup=2, timed_runs=10, batch_size=4))
    assert figures == {"latency_ms_median": 14.833, "latency_ms_p90": 18.433, "img_per_s_batch1": 67.42,
                       "img_per_s_batch4": 57.14}
    assert calls == [1] * 12 + [4] * 4  # one warm-up batch, then max(3, 10 // 4) timed ones
    calls.clear()
    single = iter([1.0, 1.0] + [0.01] * 14)
    model_speed(classifier, np.zeros((3, 3, 8, 8), np.float32), Evaluate(warmup=2, timed_runs=14, batch_size=4))
    assert calls == [1] * 16 + [4] * 4  # 14 // 4 = 3 timed batches
