"""Geometry and colour helpers: numpy arrays of points of shape (n, 2), image orientation (y points down)."""

from __future__ import annotations

import math

import numpy as np

RGB = tuple[int, int, int]


def turn(points: np.ndarray, angle: float) -> np.ndarray:
    """Rotate points about the origin; a positive angle turns counter-clockwise on screen."""
    c, s = math.cos(angle), math.sin(angle)
    return np.asarray(points, dtype=float) @ np.array([[c, -s], [s, c]])


def ellipse(centre, rx: float, ry: float, angle: float = 0.0,
            start: float = 0.0, stop: float = 2 * math.pi, n: int = 28) -> np.ndarray:
    """An ellipse, or the segment between two parameter angles (closed by its chord)."""
    a = np.linspace(start, stop, n)
    return turn(np.stack([rx * np.cos(a), ry * np.sin(a)], axis=1), angle) + centre


def circle(centre, r: float) -> np.ndarray:
    return ellipse(centre, r, r, n=16)


def lens(a, b, width: float, peak: float = 0.5, n: int = 10) -> np.ndarray:
    """A pointed leaf shape from a to b, widest (width) at fraction `peak` of the way."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    t = np.linspace(0.0, 1.0, n)
    half = 0.5 * width * np.sin(math.pi * t ** (math.log(0.5) / math.log(peak)))
    axis = b - a
    normal = np.array([-axis[1], axis[0]]) / (np.hypot(*axis) + 1e-9)
    centre = a + t[:, None] * axis
    return np.concatenate([centre + half[:, None] * normal, (centre - half[:, None] * normal)[::-1]])


def choice(rng: np.random.Generator, weighted: tuple) -> tuple:
    """One entry of a tuple of (name, weight, ...) entries, picked by weight."""
    weights = np.array([entry[1] for entry in weighted], dtype=float)
    return weighted[rng.choice(len(weighted), p=weights / weights.sum())]


def shade(colour, factor: float) -> RGB:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)


def jitter(rng: np.random.Generator, colour, spread: float) -> np.ndarray:
    return np.clip(np.asarray(colour, dtype=float) + rng.uniform(-spread, spread, 3), 0, 255)
