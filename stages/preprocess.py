"""The one definition of how an image becomes a model input, shared by every format.

Training, PyTorch evaluation, ONNX Runtime evaluation and the standalone predictor all call
these functions, so a model never sees pixels prepared differently from how it was trained.
Only Pillow and numpy: the predictor must run where torch is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageError(ValueError):
    """An image file that cannot be read as a picture."""


@dataclass(frozen=True)
class PreprocessSpec:
    resize: int = 256  # shorter side after resizing
    crop: int = 224  # square centre crop fed to the model
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)  # ImageNet statistics, as torchvision uses
    std: tuple[float, ...] = (0.229, 0.224, 0.225)

    def to_dict(self) -> dict:
        return {"resize": self.resize, "crop": self.crop, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        return cls(int(d["resize"]), int(d["crop"]), tuple(d["mean"]), tuple(d["std"]))


def load_rgb(path: Path | str, shorter_side: int) -> Image.Image:
    """Decode `path` as upright RGB with its shorter side resized to `shorter_side`.

    JPEG draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale when the image is much larger
    than needed, and `reducing_gap` shrinks by whole factors before the bilinear pass: both
    keep decoding cheap beside the model, and both are part of this one shared definition.
    """
    try:
        with Image.open(path) as img:
            img.draft("RGB", (shorter_side, shorter_side))
            img = ImageOps.exif_transpose(img).convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path}: not a readable image ({e})") from None
    w, h = img.size
    scale = shorter_side / min(w, h)
    size = (max(shorter_side, round(w * scale)), max(shorter_side, round(h * scale)))
    return img.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)


def center_crop(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def normalize(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """RGB picture -> float32 CHW array scaled to [0, 1] and standardised per channel."""
    x = np.asarray(img, dtype=np.float32) * (1.0 / 255.0)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def preprocess(path: Path | str, spec: PreprocessSpec) -> np.ndarray:
    """The evaluation transform: resize the shorter side, centre-crop, normalise. CHW float32."""
    return normalize(center_crop(load_rgb(path, spec.resize), spec.crop), spec)


def preprocess_batch(paths: list, spec: PreprocessSpec) -> np.ndarray:
    return np.stack([preprocess(p, spec) for p in paths])
