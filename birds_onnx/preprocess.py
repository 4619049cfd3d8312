"""The one definition of how an image becomes a model input, shared by every format.

Training, PyTorch evaluation, ONNX Runtime evaluation and the standalone predictor all call
these functions, so a model never sees pixels prepared differently from how it was trained.
Only Pillow and numpy: the predictor must run where torch is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from birds_onnx.errors import BirdsOnnxError


class ImageError(BirdsOnnxError):
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


def open_rgb(path: Path | str, shorter_side: int) -> Image.Image:
    """Decode `path` as upright RGB, at least `shorter_side` pixels on its shorter side.

    JPEG draft mode lets libjpeg decode at 1/2, 1/4 or 1/8 scale when the image is much larger
    than needed: a large photo costs little more than a small one. Rotation and conversion are
    done in place or skipped when there is nothing to do, not copied.
    """
    try:
        with Image.open(path) as img:
            img.draft("RGB",  # pragma: no mutate: Pillow's JPEG draft changes the mode only when asked for L or YCbCr: RGB, None or another name leave it as decoded
                      (shorter_side, shorter_side))
            ImageOps.exif_transpose(img, in_place=True)  # loads the pixels, rotates if EXIF says so
            return img if img.mode == "RGB" else img.convert("RGB")  # pragma: no mutate: converting an RGB picture to RGB only copies it
    except FileNotFoundError:
        raise ImageError(f"{path}: no such image file") from None
    except Exception as e:  # noqa: BLE001 - malformed files make Pillow raise far more than OSError
        # (IndexError, NotImplementedError, struct.error, ...): whatever it is, this file is unreadable
        detail = str(e) if isinstance(e, (OSError, SyntaxError)) else f"{type(e).__name__}: {e}"
        raise ImageError(f"{path}: not a readable image ({detail})") from None


def resized_size(size: tuple[int, int], shorter_side: int) -> tuple[int, int]:
    w, h = size
    scale = shorter_side / min(w, h)
    return max(shorter_side, round(w * scale)), max(shorter_side, round(h * scale))


def load_rgb(path: Path | str, shorter_side: int) -> Image.Image:
    """Decode `path` as upright RGB with its shorter side resized to `shorter_side` (training
    crops at random from the whole picture). `reducing_gap` shrinks by whole factors before the
    bilinear pass when the picture is still much larger than needed."""
    img = open_rgb(path, shorter_side)
    return img.resize(resized_size(img.size, shorter_side), Image.Resampling.BILINEAR, reducing_gap=3.0)


def resize_center_crop(img: Image.Image, spec: PreprocessSpec) -> Image.Image:
    """The centred `spec.crop` square of `img` resized to `spec.resize` on its shorter side.

    One resampling pass over only the part that survives the crop: the same pixels as resizing
    the whole picture and then cropping (up to rounding), without resizing what is thrown away.
    """
    (w, h), (rw, rh) = img.size, resized_size(img.size, spec.resize)
    left, top = (rw - spec.crop) // 2, (rh - spec.crop) // 2
    box = (left * w / rw, top * h / rh, (left + spec.crop) * w / rw, (top + spec.crop) * h / rh)
    return img.resize((spec.crop, spec.crop), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)


def scale_offset(spec: PreprocessSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel float32 `scale` and `offset` with (x / 255 - mean) / std = x * scale + offset:
    the one normalisation arithmetic, used by `normalize` and by training on whole batches."""
    std = np.asarray(spec.std, np.float32)
    return 1.0 / (255.0 * std), -np.asarray(spec.mean, np.float32) / std


def normalize(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """RGB picture -> float32 CHW array scaled to [0, 1] and standardised per channel.

    (x / 255 - mean) / std is folded into one multiply and one add (`scale_offset`), done in
    place on the channel-first copy: the only full-size float arrays made are the one returned."""
    scale, offset = (a[:, None, None] for a in scale_offset(spec))
    x = np.asarray(img).transpose(2, 0, 1).astype(np.float32,
                                                  order="C",  # pragma: no mutate: numpy's memory order names are not case-sensitive
    )
    x *= scale
    x += offset
    return x


def preprocess(path: Path | str, spec: PreprocessSpec) -> np.ndarray:
    """The evaluation transform: resize the shorter side, centre-crop, normalise. CHW float32."""
    return normalize(resize_center_crop(open_rgb(path, spec.resize), spec), spec)


def preprocess_batch(paths: list, spec: PreprocessSpec) -> np.ndarray:
    return np.stack([preprocess(p, spec) for p in paths])
