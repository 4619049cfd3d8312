"""evaluate stage: every format on the test images, with the same preprocessing and threads.

    python -m stages.evaluate --epochs 20
        -> metrics/epochs/e20/evaluate/accuracy.json   accuracy, per-class recall, agreement with pth,
                                    file size, the precision each format computed in and what ran it
                                    (ONNX Runtime's execution provider)
        -> metrics/epochs/e20/evaluate/speed.json      the article's img/s, streaming img/s, model-only
                                    latency and throughput, and the machine that measured them
        -> metrics/epochs/e20/evaluate/confusion/<format>.csv   (actual, predicted) rows for `dvc plots`

Accuracy and speed live in separate files: timings differ on every run, accuracy must not.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import recall_score

from stages.shared.atomic import write_csv, write_json
from stages.shared.errors import PipelineError, run_stage
from stages.shared.formats import load_classifier, precision, provider
from stages.shared.paths import model_path
from stages.shared.paths import MACHINE_FILE, results_dir
from stages.shared.splits import read_split
from stages.shared.params import Evaluate, load_params
from birds_onnx.preprocess import preprocess, preprocess_batch
from birds_onnx.stream import classify_stream

# the params this stage reads: dvc.yaml lists the same keys (not evaluate.min_agreement: the report stage's)
PARAMS = tuple(f"evaluate.{key}" for key in ("formats", "threads", "passes", "warmup", "timed_runs", "batch_size", "required_img_per_s"))


def measured_on() -> dict:
    """What speed.json says about the machine that timed it (stages/machine.py wrote it)."""
    try:
        machine = json.loads(MACHINE_FILE.read_text(
            encoding="utf-8",  # pragma: no mutate: codec names are not case-sensitive
        ))
    except FileNotFoundError:
        raise PipelineError(f"{MACHINE_FILE} not found: run `dvc repro machine` first") from None
    return {key: machine[key] for key in ("cpu", "logical_cpus", "id")}


def predict_one_by_one(classifier, paths: list[Path]) -> np.ndarray:
    """The article's loop: load, preprocess and classify one image at a time. Returns labels."""
    return np.array([classifier(preprocess(p, classifier.spec)[None]).argmax(1)[0] for p in paths])


def quality(classes: list[str], actual: np.ndarray, predicted: np.ndarray, reference: np.ndarray) -> dict:
    recall = recall_score(actual, predicted, labels=range(len(classes)), average=None, zero_division=0)
    return {
        "accuracy": round(float((actual == predicted).mean()), 6),
        "agreement_with_pth": round(float((reference == predicted).mean()), 6),
        "recall": {c: round(float(r), 6) for c, r in zip(classes, recall)},
    }


def article_img_per_s(classifier, paths: list[Path], passes: int) -> float:
    """Test images / wall time of load + preprocess + inference, mean of `passes` passes."""
    rates = []
    for _ in range(passes):
        started = time.perf_counter()
        predict_one_by_one(classifier, paths)
        rates.append(len(paths) / (time.perf_counter() - started))
    return float(np.mean(rates))


def streaming_img_per_s(classifier, paths: list[Path], batch_size: int, workers: int) -> float:
    """Images / wall time of one pass of the predictor's streaming mode over `paths` (decoder
    threads running ahead of batches, as `birds-predict` classifies a folder)."""
    started = time.perf_counter()
    for _, result in classify_stream(classifier, classifier.spec, paths, batch_size, workers):
        if isinstance(result, Exception):
            raise result
    return len(paths) / (time.perf_counter() - started)


def timed_runs(run, warmup: int, runs: int) -> np.ndarray:
    """Seconds per call of `run`, after `warmup` untimed calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return np.array(times)


def model_speed(classifier, inputs: np.ndarray, cfg: Evaluate) -> dict:
    """Model-only figures on preprocessed inputs: batch-1 latency and larger-batch throughput."""
    images = itertools.cycle(inputs[:, None])  # batches of one, a different image each call
    latency = timed_runs(lambda: classifier(next(images)), cfg.warmup, cfg.timed_runs)
    batch = inputs[np.arange(cfg.batch_size) % len(inputs)]
    per_batch = timed_runs(lambda: classifier(batch), 1, max(3, cfg.timed_runs // cfg.batch_size))
    return {
        "latency_ms_median": round(1000 * float(np.median(latency)), 3),
        "latency_ms_p90": round(1000 * float(np.percentile(latency, 90)), 3),
        "img_per_s_batch1": round(1 / float(np.median(latency)), 2),
        f"img_per_s_batch{cfg.batch_size}": round(cfg.batch_size / float(np.median(per_batch)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, required=True)
    args = parser.parse_args()
    params = load_params(*PARAMS)
    cfg = params.evaluate
    test = read_split("test")
    paths = [e.path for e in test]
    out = results_dir(args.epochs)

    accuracy, reference = {}, None
    speed = {"threads": cfg.threads, "batch_size": cfg.batch_size, "required_img_per_s": cfg.required_img_per_s,
             "measured_on": measured_on()}
    for fmt in sorted(cfg.formats, key=lambda f: f != "pth"):  # pth first: the others are compared with it
        path = model_path(args.epochs, fmt)
        classifier = load_classifier(fmt, path, cfg.threads)
        actual = np.array([classifier.classes.index(e.label) for e in test])
        predicted = predict_one_by_one(classifier, paths)
        reference = predicted if reference is None else reference
        accuracy[fmt] = quality(classifier.classes, actual, predicted, reference)
        accuracy[fmt]["size_mb"] = round(path.stat().st_size / 1e6, 2)
        accuracy[fmt]["precision"] = precision(fmt, classifier)  # fp32, bf16 or int8: what ran on this CPU
        accuracy[fmt]["provider"] = provider(fmt, classifier)  # CPUExecutionProvider, torch CPU, OpenVINO CPU
        write_csv(
            out / "confusion" / f"{fmt}.csv",
            [{"actual": classifier.classes[a], "predicted": classifier.classes[p]} for a, p in zip(actual, predicted)],
            ["actual", "predicted"],
        )
        article = article_img_per_s(classifier, paths, cfg.passes)
        speed[fmt] = {
            "article_img_per_s": round(article, 2),
            "streaming_img_per_s": round(float(np.mean(
                [streaming_img_per_s(classifier, paths, cfg.batch_size, cfg.threads) for _ in range(cfg.passes)]
            )), 2),
            **model_speed(classifier, preprocess_batch(paths, classifier.spec), cfg),
            "meets_requirement": article >= cfg.required_img_per_s,
        }
        print(f"evaluate e{args.epochs} {fmt}: accuracy {accuracy[fmt]['accuracy']:.3f}, "
              f"{article:.2f} img/s (article's figure), {speed[fmt]['latency_ms_median']:.1f} ms median latency")
    write_json(out / "accuracy.json", accuracy)
    write_json(out / "speed.json", speed)


if __name__ == "__main__":
    run_stage(main)
