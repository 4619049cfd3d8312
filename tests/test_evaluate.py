import numpy as np

from stages.evaluate import model_speed, quality, timed_runs
from stages.params import Evaluate


def test_quality_counts_accuracy_recall_and_agreement():
    classes = ["a", "b", "c"]
    actual = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    reference = np.array([0, 1, 1, 0, 2, 2])
    q = quality(classes, actual, predicted, reference)
    assert q["accuracy"] == round(4 / 6, 6)
    assert q["recall"] == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert q["agreement_with_pth"] == round(4 / 6, 6)


def test_timed_runs_counts_calls():
    calls = []
    times = timed_runs(lambda: calls.append(1), warmup=2, runs=5)
    assert len(calls) == 7 and len(times) == 5 and (times >= 0).all()


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
