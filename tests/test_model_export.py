import socket

import numpy as np
import onnx
import pytest
import torch

from stages.export import export_onnx, parity
from stages.formats import TorchClassifier
from stages.model import WeightsUnavailable, build_model, imagenet_weights_path, load_checkpoint, save_checkpoint
from stages.onnx_model import META_CLASSES, ModelError, OnnxClassifier
from stages.preprocess import PreprocessSpec

CLASSES = ["myna", "crow", "gull"]
SPEC = PreprocessSpec(resize=72, crop=64)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model.pth"
    save_checkpoint(path, build_model(len(CLASSES)), CLASSES, SPEC, epochs=1)
    return path


@pytest.fixture(scope="module")
def onnx_path(checkpoint):
    model, classes, spec = load_checkpoint(checkpoint)
    path = checkpoint.with_suffix(".onnx")
    export_onnx(model, classes, spec, opset=18, dest=path)
    return path


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
    with pytest.raises(ValueError, match="model.pth is not a checkpoint written by the train stage"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="run the train stage first"):
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
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert {p.key for p in proto.metadata_props} >= {META_CLASSES}


def test_export_parity_and_shared_preprocessing(checkpoint, onnx_path):
    pth, ort_model = TorchClassifier(checkpoint), OnnxClassifier(onnx_path)
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


def test_broken_onnx_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ModelError, match="ONNX Runtime cannot load it"):
        OnnxClassifier(bad)
    with pytest.raises(ModelError, match="no such model file"):
        OnnxClassifier(tmp_path / "none.onnx")
