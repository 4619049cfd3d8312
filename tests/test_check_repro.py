"""The reproducibility check: it passes on the real pipeline and catches runs that differ."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import yaml

from helpers.project import ROOT, run, tiny_params
from stages.tools.check_repro import adjust_params, compare, compare_with_lock, likely_cause, override
from stages.shared.params import ParamError, load_params


@pytest.mark.slow
def test_check_passes_on_the_tiny_pipeline(tiny_project):
    # up to evaluate@1: crawl, split, train@1, export@1, evaluate@1, twice (CI's make check-repro runs it all)
    result = run([sys.executable, "-m", "stages.tools.check_repro", "--repo", str(tiny_project), "evaluate@1"], tiny_project)
    assert "run 2: dvc repro" in result.stdout and "dvc status clean" in result.stdout
    assert "check-repro: OK" in result.stdout


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def fake_run(root: Path, accuracy: str, speed: str) -> Path:
    """A project folder with a dvc.lock and the outputs it records (hashes as DVC computes them)."""
    files = {"data/split/train.csv": "path,class\na.jpg,myna\n", "metrics/epochs/e1/evaluate/accuracy.json": accuracy,
             "metrics/epochs/e1/evaluate/speed.json": speed}
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    lock = {"schema": "2.0", "stages": {
        "split": {"cmd": "python -m stages.split", "outs": [{"path": "data/split", "md5": "1.dir"}]},
        "evaluate@1": {"cmd": "python -m stages.evaluate --epochs 1", "outs": [
            {"path": "metrics/epochs/e1/evaluate/accuracy.json", "md5": md5(accuracy)},
            {"path": "metrics/epochs/e1/evaluate/speed.json", "md5": md5(speed)},
        ]},
    }}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    return root


def test_compare_reports_differing_outputs_but_not_timings(tmp_path):
    first = fake_run(tmp_path / "run1", '{"accuracy": 0.8}\n', '{"img_per_s": 40}\n')
    same = fake_run(tmp_path / "run2", '{"accuracy": 0.8}\n', '{"img_per_s": 41}\n')
    assert compare(first, same) == []
    other = fake_run(tmp_path / "run3", '{"accuracy": 0.9}\n', '{"img_per_s": 40}\n')
    [message] = compare(first, other)
    assert message.startswith("metrics/epochs/e1/evaluate/accuracy.json differs between the runs")
    assert '-{"accuracy": 0.8}' in message and '+{"accuracy": 0.9}' in message


def test_tiny_profile_and_overrides_go_into_params_and_bad_keys_are_named(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    adjust_params(params, shrink=True, overrides=["train.epochs=[3, 4]", "crawl.synthetic.total_images=27"])
    loaded = load_params(path=params)
    assert loaded.train.epochs == [3, 4] and loaded.crawl.synthetic.total_images == 27
    assert loaded.split.train == tiny_params()["split"]["train"] and len(loaded.classes) == 3
    with pytest.raises(ParamError, match="unknown key train.epoch;"):
        adjust_params(params, shrink=False, overrides=["train.epoch=3"])
    with pytest.raises(ParamError, match="--set takes KEY=VALUE"):
        override({}, ["train.epochs"])


def accuracy_file(pth: float, int8: float) -> str:
    return json.dumps({"pth": {"accuracy": pth}, "onnx-int8": {"accuracy": int8}}) + "\n"


def locked_project(root: Path, model: str, accuracy: str, machine: dict) -> None:
    """Outputs of a run and the dvc.lock that records them: a model, an accuracy file, the machine."""
    files = {"models/e20/model.pth": model, "metrics/epochs/e20/evaluate/accuracy.json": accuracy,
             "metrics/machine.json": json.dumps(machine)}
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    lock = {"schema": "2.0", "stages": {
        "train@20": {"cmd": "python -m stages.train --epochs 20", "outs": [{"path": "models/e20/model.pth", "md5": md5(model)}]},
        "machine": {"cmd": "python -m stages.machine", "outs": [{"path": "metrics/machine.json", "md5": md5(files["metrics/machine.json"])}]},
        "evaluate@20": {"cmd": "python -m stages.evaluate --epochs 20", "outs": [
            {"path": "metrics/epochs/e20/evaluate/accuracy.json", "md5": md5(accuracy)}]},
    }}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    (root / "params.yaml").write_text("train:\n  precision: auto\n")


REFERENCE = {"cpu": "CPU with bf16", "bf16_native": True, "id": "aaa"}


def commit_reference(root):
    """The project as written so far becomes the committed reference run."""
    run(["git", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "reference"], root)


def test_against_the_lock_identical_outputs_pass_whatever_the_machine(tmp_path):
    locked_project(tmp_path, "weights", accuracy_file(0.4, 0.4), REFERENCE)
    commit_reference(tmp_path)
    locked_project(tmp_path, "weights", accuracy_file(0.4, 0.4), {"cpu": "another", "bf16_native": False, "id": "bbb"})
    identical, messages = compare_with_lock(tmp_path)
    assert messages == [] and identical == ["metrics/epochs/e20/evaluate/accuracy.json", "models/e20/model.pth"]


def test_against_the_lock_names_differences_accuracy_deltas_and_the_precision_cause(tmp_path):
    locked_project(tmp_path, "weights", accuracy_file(0.4, 0.4), REFERENCE)
    commit_reference(tmp_path)
    locked_project(tmp_path, "other weights", accuracy_file(0.5, 0.35), {"cpu": "CPU without", "bf16_native": False, "id": "bbb"})
    identical, messages = compare_with_lock(tmp_path)
    assert identical == []
    assert messages[:3] == [
        "metrics/epochs/e20/evaluate/accuracy.json: different",
        "  e20 pth: accuracy 0.400 -> 0.500 (+0.100)",
        "  e20 onnx-int8: accuracy 0.400 -> 0.350 (-0.050)",
    ]
    assert messages[3] == "models/e20/model.pth: different"
    assert messages[4].startswith("likely cause: this CPU trains in fp32 where the reference machine trained in bf16")


def test_likely_cause_follows_the_pipeline_order():
    fp32 = {"cpu": "x", "bf16_native": False}
    assert likely_cause(["data/raw", "models/e20/model.pth"], REFERENCE, fp32, "auto").startswith("the crawled data differs")
    assert likely_cause(["data/split", "models/e20/model.pth"], REFERENCE, fp32, "auto").startswith("the split differs")
    assert likely_cause(["metrics/epochs/e20/evaluate/accuracy.json"], REFERENCE, fp32, "auto").startswith("the models are identical")
    # a fixed precision trains alike on both CPUs: the CPU itself is the cause
    assert likely_cause(["models/e20/model.pth"], REFERENCE, fp32, "fp32").startswith("another CPU (x")
    assert likely_cause(["models/e20/model.pth"], REFERENCE, REFERENCE, "auto").startswith("training did not reproduce")
