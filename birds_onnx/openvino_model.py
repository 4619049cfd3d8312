"""Running an exported .onnx classifier with OpenVINO: a second runtime for the same files.

OpenVINO is optional (`pip install 'birds-onnx[openvino]'`): without it the rest of the package
works, and OpenVinoClassifier raises RuntimeMissing, whose message says how to install it.

Precision: on a CPU that computes bf16 natively (AVX512-BF16 or AMX; OpenVINO then lists BF16
among the CPU's optimisation capabilities) the fp32 model runs in bf16, about twice as fast as
fp32 with the same answers on the pipeline's models; elsewhere in fp32, as emulated bf16 would be
slower than fp32. A QDQ int8 model runs its convolutions in int8 whatever is asked. `precision`
says what the convolutions, nearly all of the work, ran in: read back from the compiled model,
not what was asked, since OpenVINO quietly falls back to fp32 where bf16 is not native.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from birds_onnx.errors import BirdsOnnxError
from birds_onnx.errors import ModelError
from birds_onnx.onnx_model import META_CLASSES, META_PREPROCESS
from birds_onnx.preprocess import PreprocessSpec

try:
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints
except ImportError as e:  # the optional extra is not installed
    ov, _missing = None, e

PRECISIONS = ("auto", "fp32", "bf16")  # auto: bf16 where the CPU computes it natively, else fp32
# OpenVINO's names of a layer's runtime precision -> ours
_PRECISION_NAMES = {"u8": "int8", "i8": "int8", "bf16": "bf16", "f16": "fp16", "f32": "fp32"}


class RuntimeMissing(BirdsOnnxError):
    """OpenVINO was asked for but is not installed."""


def native_bf16(capabilities: list[str]) -> bool:
    """Whether a CPU with OpenVINO's OPTIMIZATION_CAPABILITIES computes bf16 in hardware."""
    return "BF16" in capabilities


def compile_options(threads: int, precision: str) -> dict:
    """`threads` threads for one inference, one stream, latency mode: the same CPU budget as
    ONNX Runtime's intra-op threads and torch's, so formats compare on equal terms."""
    return {
        props.inference_num_threads: threads,
        props.num_streams: 1,
        hints.performance_mode: hints.PerformanceMode.LATENCY,
        hints.inference_precision: {"fp32": "f32", "bf16": "bf16"}[precision],
    }


def _last_line(error: Exception) -> str:
    """OpenVINO's messages start with the C++ file and check that failed; the last line says why."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def convolution_precision(compiled) -> str:
    """What the compiled model's convolutions run in: int8, bf16, fp16 or fp32 (most used first,
    joined by '+', if they differ)."""
    counts = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == "Convolution":
            name = info["runtimePrecision"].astype(str)
            counts[_PRECISION_NAMES.get(name, name)] += 1
    return "+".join(name for name, _ in counts.most_common()) or "fp32"


class OpenVinoClassifier:
    """The same interface as OnnxClassifier: `classes`, `spec`, and a call mapping an NCHW
    float32 batch to logits; plus `precision`, what it computes in on this CPU."""

    def __init__(self, path: Path | str, threads: int = 2, precision: str = "auto"):
        if ov is None:
            raise RuntimeMissing(f"OpenVINO is not installed ({_missing}): pip install 'birds-onnx[openvino]'")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        # The ONNX reader alone: Core.read_model would try every other format's reader on a broken
        # file, and TensorFlow's writes its parse errors to stderr.
        onnx_reader = ov.frontend.FrontEndManager().load_by_framework("onnx")
        try:
            model = onnx_reader.convert(onnx_reader.load(str(path)))
        except Exception as e:  # OpenVINO's GeneralFailure, OpConversionFailure, ...
            raise ModelError(f"{path}: OpenVINO cannot read it as ONNX ({_last_line(e)})") from None
        framework = model.get_rt_info()["framework"] if model.has_rt_info(["framework"]) else {}
        try:  # the ONNX file's metadata_props, which OpenVINO keeps under "framework"
            self.classes: list[str] = json.loads(framework[META_CLASSES].astype(str))
            self.spec = PreprocessSpec.from_dict(json.loads(framework[META_PREPROCESS].astype(str)))
        except (KeyError, ValueError, TypeError) as e:
            raise ModelError(f"{path}: class names or preprocessing missing from its metadata ({e})") from None
        core = ov.Core()
        if precision == "auto":
            precision = "bf16" if native_bf16(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")) else "fp32"
        try:
            compiled = core.compile_model(model, "CPU", compile_options(threads, precision))
        except Exception as e:
            raise ModelError(f"{path}: OpenVINO cannot compile it for this CPU ({_last_line(e)})") from None
        self.precision = convolution_precision(compiled)
        self.request = compiled.create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """NCHW float32 batch -> logits (N, classes)."""
        return self.request.infer({0: batch})[0]
