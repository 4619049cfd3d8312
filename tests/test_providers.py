"""ONNX Runtime's execution providers: asked for in order, the CPU's always last as the fallback,
`auto` taking the first accelerator the installed build has, a missing one named in one line.

These run on onnxruntime's CPU build, whose providers are the CPU's and Azure's (remote
endpoints): Azure stands in for a second provider that a real session accepts, to see the order
reach ONNX Runtime. The GPUs' providers (CUDA, TensorRT, ...) are not run here."""

import onnxruntime as ort
import pytest

from birds_onnx.onnx_model import AUTO_ORDER, CPU, OnnxClassifier, ProviderError, choose_providers
from birds_onnx.predict import main, parse_args
from helpers.images import photo

CUDA, TENSORRT, AZURE = "CUDAExecutionProvider", "TensorrtExecutionProvider", "AzureExecutionProvider"
OPENVINO, DML, COREML = "OpenVINOExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider"


def test_the_cpu_provider_is_appended_once_as_the_fallback():
    gpu_build = [TENSORRT, CUDA, CPU]
    assert choose_providers([], gpu_build) == [CPU]
    assert choose_providers(["cuda"], gpu_build) == [CUDA, CPU]
    assert choose_providers(["tensorrt", "cuda"], gpu_build) == [TENSORRT, CUDA, CPU]  # in the order asked
    assert choose_providers(["cuda", "tensorrt"], gpu_build) == [CUDA, TENSORRT, CPU]
    assert choose_providers(["cpu"], gpu_build) == [CPU]
    assert choose_providers(["cpu", "cuda"], gpu_build) == [CPU, CUDA]  # as asked, and not twice
    assert choose_providers(["cuda", "cuda"], gpu_build) == [CUDA, CPU]


def test_names_are_full_or_short_in_any_case():
    available = [CUDA, DML, CPU]
    for name in ("cuda", "CUDA", "CUDAExecutionProvider", "cudaexecutionprovider"):
        assert choose_providers([name], available) == [CUDA, CPU]
    assert choose_providers(["dml"], available) == [DML, CPU]  # DirectML's short name is ONNX Runtime's own


def test_auto_takes_the_first_accelerator_in_the_preference_order():
    # Azure (listed by the CPU build) and TensorRT (an engine built at every start) are never taken
    assert choose_providers(["auto"], [AZURE, TENSORRT, OPENVINO, CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers(["auto"], [AZURE, TENSORRT, CPU]) == [CPU]
    assert choose_providers(["auto"], [OPENVINO, COREML, CPU]) == [COREML, CPU]
    assert choose_providers(["tensorrt", "auto"], [TENSORRT, CUDA, CPU]) == [TENSORRT, CUDA, CPU]
    assert choose_providers(["auto"]) == [CPU]  # this machine: onnxruntime's CPU build
    assert set(AUTO_ORDER) <= set(ort.get_all_providers())  # each spelled as ONNX Runtime does


def test_a_missing_provider_is_one_line_naming_the_available_ones(tmp_path, tiny_models, capsys):
    with pytest.raises(ProviderError, match=f"^execution provider 'rocm' is not in this onnxruntime {ort.__version__}; "
                                            f"it has: {CUDA}, {CPU}$"):
        choose_providers(["cuda", "rocm"], [CUDA, CPU])
    with pytest.raises(ProviderError, match="^execution provider 'tensorrt' is not in"):
        OnnxClassifier(tiny_models["onnx"], providers=["tensorrt"])
    available = ", ".join(ort.get_available_providers())
    image = photo(tmp_path / "bird.jpg", (80, 80))
    assert main([str(tiny_models["onnx"]), str(image), "--provider", "cpu,cuda"]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"birds-predict: execution provider 'cuda' is not in this onnxruntime {ort.__version__}; it has: {available}\n")


def test_the_providers_reach_the_session_in_order(tiny_models):
    assert OnnxClassifier(tiny_models["onnx"]).session.get_providers() == [CPU]  # the default: the CPU's alone
    classifier = OnnxClassifier(tiny_models["onnx"], providers=["azure"])
    assert (classifier.session.get_providers(), classifier.provider) == ([AZURE, CPU], AZURE)
    classifier = OnnxClassifier(tiny_models["onnx"], providers=["cpu", "azure"])
    assert (classifier.session.get_providers(), classifier.provider) == ([CPU, AZURE], CPU)


def test_the_command_takes_providers_in_order_and_shows_the_one_running(tmp_path, tiny_models, capsys, monkeypatch):
    assert parse_args(["m.onnx", "a.jpg"]).provider == ["auto"]
    assert parse_args(["m.onnx", "a.jpg", "--provider", "tensorrt,cuda"]).provider == ["tensorrt", "cuda"]
    asked = []
    monkeypatch.setattr("birds_onnx.onnx_model.choose_providers", lambda names: asked.append(names) or choose_providers(names))
    image = str(photo(tmp_path / "bird.jpg", (80, 80)))
    for option, running in (([], CPU), (["--provider", "azure,cpu"], AZURE)):
        assert main([str(tiny_models["onnx"]), image, "--progress", *option]) == 0
        err = capsys.readouterr().err
        assert err.startswith("\r1/1 images, ") and err.endswith(f" img/s on {running}\n")
    assert asked == [["auto"], ["azure", "cpu"]]
