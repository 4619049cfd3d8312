"""The reproducibility check: it passes on the real pipeline and catches runs that differ."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run, tiny_params
from stages.tools.check_repro import adjust_params, compare, override
from stages.params import ParamError, load_params


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
    files = {"data/split/train.csv": "path,class\na.jpg,myna\n", "metrics/e1/accuracy.json": accuracy,
             "metrics/e1/speed.json": speed}
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    lock = {"schema": "2.0", "stages": {
        "split": {"cmd": "python -m stages.split", "outs": [{"path": "data/split", "md5": "1.dir"}]},
        "evaluate@1": {"cmd": "python -m stages.evaluate --epochs 1", "outs": [
            {"path": "metrics/e1/accuracy.json", "md5": md5(accuracy)},
            {"path": "metrics/e1/speed.json", "md5": md5(speed)},
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
    assert message.startswith("metrics/e1/accuracy.json differs between the runs")
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
