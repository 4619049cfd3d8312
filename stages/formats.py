"""The model formats that are compared, where each lives, and how each is run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stages.model import load_checkpoint
from stages.paths import CHECKPOINT, model_dir
from birds_onnx.onnx_model import OnnxClassifier

# pth: PyTorch eager fp32; onnx: the same network in ONNX Runtime, fp32; onnx-int8: ONNX Runtime
# with int8 weights and activations (static QDQ quantisation, calibrated on training images).
MODEL_FILES = {"pth": CHECKPOINT, "onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}


def model_path(epochs: int, fmt: str) -> Path:
    return model_dir(epochs) / MODEL_FILES[fmt]


class TorchClassifier:
    """PyTorch eager, fp32, as the article ran its .pth model."""

    def __init__(self, path: Path | str, threads: int = 2):
        torch.set_num_threads(threads)
        self.model, self.classes, self.spec = load_checkpoint(path)

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(batch)).numpy()


def load_classifier(fmt: str, path: Path | str, threads: int):
    return TorchClassifier(path, threads) if fmt == "pth" else OnnxClassifier(path, threads)
