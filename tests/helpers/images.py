"""Pictures the tests feed the stages: smooth random pictures and their encoded bytes, photos
with detail everywhere."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def picture(seed: int, size: tuple[int, int] = (128, 96)) -> Image.Image:
    """A smooth random picture: a coarse colour grid enlarged, so that no two seeds look alike
    and a resized copy keeps its perceptual hash."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB")
    return coarse.resize(size, Image.Resampling.BICUBIC)


def encode(img: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def photo(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """A JPEG with detail everywhere (gradients and noise), so that resampling differences show."""
    w, h = size
    rng = np.random.default_rng(seed)
    pixels = np.linspace(0, 200, w)[None, :, None] + np.linspace(0, 50, h)[:, None, None] + rng.integers(0, 6, (h, w, 3))
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=95)
    return path


def darkened(path: Path) -> bytes:
    """The JPEG at `path` with every pixel value divided by 4."""
    with Image.open(path) as img:
        return encode(Image.fromarray((np.asarray(img) // 4).astype(np.uint8)), "JPEG", quality=95)
