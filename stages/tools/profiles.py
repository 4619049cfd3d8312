"""Small profiles of params.yaml: the whole pipeline in seconds, for the tests and for the
reproducibility check (stages/tools/check_repro.py), which must run the same small pipeline."""

from __future__ import annotations

import copy


def tiny(raw: dict) -> dict:
    """A copy of params.yaml (as parsed) shrunk to seconds: 3 classes, 8 small images each,
    64 px crops, epochs 1 and 2, one thread per stage."""
    raw = copy.deepcopy(raw)
    raw["classes"] = raw["classes"][:3]
    raw["crawl"]["synthetic"].update(total_images=24, min_size=48, max_size=96)
    raw["crawl"]["min_side"] = 32
    raw["split"] = {"train": 15, "test": 6}
    raw["preprocess"].update(resize=72, crop=64)
    raw["train"].update(epochs=[1, 2], batch_size=4, compile=False)  # compiling takes a minute
    # one thread per stage: the tests run two pipelines at once on two cores, and threads that
    # outnumber the cores spin waiting for each other (at 64 px a second thread gains little)
    raw["train"]["threads"] = raw["evaluate"]["threads"] = 1
    raw["export"]["int8"].update(calibration_images=6)
    raw["evaluate"].update(passes=1, warmup=1, timed_runs=3, batch_size=2)
    return raw
