"""The benchmark's pieces (FLOP count, interleaved timing, model choice) and the whole command."""

import shutil

import numpy as np
import pytest
import yaml

from conftest import make_project, run, tiny_params
from stages.bench import flops_per_image, pipeline_models, time_formats
from stages.model import build_model
from stages.params import load_params


def test_resnet50_flops_match_the_published_count():
    """torchvision lists ResNet50 at 4.09 G multiply-adds for 224 px: 8.2 GFLOP. The count
    follows the crop: a quarter of the pixels, about a quarter of the work (a little more, as
    the last feature maps round up to 4 x 4 instead of 3.5 x 3.5)."""
    model = build_model(9).eval()
    at_224 = flops_per_image(model, 224)
    assert 8.0e9 < at_224 < 8.3e9
    assert 0.25 < flops_per_image(model, 112) / at_224 < 0.28


def test_formats_take_turns_round_by_round():
    calls = []

    def classifier(name):
        return lambda batch: calls.append((name, batch.shape))

    images = np.zeros((3, 3, 4, 4), np.float32)
    seconds = time_formats({"a": classifier("a"), "b": classifier("b")}, images, warmup=1, runs=4, rounds=2)
    assert [name for name, _ in calls] == ["a"] * 3 + ["b"] * 3 + ["a"] * 3 + ["b"] * 3
    assert {shape for _, shape in calls} == {(1, 3, 4, 4)}  # batch 1
    assert {fmt: len(s) for fmt, s in seconds.items()} == {"a": 4, "b": 4}


def test_pipeline_models_are_used_when_built(tmp_path, tiny_models, monkeypatch):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(), allow_unicode=True), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    params = load_params()  # train.epochs: [1, 2]
    assert pipeline_models(params, None) is None
    for epochs in (1, 2):
        (tmp_path / f"models/e{epochs}").mkdir(parents=True)
        for path in tiny_models.values():
            shutil.copy(path, tmp_path / f"models/e{epochs}" / path.name)
    (tmp_path / "models/e2/model.int8.onnx").unlink()
    assert str(pipeline_models(params, None)) == "models/e1"  # e2 is incomplete
    with pytest.raises(SystemExit, match="models/e2/model.int8.onnx not found"):
        pipeline_models(params, 2)
    assert str(pipeline_models(params, 1)) == "models/e1"


def test_bench_runs_in_a_fresh_clone(tmp_path):
    project = make_project(tmp_path / "project", tiny_params())
    result = run(["python", "-m", "stages.bench", "--warmup", "1", "--runs", "2", "--rounds", "1"], project)
    out = result.stdout
    assert "models: a freshly initialised ResNet50" in out
    assert "ResNet50 at 64x64: " in out and "GEMM peaks" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| format")]
    assert [row.split(" | ")[0] for row in rows] == ["| pth", "| onnx", "| onnx-int8"]
    assert rows[0].split(" | ")[4] == "1.00x"
