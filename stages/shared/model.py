"""The classifier: torchvision's ResNet50 with its last layer sized for our classes."""

from __future__ import annotations

import pickle
import socket
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

from stages.shared.errors import PipelineError
from birds_onnx.errors import ModelError
from stages.shared.atomic import atomic_path
from birds_onnx.preprocess import PreprocessSpec

IMAGENET_WEIGHTS = ResNet50_Weights.IMAGENET1K_V2
DOWNLOAD_TIMEOUT_S = 30


class WeightsUnavailable(PipelineError):
    """ImageNet weights are neither cached nor downloadable."""


def build_model(num_classes: int, pretrained: str = "none") -> nn.Module:
    """ResNet50, from ImageNet weights or from scratch, with a fresh `num_classes`-way head."""
    model = resnet50(weights=None)
    if pretrained == "imagenet":
        model.load_state_dict(imagenet_state_dict())
    elif pretrained != "none":
        raise ValueError(f"train.pretrained must be none or imagenet, got {pretrained!r}")
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def imagenet_weights_path() -> Path:
    """Where torchvision caches the weights file (under $TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(IMAGENET_WEIGHTS.url).path).name


def imagenet_state_dict() -> dict:
    cached = imagenet_weights_path()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # an unreachable host must not hang the stage
    try:
        return IMAGENET_WEIGHTS.get_state_dict(progress=False, check_hash=True)
    except (URLError, OSError) as e:
        raise WeightsUnavailable(
            f"ImageNet weights for ResNet50 are not cached and could not be downloaded ({e}). "
            f"Download {IMAGENET_WEIGHTS.url} on a machine with network access and put it at "
            f"{cached} (set TORCH_HOME to use another cache folder), or set train.pretrained: none."
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def save_checkpoint(path: Path | str, model: nn.Module, classes: list[str], spec: PreprocessSpec, **info) -> None:
    """State dict plus what inference needs to use it: class names and preprocessing."""
    checkpoint = {
        "arch": "resnet50",
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "classes": list(classes),
        "preprocess": spec.to_dict(),
        **info,
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        # a file object, not the temporary name, which torch.save would write into the archive
        # and so make two saves of the same weights differ in their bytes
        torch.save(checkpoint, f)


def load_checkpoint(path: Path | str) -> tuple[nn.Module, list[str], PreprocessSpec]:
    """The eval-mode model, its class names and its preprocessing. Loads tensors only."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        classes = checkpoint["classes"]
        spec = PreprocessSpec.from_dict(checkpoint["preprocess"])
        model = build_model(len(classes))
        model.load_state_dict(checkpoint["state_dict"])
    except FileNotFoundError:
        raise ModelError(f"{path} not found: run the train stage first (dvc repro)") from None
    except pickle.UnpicklingError:  # torch's own message here suggests weights_only=False: never
        raise ModelError(f"{path} is not a checkpoint written by the train stage (not a file of tensors)") from None
    except (RuntimeError, KeyError, TypeError, ValueError, EOFError) as e:
        raise ModelError(f"{path} is not a checkpoint written by the train stage: {e}") from None
    return model.eval(), classes, spec
