import socket
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from helpers.images import photo
from helpers.models import TINY_CLASSES, activation_scales
from stages.export import (calibration_examples, first_that_agrees, held_out_examples, metadata, parity, quantize_checked,
                           quantize_int8, save_checked)
from stages.shared.formats import TorchClassifier
from stages.shared.paths import model_path
from stages.shared.splits import Example
from stages.shared.model import WeightsUnavailable, build_model, imagenet_weights_path, load_checkpoint
from birds_onnx.errors import ModelError
from birds_onnx.onnx_model import META_CLASSES, OnnxClassifier
from birds_onnx.preprocess import PreprocessSpec, preprocess_batch

CLASSES = TINY_CLASSES
SPEC = PreprocessSpec(resize=72, crop=64)


@pytest.fixture
def checkpoint(stage_project, on_the_stage_network):
    return stage_project / model_path(1, "pth")


@pytest.fixture
def exported_models(exported) -> dict[str, Path]:
    """The files the export stage wrote for the stage network (conftest.py runs it once per session)."""
    return {fmt: exported / model_path(1, fmt) for fmt in ("pth", "onnx", "onnx-int8")}


@pytest.fixture
def onnx_path(exported_models):
    return exported_models["onnx"]


def test_checkpoint_round_trip_with_weights_only(checkpoint):
    model, classes, spec = load_checkpoint(checkpoint)
    saved = torch.load(checkpoint, weights_only=True)
    assert classes == CLASSES and spec == SPEC and saved["epochs"] == 1
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved["state_dict"][key])
    assert not model.training


def test_broken_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "model.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="model.pth is not a checkpoint written by the train stage"):
        load_checkpoint(bad)
    with pytest.raises(ModelError, match="run the train stage first"):
        load_checkpoint(tmp_path / "missing.pth")


def network_reachable() -> bool:
    try:
        socket.create_connection(("download.pytorch.org", 443), timeout=3).close()
        return True
    except OSError:
        return False


def test_imagenet_offline_without_cache_says_where_to_put_the_file(tmp_path, monkeypatch):
    if network_reachable():
        pytest.skip("network available: the weights would really be downloaded")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailable) as err:
        build_model(3, "imagenet")
    assert str(imagenet_weights_path()) in str(err.value)
    assert str(tmp_path) in str(err.value)


def test_imagenet_weights_come_from_torchvision_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(1)
    cached = build_model(1000)  # stands in for the ImageNet file: same architecture and keys
    imagenet_weights_path().parent.mkdir(parents=True)
    torch.save(cached.state_dict(), imagenet_weights_path())
    model = build_model(3, "imagenet")
    assert torch.equal(model.conv1.weight, cached.conv1.weight)
    assert model.fc.out_features == 3


def test_onnx_file_is_self_contained_and_checked(onnx_path):
    assert [p.name for p in onnx_path.parent.iterdir() if p.name.startswith("model.onnx")] == ["model.onnx"]
    proto = onnx.load(str(onnx_path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 18
    assert {p.key for p in proto.metadata_props} >= {META_CLASSES}


def test_both_models_take_a_batch_of_images_and_give_logits(exported_models):
    """The interface a predictor relies on: input `image` and output `logits`, any batch size."""
    for fmt in ("onnx", "onnx-int8"):
        graph = onnx.load(str(exported_models[fmt])).graph
        shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in [*graph.input, *graph.output]}
        assert shapes == {"image": ["batch", 3, 64, 64], "logits": ["batch", len(CLASSES)]}, fmt


def test_export_writes_its_outputs_and_nothing_else(exported, stage_project):
    def files(root):
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert files(exported) - files(stage_project) == {"models/e1/model.onnx", "models/e1/model.int8.onnx", "metrics/epochs/e1/export.json"}


def test_exported_models_carry_no_paths_of_this_machine(exported_models):
    """Source stack traces would put this Python install's paths into the shipped file and make
    the bytes depend on where the project is checked out."""
    for fmt in ("onnx", "onnx-int8"):
        assert not [n.name for n in onnx.load(str(exported_models[fmt])).graph.node if n.metadata_props or n.doc_string]
        assert b"site-packages" not in exported_models[fmt].read_bytes(), fmt


def test_export_parity_and_shared_preprocessing(exported_models, on_the_stage_network):
    pth, ort_model = TorchClassifier(exported_models["pth"]), OnnxClassifier(exported_models["onnx"])
    assert ort_model.classes == pth.classes == CLASSES
    assert ort_model.spec == pth.spec == SPEC
    batch = np.random.default_rng(0).standard_normal((5, 3, 64, 64), dtype=np.float32)
    result = parity(pth(batch), ort_model(batch))
    assert result["max_abs_logit_diff"] < 1e-3
    assert result["top1_agreement"] == 1.0


def test_parity_reports_disagreement():
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[1.0, 0.0], [2.0, 1.0]])
    assert parity(a, b) == {"max_abs_logit_diff": 2.0, "top1_agreement": 0.5}


def test_a_model_whose_declared_shapes_contradict_its_graph_is_not_saved(tmp_path):
    """The full check infers every shape: a Relu of 3 values declared as giving 4 passes the
    plain check, not the full one."""
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    with pytest.raises(onnx.shape_inference.InferenceError, match="differ"):
        save_checked(proto, metadata(CLASSES, SPEC), tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir())


def test_broken_onnx_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ModelError, match="ONNX Runtime cannot load it"):
        OnnxClassifier(bad)
    with pytest.raises(ModelError, match="no such model file"):
        OnnxClassifier(tmp_path / "none.onnx")


def test_int8_model_is_static_qdq_with_per_channel_weights(exported_models):
    proto = onnx.load(str(exported_models["onnx-int8"]))
    onnx.checker.check_model(proto, full_check=True)
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert not ops & {"DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}  # static, not dynamic
    initializers = {i.name: i for i in proto.graph.initializer}
    producers = {out: n for n in proto.graph.node for out in n.output}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    for conv in convs:
        weight = producers[conv.input[1]]  # Conv(x, DequantizeLinear(int8 weight, scale per channel))
        assert weight.op_type == "DequantizeLinear"
        assert initializers[weight.input[0]].data_type == onnx.TensorProto.INT8
        out_channels = initializers[weight.input[0]].dims[0]
        assert list(initializers[weight.input[1]].dims) == [out_channels]
        activation = producers[conv.input[0]]
        assert activation.op_type == "DequantizeLinear"
        assert initializers[activation.input[2]].data_type == onnx.TensorProto.UINT8
    assert exported_models["onnx-int8"].stat().st_size < 0.3 * exported_models["onnx"].stat().st_size


def test_int8_model_keeps_its_logits_fp32(exported_models):
    """The classifier's Gemm runs on quantised inputs but writes the logits straight out, not
    through a QuantizeLinear that would round them to 256 levels and turn close calls into ties."""
    proto = onnx.load(str(exported_models["onnx-int8"]))
    producers = {out: n for n in proto.graph.node for out in n.output}
    head = producers[proto.graph.output[0].name]
    assert head.op_type == "Gemm"
    assert all(producers[name].op_type == "DequantizeLinear" for name in head.input)


def test_int8_model_keeps_metadata_and_follows_pytorch(tmp_path, exported_models, on_the_stage_network):
    int8 = OnnxClassifier(exported_models["onnx-int8"])
    assert int8.classes == CLASSES and int8.spec == SPEC
    images = preprocess_batch([photo(tmp_path / f"{i}.jpg", (70 + 7 * i, 100), seed=10 + i) for i in range(6)], SPEC)
    reference = TorchClassifier(exported_models["pth"])(images)
    # int8 rounds every activation to one of 256 levels: close to the fp32 logits, not equal (the
    # untrained stage network's logits are small and close together: it misses them by about 10%)
    assert 0 < parity(reference, int8(images))["max_abs_logit_diff"] < 0.25 * np.abs(reference).max()


def test_calibration_images_come_from_every_class():
    train = [Example(f"{c}_{i}.jpg", c) for c in ("myna", "crow", "gull") for i in range(5)]  # grouped, as split writes
    picked = calibration_examples(train, 6)
    assert len(set(picked)) == 6
    assert sorted(e.label for e in picked) == ["crow", "crow", "gull", "gull", "myna", "myna"]
    assert calibration_examples(train, 15) == train


def test_histogram_calibration_takes_any_number_of_images_and_is_the_method_asked_for(tmp_path, onnx_path):
    """entropy and percentile stack every run's activations: 9 images must work as well as 8.
    Percentile calibration leaves out the rarest extremes that minmax keeps: every activation's
    range is narrower (onnxruntime's default is minmax, so a method that never reaches it shows)."""
    images = preprocess_batch([photo(tmp_path / f"{i}.jpg", (80, 70 + 5 * i), seed=i) for i in range(9)], SPEC)
    dest = tmp_path / "model.int8.onnx"
    quantize_int8(onnx_path, images, "percentile", metadata(CLASSES, SPEC), dest)
    assert OnnxClassifier(dest).classes == CLASSES
    quantize_int8(onnx_path, images, "minmax", metadata(CLASSES, SPEC), tmp_path / "minmax.onnx")
    percentile, minmax = activation_scales(dest), activation_scales(tmp_path / "minmax.onnx")
    assert percentile.keys() == minmax.keys() and len(minmax) > 20  # each conv's input, the blocks' adds, ...
    assert all(percentile[tensor] < minmax[tensor] for tensor in minmax)


def test_held_out_images_are_the_training_images_calibration_did_not_see():
    train = [Example(f"{c}_{i}.jpg", c) for c in ("myna", "crow", "gull") for i in range(5)]
    calibration = calibration_examples(train, 6)
    held_out = held_out_examples(train, calibration)
    assert len(held_out) == 9 and not set(held_out) & set(calibration) and set(held_out) | set(calibration) == set(train)
    assert held_out_examples(train, train) == train  # all calibrated on: checked on those


@pytest.mark.parametrize("agreements, min_agreement, kept, tried", [
    ({"minmax": 0.9, "percentile": 1.0, "entropy": 1.0}, 0.97, "percentile", ["minmax", "percentile"]),
    ({"minmax": 0.97, "percentile": 1.0}, 0.97, "minmax", ["minmax"]),  # exactly the share asked is enough
    ({"minmax": 0.8, "percentile": 0.9, "entropy": 0.9}, 0.97, "percentile", ["minmax", "percentile", "entropy"]),  # none: the closest, first of equals
    ({"entropy": 0.5, "minmax": 1.0}, 0.0, "entropy", ["entropy"]),  # the order asked, whatever the method
])
def test_the_first_calibration_that_agrees_is_kept_else_the_closest(agreements, min_agreement, kept, tried):
    asked = []
    agreement_of = lambda method: asked.append(method) or agreements[method]  # noqa: E731
    assert first_that_agrees(list(agreements), agreement_of, min_agreement) == (kept, {m: agreements[m] for m in tried})
    assert asked == tried  # no method quantised past the one kept


def test_quantize_checked_keeps_the_model_of_the_method_chosen(tmp_path, onnx_path):
    """On tiny data, the real quantiser and both int8 runtimes: a share nothing reaches tries every
    method and keeps the closest; a share of 0 keeps the first. The file kept is that method's model."""
    images = preprocess_batch([photo(tmp_path / f"{i}.jpg", (80, 70 + 5 * i), seed=i) for i in range(9)], SPEC)
    calibration, held_out = images[:6], images[6:]
    dest = tmp_path / "model.int8.onnx"
    methods = ["percentile", "minmax"]
    every = quantize_checked(onnx_path, calibration, held_out, methods, 1.01, metadata(CLASSES, SPEC), dest, threads=1)
    assert list(every["agreement_with_fp32"]) == methods and every["held_out_images"] == 3
    assert every["method"] == max(methods, key=every["agreement_with_fp32"].get)
    assert every["meets_min_agreement"] is False
    assert OnnxClassifier(dest).classes == CLASSES
    quantize_int8(onnx_path, calibration, every["method"], metadata(CLASSES, SPEC), tmp_path / "direct.onnx")
    assert activation_scales(dest) == activation_scales(tmp_path / "direct.onnx")

    first = quantize_checked(onnx_path, calibration, held_out, methods, 0.0, metadata(CLASSES, SPEC), dest, threads=1)
    assert (first["method"], list(first["agreement_with_fp32"]), first["meets_min_agreement"]) == ("percentile", ["percentile"], True)
    quantize_int8(onnx_path, calibration, "percentile", metadata(CLASSES, SPEC), tmp_path / "percentile.onnx")
    assert activation_scales(dest) == activation_scales(tmp_path / "percentile.onnx")
