"""Backdrops: sky, foliage and water behind the bird."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from stages.sources.synthetic.geometry import jitter


_SKIES = (  # (zenith, horizon)
    ((60, 120, 205), (175, 210, 240)),    # clear blue
    ((120, 150, 190), (210, 220, 230)),   # hazy
    ((140, 145, 155), (200, 200, 205)),   # overcast
    ((80, 95, 160), (240, 180, 130)),     # dusk
    ((170, 190, 215), (236, 236, 230)),   # bright pale sky
    ((40, 60, 110), (120, 140, 170)),     # stormy dark
)
_LEAVES = (  # (dark, light)
    ((22, 50, 22), (110, 160, 60)),       # green
    ((30, 45, 25), (150, 170, 80)),       # olive
    ((60, 50, 20), (200, 160, 60)),       # autumn
    ((15, 35, 35), (80, 130, 100)),       # shady blue-green
    ((70, 80, 40), (190, 200, 150)),      # sunlit, washed out
)
_WATERS = (  # (far, near)
    ((120, 160, 190), (40, 90, 130)),     # blue
    ((110, 150, 140), (40, 90, 85)),      # teal
    ((150, 160, 160), (70, 85, 90)),      # grey
    ((90, 110, 90), (35, 55, 40)),        # green pond
    ((210, 180, 150), (60, 70, 100)),     # evening glare
    ((40, 60, 80), (15, 25, 35)),         # dark
)


def _gradient(size: tuple[int, int], top, bottom) -> np.ndarray:
    t = np.linspace(0.0, 1.0, size[1], dtype=np.float32)[:, None, None]
    column = (1 - t) * np.asarray(top, np.float32) + t * np.asarray(bottom, np.float32)
    return np.broadcast_to(column, (size[1], size[0], 3)).copy()


def _soft_blobs(size: tuple[int, int], rng: np.random.Generator, count: int, radius: tuple[float, float],
                colour: Callable[[], tuple], shrink: int) -> Image.Image:
    """Blurry coloured ellipses (RGBA), drawn small and enlarged, which softens them for free."""
    small = (max(2, size[0] // shrink), max(2, size[1] // shrink))
    layer = Image.new("RGBA", small, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for _ in range(count):
        x, y = rng.uniform(0, small[0]), rng.uniform(0, small[1])
        rx, ry = (rng.uniform(*radius) * min(small) for _ in range(2))
        draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=colour())
    return layer.filter(ImageFilter.GaussianBlur(1)).resize(size, Image.Resampling.BICUBIC)


def _sky(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    zenith, horizon = _SKIES[rng.integers(len(_SKIES))]
    gradient = _gradient(size, jitter(rng, zenith, 20), jitter(rng, horizon, 20))
    image = Image.fromarray(gradient.astype(np.uint8))
    if rng.random() < 0.6:
        cloud = jitter(rng, (236, 236, 240), 25).astype(int)
        blobs = _soft_blobs(size, rng, int(rng.integers(3, 12)), (0.08, 0.3),
                            lambda: (*cloud, int(rng.integers(60, 220))), 4)
        image.paste(blobs, (0, 0), blobs)
    return image


def _foliage(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    dark, light = (jitter(rng, c, 20) for c in _LEAVES[rng.integers(len(_LEAVES))])
    sky_gaps = rng.random() < 0.35

    def leaf_colour() -> tuple:
        if sky_gaps and rng.random() < 0.12:
            return (*jitter(rng, (200, 215, 225), 25).astype(int), 255)
        t = rng.uniform(0, 1)
        return (*(dark + t * (light - dark)).astype(int), 255)

    image = Image.new("RGB", size, tuple(((dark + light) / 2).astype(int)))
    for count, radius, shrink in ((60, (0.05, 0.25), 6), (160, (0.02, 0.07), 3)):
        blobs = _soft_blobs(size, rng, count, radius, leaf_colour, shrink)
        image.paste(blobs, (0, 0), blobs)
    return image


def _water(size: tuple[int, int], rng: np.random.Generator, horizon: int) -> Image.Image:
    """Open water below `horizon` (pixels from the top), sky or a far shore of trees above it."""
    far, near = (jitter(rng, c, 18) for c in _WATERS[rng.integers(len(_WATERS))])
    image = (_sky if rng.random() < 0.65 else _foliage)(size, rng)
    height = size[1] - horizon
    if height <= 0:
        return image
    water = Image.fromarray(_gradient((size[0], height), far, near).astype(np.uint8))
    draw = ImageDraw.Draw(water)
    for _ in range(int(rng.integers(20, 60))):  # ripples, longer and thicker closer to the camera
        y = height * rng.uniform(0, 1) ** 0.7
        depth = (y + 4) / (height + 4)
        x, half = rng.uniform(0, size[0]), rng.uniform(0.05, 0.3) * size[0] * depth
        tone = rng.choice([0.75, 1.2]) * (far + depth * (near - far))
        draw.line([(x - half, y), (x + half, y)], fill=tuple(np.clip(tone, 0, 255).astype(int)),
                  width=max(1, int(round(4 * depth))))
    image.paste(water, (0, horizon))
    return image


def draw_backdrop(kind: str, size: tuple[int, int], rng: np.random.Generator, horizon_max: float) -> Image.Image:
    if kind == "sky":
        return _sky(size, rng)
    if kind == "foliage":
        return _foliage(size, rng)
    return _water(size, rng, int(rng.uniform(0, 1) * max(0.0, horizon_max)))
