"""Framing: from body units to pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stages.sources.synthetic.bird import Bird
from stages.sources.synthetic.geometry import turn


@dataclass(frozen=True)
class Placement:
    scale: float           # pixels per body unit, at the final size
    angle: float
    mirrored: bool         # facing left
    offset: np.ndarray

    def apply(self, points) -> np.ndarray:
        points = np.asarray(points, dtype=float).reshape(-1, 2) * ((-1.0 if self.mirrored else 1.0), 1.0)
        return turn(points, self.angle) * self.scale + self.offset


def place(bird: Bird, size: tuple[int, int], rng: np.random.Generator) -> Placement:
    """Scale, mirror, rotate slightly and position the bird so it fits the frame."""
    steady = bird.pose == "swimming"  # a tilted waterline would look wrong
    unit = Placement(1.0, math.radians(rng.uniform(-3, 3) if steady else rng.uniform(-10, 10)),
                     bool(rng.random() < 0.5), np.zeros(2))
    points = unit.apply(np.concatenate([shape[1] for shape in bird.shapes]))
    low, high = points.min(axis=0), points.max(axis=0)
    extent = high - low
    fill = rng.uniform(0.45, 0.75 if bird.pose == "clinging" else 0.9)
    scale = fill * min(size[0] / extent[0], size[1] / extent[1])
    room = np.array(size) - extent * scale
    where = rng.uniform(0, 1, 2)
    if bird.pose == "clinging":  # keep the trunk, on the belly side, in the picture
        where[0] = 0.3 * where[0] if not unit.mirrored else 1 - 0.3 * where[0]
    offset = where * room - low * scale
    return Placement(scale, unit.angle, unit.mirrored, offset)
