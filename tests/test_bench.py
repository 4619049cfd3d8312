"""The benchmark's pieces (FLOP count, interleaved timing, model choice) and the whole command."""

import shutil

import numpy as np
import pytest
import yaml

from conftest import make_project, run, tiny_params
from stages.tools.bench import batch_of_one, flops_per_image, pipeline_models, take_turns
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


def test_calls_take_turns_round_by_round():
    calls = []
    seconds = take_turns(
        {"a": (lambda: calls.append("a"), 1, 2), "b": (lambda: calls.append("b"), 0, 1)}, rounds=2
    )
    assert calls == ["a", "a", "a", "b", "a", "a", "a", "b"]  # warm-up runs are not timed
    assert {name: len(s) for name, s in seconds.items()} == {"a": 4, "b": 2}


def test_each_call_classifies_the_next_image_alone():
    seen = []
    call = batch_of_one(lambda batch: seen.append(batch.copy()), np.arange(3, dtype=np.float32).reshape(3, 1, 1, 1))
    for _ in range(4):
        call()
    assert [b.shape for b in seen] == [(1, 1, 1, 1)] * 4
    assert [float(b.item()) for b in seen] == [0, 1, 2, 0]


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
    result = run(["python", "-m", "stages.tools.bench", "--warmup", "1", "--runs", "2", "--rounds", "1", "--folder-images", "12"], project)
    out = result.stdout
    assert "models: a freshly initialised ResNet50" in out
    assert "ResNet50 at 64x64: " in out and "GEMM peaks" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| format")][:3]
    assert [row.split(" | ")[0] for row in rows] == ["| pth", "| onnx", "| onnx-int8"]
    assert rows[0].split(" | ")[4] == "1.00x"
    throughput = out[out.index("throughput, img/s"):].splitlines()
    assert "45 synthetic pictures" in throughput[0] and "12-image folder" in throughput[1]
    assert [row.split(" | ")[0] for row in throughput[3:6]] == ["| pth", "| onnx", "| onnx-int8"]


def test_int8_profile_attributes_every_convolution_to_a_resnet_stage():
    from stages.tools.int8_profile import STAGES, stage_flops, stage_of

    model = build_model(9).eval()
    per_stage = stage_flops(model, 224)
    assert list(per_stage) == list(STAGES)
    # the four stages hold all of the network's FLOPs but the 9-way head's few thousand
    assert 0 < flops_per_image(model, 224) - sum(per_stage.values()) < 1e5
    assert [stage_of(size, 224) for size in (112, 56, 28, 14, 7)] == [STAGES[0], STAGES[0], *STAGES[1:]]
    assert [stage_of(size, 64) for size in (32, 16, 8, 4, 2)] == [STAGES[0], STAGES[0], *STAGES[1:]]
