"""OpenVINO as a second runtime of the same .onnx files: the classifier, the precision it records,
the formats openvino and openvino-int8, and `birds-predict --runtime openvino`."""

import json

import numpy as np
import onnx
import openvino as ov
import pytest

from birds_onnx.errors import ModelError
from birds_onnx.onnx_model import OnnxClassifier, softmax
from birds_onnx.openvino_model import OpenVinoClassifier, native_bf16
from birds_onnx.predict import main
from birds_onnx.preprocess import preprocess_batch
from helpers.images import photo
from helpers.models import TINY_CLASSES
from stages.shared.formats import load_classifier, precision

# What "auto" gives on the CPU running the tests: bf16 where it computes bf16 natively.
NATIVE_BF16 = native_bf16(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


@pytest.fixture(scope="module")
def inputs(module_tmp_path, tiny_models) -> np.ndarray:
    """Twelve preprocessed photos of different sizes and content at the tiny models' crop."""
    paths = [photo(module_tmp_path / f"{i}.jpg", (70 + 9 * i, 100 - 3 * i), seed=i) for i in range(12)]
    return preprocess_batch(paths, OnnxClassifier(tiny_models["onnx"]).spec)


def test_native_bf16_is_read_from_openvinos_cpu_capabilities():
    assert native_bf16(["FP32", "BF16", "INT8", "BIN", "EXPORT_IMPORT"])  # AVX512-BF16 or AMX
    assert not native_bf16(["FP32", "INT8", "BIN", "EXPORT_IMPORT"])  # AVX2, or AVX-512 without BF16


@pytest.mark.parametrize("fmt", ["onnx", "onnx-int8"])
def test_class_names_and_preprocessing_come_from_the_onnx_file(tiny_models, fmt):
    classifier, reference = OpenVinoClassifier(tiny_models[fmt]), OnnxClassifier(tiny_models[fmt])
    assert classifier.classes == reference.classes == TINY_CLASSES
    assert classifier.spec == reference.spec


def test_fp32_logits_match_onnx_runtime_and_every_batch_size_works(tiny_models, inputs):
    classifier, reference = OpenVinoClassifier(tiny_models["onnx"], precision="fp32"), OnnxClassifier(tiny_models["onnx"])
    assert classifier.precision == "fp32"
    expected = reference(inputs)
    np.testing.assert_allclose(classifier(inputs), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    for size in (1, 5):  # the model's batch is dynamic: one compiled model serves them all
        np.testing.assert_allclose(classifier(inputs[:size]), expected[:size], rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("fmt,openvino_fmt,tolerance", [("pth", "openvino", 0.02), ("onnx-int8", "openvino-int8", 0.05)])
def test_openvino_formats_agree_with_their_reference(tiny_models, inputs, fmt, openvino_fmt, tolerance):
    """openvino (bf16 or fp32, whatever this CPU runs) picks pth's class; openvino-int8, the same
    quantised model, ONNX Runtime int8's. An untrained model favours one class, so the logits
    must stay close too, as a fraction of their spread: 2% for bf16's 8-bit mantissa; 5% for int8,
    as the two runtimes round activations differently (2.5% here, as far as int8 is from fp32)."""
    reference = load_classifier(fmt, tiny_models[fmt], threads=2)
    classifier = load_classifier(openvino_fmt, tiny_models[openvino_fmt.replace("openvino", "onnx")], threads=2)
    expected, logits = reference(inputs), classifier(inputs)
    assert (logits.argmax(1) == expected.argmax(1)).mean() >= 0.97
    assert np.abs(logits - expected).max() <= tolerance * (expected.max() - expected.min())


def test_each_format_records_the_precision_it_ran_in(tiny_models):
    ran_in = {fmt: precision(fmt, load_classifier(fmt, tiny_models[fmt.replace("openvino", "onnx")], threads=1))
              for fmt in ("pth", "onnx", "onnx-int8", "openvino", "openvino-int8")}
    assert ran_in == {"pth": "fp32", "onnx": "fp32", "onnx-int8": "int8",
                      "openvino": "bf16" if NATIVE_BF16 else "fp32", "openvino-int8": "int8"}


def test_precision_is_what_ran_not_what_was_asked(tiny_models):
    """bf16 asked on a CPU without native bf16: OpenVINO runs fp32, and the classifier says so."""
    assert OpenVinoClassifier(tiny_models["onnx"], precision="bf16").precision == ("bf16" if NATIVE_BF16 else "fp32")
    assert OpenVinoClassifier(tiny_models["onnx-int8"], precision="bf16").precision == "int8"
    with pytest.raises(ValueError, match="precision must be one of"):
        OpenVinoClassifier(tiny_models["onnx"], precision="fp16")


def test_openvino_gets_the_same_cpu_budget(tiny_models):
    compiled = OpenVinoClassifier(tiny_models["onnx"], threads=2).request.get_compiled_model()
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 2
    assert compiled.get_property("NUM_STREAMS") == 1
    assert str(compiled.get_property("PERFORMANCE_HINT")) == "LATENCY"


def test_unusable_models_are_one_line_each(tmp_path, tiny_models):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00not a model")
    foreign = tmp_path / "foreign.onnx"  # a valid model that the export stage did not write
    proto = onnx.load(str(tiny_models["onnx"]))
    del proto.metadata_props[:]
    onnx.save(proto, str(foreign))
    messages = []
    for path in (broken, foreign, tmp_path / "none.onnx"):
        with pytest.raises(ModelError) as caught:
            OpenVinoClassifier(path)
        messages.append(str(caught.value))
    assert all("\n" not in m for m in messages)
    assert messages[0] == f"{broken}: OpenVINO cannot read it as ONNX (Model can't be parsed)"
    assert "class names or preprocessing missing from its metadata" in messages[1]
    assert messages[2] == f"{tmp_path / 'none.onnx'}: no such model file"


@pytest.mark.parametrize("fmt", ["onnx", "onnx-int8"])
def test_predictor_runs_the_model_with_openvino(tmp_path, tiny_models, capsys, fmt):
    paths = [str(photo(tmp_path / f"{i}.jpg", (90 + 7 * i, 80), seed=i)) for i in range(4)]
    assert main([str(tiny_models[fmt]), *paths, "--format", "jsonl", "--top", "3", "--runtime", "openvino"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    classifier = OpenVinoClassifier(tiny_models[fmt])
    expected = softmax(classifier(preprocess_batch(paths, classifier.spec)))  # the same batch as the predictor's
    assert [r["path"] for r in rows] == paths
    for row, probabilities in zip(rows, expected):
        assert [t["class"] for t in row["top"]] == [TINY_CLASSES[i] for i in np.argsort(-probabilities)]
        assert [t["probability"] for t in row["top"]] == pytest.approx(sorted(probabilities, reverse=True), abs=1e-6)
    assert main([str(tiny_models[fmt]), *paths, "--format", "jsonl", "--top", "3"]) == 0  # ONNX Runtime, the default
    default = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["top"][0]["class"] for r in default] == [r["top"][0]["class"] for r in rows]


def test_predictor_names_a_bad_model_for_openvino_in_one_line(tmp_path, capsys):
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"\x00not a model")
    assert main([str(broken), str(photo(tmp_path / "bird.jpg", (100, 80))), "--runtime", "openvino"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"birds-predict: {broken}: OpenVINO cannot read it as ONNX (Model can't be parsed)\n"
