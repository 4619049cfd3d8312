"""Running an exported .onnx classifier with ONNX Runtime. No torch here, on purpose:
this module and preprocess.py are all the standalone predictor needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from birds_onnx.errors import BirdsOnnxError, ModelError
from birds_onnx.preprocess import PreprocessSpec

# Keys of the model's metadata_props; values are JSON.
META_CLASSES = "birds_onnx.classes"
META_PREPROCESS = "birds_onnx.preprocess"


# ONNX Runtime's execution providers that run on the CPU alone, and the fallback of every choice
CPU = "CPUExecutionProvider"
# What `auto` takes, the first of these this onnxruntime build offers: the GPUs' own providers,
# then the operating systems' (Apple, Windows), then Intel's. Not TensorRT: it builds an engine
# for the model each time a session starts, unless an engine cache is configured (ask for it by
# name: `tensorrt,cuda`). Not Azure, which the CPU build lists too: it runs remote endpoints.
AUTO_ORDER = (
    "CUDAExecutionProvider",
    "MIGraphXExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "OpenVINOExecutionProvider",
)


class ProviderError(BirdsOnnxError):
    """An execution provider asked for that this onnxruntime build does not have."""


def choose_providers(asked: Sequence[str], available: Sequence[str] | None = None) -> list[str]:
    """The execution providers to give ONNX Runtime, in order: those `asked` for, each by its
    name (CUDAExecutionProvider) or its short name in any case (cuda), `auto` standing for the
    first of AUTO_ORDER that is `available` (if any); then the CPU's, the fallback of every
    choice. `available`: the providers of the installed onnxruntime by default."""
    available = list(ort.get_available_providers() if available is None else available)
    chosen = []
    for name in asked:
        if name.lower() == "auto":
            found = [p for p in AUTO_ORDER if p in available][:1]
        else:
            found = [p for p in available if name.lower() in (p.lower(), p.lower().removesuffix("executionprovider"))]
            if not found:
                raise ProviderError(f"execution provider {name!r} is not in this onnxruntime {ort.__version__}; "
                                    f"it has: {', '.join(available)}")
        chosen += [p for p in found if p not in chosen]
    return chosen + [CPU] * (CPU not in chosen)


def session_options(threads: int) -> ort.SessionOptions:
    """All graph optimisations, `threads` threads for one operator, no parallel operators:
    the same CPU budget that torch gets in a comparison.

    Measured on a 2-core CPU at batch 1 (see stages/tools/bench.py): ORT_ENABLE_ALL, whose layout
    passes run fp32 convolutions in blocked NCHWc and int8 ones in NHWC, is 1.5x (fp32) and
    2x (int8) faster than ORT_ENABLE_EXTENDED. ORT's default of spinning worker threads is kept:
    an int8 image is ~70 short parallel loops, and waking sleeping threads for each cost ~8%;
    on a CPU busy with other processes, though, spinning threads fight them and
    `session.intra_op.allow_spinning = 0` is several times faster. Fixed input shapes,
    denormals-as-zero, thread affinity and dynamic block scheduling gave nothing measurable.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return options


class OnnxClassifier:
    """`classes`, `spec`, and a call mapping an NCHW float32 batch to logits; `provider`, the
    execution provider ONNX Runtime took first of those `providers` asked for (see
    choose_providers: the CPU's by default, the one the pipeline's figures are measured on)."""

    def __init__(self, path: Path | str, threads: int = 2, providers: Sequence[str] = (CPU,)):
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        providers = choose_providers(providers)
        try:
            self.session = ort.InferenceSession(str(path), session_options(threads), providers=providers)
        except Exception as e:  # ORT raises its own Fail/InvalidGraph/... types
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({e})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.classes: list[str] = json.loads(meta[META_CLASSES])
            self.spec = PreprocessSpec.from_dict(json.loads(meta[META_PREPROCESS]))
        except (KeyError, ValueError, TypeError) as e:
            raise ModelError(f"{path}: class names or preprocessing missing from its metadata ({e})") from None
        self.input_name = self.session.get_inputs()[0].name
        # what the session runs on: a provider that failed to start (a GPU's libraries missing)
        # is left out by ONNX Runtime, which then falls back to the next
        self.provider = self.session.get_providers()[0]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """NCHW float32 batch -> logits (N, classes)."""
        return self.session.run(None, {self.input_name: batch})[0]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
