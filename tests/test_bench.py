"""The benchmark's pieces (FLOP count, interleaved timing, model choice) and the whole command."""

import shutil

import numpy as np
import pytest

from PIL import Image

from birds_onnx.preprocess import PreprocessSpec
from helpers.images import photo
from helpers.project import make_project, params_file, run, tiny_params
from stages.tools.bench import (
    batch_of_one, combined_limit, decode_core_seconds, enlarged, flops_per_image, openvino_summary, pipeline_models, table, take_turns,
)
from stages.shared.model import build_model
from stages.shared.params import load_params
from stages.tools.roofline import GEMM_SIZE, fp32_peak, gemm_gflops, peak


def cells(line: str) -> list[str]:
    """The cells of a row of a markdown table, without the padding that aligns the columns."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_resnet50_flops_match_the_published_count():
    """torchvision lists ResNet50 at 4.09 G multiply-adds for 224 px: 8.2 GFLOP. The count
    follows the crop: a quarter of the pixels, about a quarter of the work (a little more, as
    the last feature maps round up to 4 x 4 instead of 3.5 x 3.5)."""
    model = build_model(9).eval()
    at_224 = flops_per_image(model, 224)
    assert 8.0e9 < at_224 < 8.3e9
    assert 0.25 < flops_per_image(model, 112) / at_224 < 0.28


def test_the_peak_of_a_precision_is_its_fastest_librarys_rate():
    assert gemm_gflops(1.0) == 2 * GEMM_SIZE**3 / 1e9  # a multiply-add counts twice
    peaks = {"fp32 torch.mm": 300.0, "fp32 ONNX Runtime MatMul": 350.0, "int8 ONNX Runtime MatMulInteger": 900.0,
             "bf16 torch.mm": 500.0}
    assert fp32_peak(peaks) == peak(peaks, "fp32") == 350.0
    assert peak(peaks, "int8") == 900.0 and peak(peaks, "bf16") == 500.0


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


@pytest.mark.parametrize("decode_s, model_img_per_s, threads, cores, limit", [
    (0.002, 250.0, 2, 2, 2 / (0.002 + 2 / 250)),  # 2 ms decoding beside a 8 ms (2-core) model: 200 img/s
    (0.0, 250.0, 2, 2, 250.0),  # free decoding: the model alone
    (0.001, 100.0, 2, 16, 100.0),  # idle cores decode: never more than the model
    (0.1, 1000.0, 2, 16, 20.0),  # slow decoding on 2 threads: never more than the decoders
])
def test_the_combined_limit_shares_the_cores_between_decoding_and_the_model(decode_s, model_img_per_s, threads, cores, limit):
    assert combined_limit(decode_s, model_img_per_s, threads, cores) == pytest.approx(limit)


def test_decoding_is_timed_on_photo_sized_pictures(tmp_path):
    small = [photo(tmp_path / f"{i}.jpg", (120, 90), seed=i) for i in range(3)]
    photos = enlarged(small, (1600, 1200))
    assert [Image.open(p).size for p in photos] == [(1600, 1200)] * 3
    spec = PreprocessSpec(resize=72, crop=64)
    # a timing: no file holds it to compare with; kept as an order (photos cost more to decode than their small originals)
    assert 0 < decode_core_seconds(small, spec) < decode_core_seconds(photos, spec)


def test_pipeline_models_are_used_when_built(tmp_path, tiny_models, monkeypatch):
    params_file(tmp_path, tiny_params())
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


@pytest.mark.slow
def test_bench_runs_in_a_fresh_clone(tmp_path):
    project = make_project(tmp_path / "project", tiny_params())
    result = run(["python", "-m", "stages.tools.bench", "--warmup", "1", "--runs", "2", "--rounds", "1", "--folder-images", "12"], project)
    out = result.stdout
    assert "models: a freshly initialised ResNet50" in out
    assert "ResNet50 at 64x64: " in out and "GEMM peaks" in out
    formats = ["pth", "onnx", "onnx-int8", "openvino", "openvino-int8"]
    rows = [cells(line) for line in out.splitlines() if line.startswith("| ") and not line.startswith("| format")][:5]
    assert [row[0] for row in rows] == formats
    assert rows[0][4] == "1.00x" and rows[1][5] == "1.00x"  # vs pth, vs onnx
    ran_in = {row[0]: row[7] for row in rows}
    assert ran_in == {"pth": "fp32", "onnx": "fp32", "onnx-int8": "int8", "openvino": ran_in["openvino"], "openvino-int8": "int8"}
    assert ran_in["openvino"] in ("fp32", "bf16") and all(row[8].endswith("%") for row in rows)
    if ran_in["openvino"] == "bf16":  # a CPU computing bf16 natively: its GEMM peak and the speed-up
        assert "bf16 OpenVINO MatMul" in out and "openvino ran in bf16 (native on this CPU): " in out
    else:
        assert "bf16 OpenVINO MatMul" not in out and "so no speed-up over onnx is claimed" in out
    assert "fp32 OpenVINO MatMul" in out and "openvino-int8 reaches " in out
    throughput = out[out.index("throughput, img/s"):].splitlines()
    assert "45 synthetic pictures" in throughput[0] and "photos: 12 pictures at 4032x3024" in throughput[0]
    assert "core-ms per test image" in throughput[1] and "combined limit = " in throughput[1]
    assert cells(throughput[2])[3:7] == ["streaming, test images", "combined limit", "share", "streaming, photos"]
    rows = [cells(row) for row in throughput[4:9]]
    assert [row[0] for row in rows] == formats
    for row in rows:  # each share is the streaming figure over the limit beside it
        for streamed, limit, share in (row[3:6], row[6:9]):
            assert share == f"{float(streamed) / float(limit):.0%}"


def test_int8_profile_attributes_every_convolution_to_a_resnet_stage():
    from stages.tools.int8_profile import STAGES, stage_flops, stage_of

    model = build_model(9).eval()
    per_stage = stage_flops(model, 224)
    assert list(per_stage) == list(STAGES)
    # the four stages hold all of the network's FLOPs but the 9-way head's few thousand
    assert 0 < flops_per_image(model, 224) - sum(per_stage.values()) < 1e5
    assert [stage_of(size, 224) for size in (112, 56, 28, 14, 7)] == [STAGES[0], STAGES[0], *STAGES[1:]]
    assert [stage_of(size, 64) for size in (32, 16, 8, 4, 2)] == [STAGES[0], STAGES[0], *STAGES[1:]]


def test_rows_show_each_formats_share_of_its_own_precisions_roofline():
    seconds = {"pth": np.array([0.1]), "onnx": np.array([0.05]), "onnx-int8": np.array([0.02]),
               "openvino": np.array([0.025]), "openvino-int8": np.array([0.0125])}
    precisions = {"pth": "fp32", "onnx": "fp32", "onnx-int8": "int8", "openvino": "bf16", "openvino-int8": "int8"}
    rows = [cells(line) for line in table(seconds, precisions, {"fp32": 25, "int8": 100, "bf16": 50}).splitlines()[2:]]
    assert [(r[4], r[5], r[6], r[7], r[8]) for r in rows] == [
        ("1.00x", "0.50x", "40%", "fp32", "40%"),
        ("2.00x", "1.00x", "80%", "fp32", "80%"),
        ("5.00x", "2.50x", "200%", "int8", "50%"),
        ("4.00x", "2.00x", "160%", "bf16", "80%"),
        ("8.00x", "4.00x", "320%", "int8", "80%"),
    ]
    assert openvino_summary(seconds, precisions, {"fp32": 25, "int8": 100, "bf16": 50}) == [
        "openvino ran in bf16 (native on this CPU): 2.00x onnx (ONNX Runtime fp32) at batch 1 (goal: at least 1.8x), 80% of the bf16 roofline.",
        "openvino-int8 reaches 80% of the int8 roofline (goal: at least 90%), 1.60x onnx-int8.",
    ]
    precisions["openvino"] = "fp32"  # a CPU without native bf16: no bf16 roofline, no speed-up claimed
    assert cells(table(seconds, precisions, {"fp32": 25, "int8": 100}).splitlines()[5])[-2:] == ["fp32", "160%"]
    assert openvino_summary(seconds, precisions, {"fp32": 25, "int8": 100})[0] == (
        "openvino ran in fp32: this CPU does not compute bf16 natively (AVX512-BF16 or AMX), so no speed-up over onnx is claimed (2.00x here)."
    )
