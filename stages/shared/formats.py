"""The model formats that are compared, where each lives, and how each is run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stages.shared.model import load_checkpoint
from birds_onnx.onnx_model import OnnxClassifier

# What each format computes in, where it cannot vary; OpenVINO's classifier reads it back from
# the compiled model instead (bf16 or fp32 on the CPU at hand).
PRECISION = {"pth": "fp32", "onnx": "fp32", "onnx-int8": "int8"}
# What runs each format, where the classifier does not say: ONNX Runtime's names its execution
# provider (the CPU's: evaluate measures the CPU, and its record must not change with the machine).
RUNS_ON = {"pth": "torch CPU", "openvino": "OpenVINO CPU", "openvino-int8": "OpenVINO CPU"}


class TorchClassifier:
    """PyTorch eager, fp32, as the article ran its .pth model."""

    def __init__(self, path: Path | str, threads: int = 2):
        torch.set_num_threads(threads)
        self.model, self.classes, self.spec = load_checkpoint(path)

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(batch)).numpy()


def load_classifier(fmt: str, path: Path | str, threads: int):
    if fmt == "pth":
        return TorchClassifier(path, threads)
    if fmt.startswith("openvino"):
        # Imported here: OpenVINO is optional, and the stages that only need paths from this module
        # (train, export) do not load it. The int8 model's float steps (quantising the input, the
        # logits) stay fp32 as in ONNX Runtime: a tiny part of the work, where bf16 would only add rounding.
        from birds_onnx.openvino_model import OpenVinoClassifier

        return OpenVinoClassifier(path, threads, precision="fp32" if fmt == "openvino-int8" else "auto")
    return OnnxClassifier(path, threads)


def precision(fmt: str, classifier) -> str:
    """What `classifier`, loaded for `fmt`, computes in: fp32, bf16 or int8."""
    return getattr(classifier, "precision", None) or PRECISION[fmt]


def provider(fmt: str, classifier) -> str:
    """What ran `classifier`, loaded for `fmt`: ONNX Runtime's execution provider, or RUNS_ON's."""
    return getattr(classifier, "provider", None) or RUNS_ON[fmt]
