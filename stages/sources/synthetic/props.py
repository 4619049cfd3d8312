"""Props the bird stands, sits, clings or swims on (drawn supersampled, behind the bird)."""

from __future__ import annotations

import math

import numpy as np
from PIL import ImageDraw

from stages.sources.synthetic.geometry import jitter, lens, shade


def _bark(rng: np.random.Generator) -> tuple:
    palette = ((95, 75, 55), (122, 102, 82), (70, 60, 50), (142, 132, 116), (60, 48, 40))
    return tuple(jitter(rng, palette[rng.integers(len(palette))], 15).astype(int))


def draw_branch(draw: ImageDraw.ImageDraw, feet: np.ndarray, scale: float, size, rng) -> None:
    width = scale * rng.uniform(0.06, 0.12)
    slope = math.tan(math.radians(rng.uniform(-12, 12)))
    centre = feet.mean(axis=0) + (0, 0.4 * width)
    left = 0 if rng.random() < 0.7 else centre[0] - rng.uniform(0.4, 0.8) * scale
    right = size[0] if rng.random() < 0.7 else centre[0] + rng.uniform(0.4, 0.8) * scale
    colour = _bark(rng)

    def at(x: float) -> tuple[float, float]:
        return x, centre[1] + slope * (x - centre[0])

    draw.line([at(left), at(right)], fill=colour, width=int(width))
    twig_root = at(centre[0] + rng.choice([-1, 1]) * rng.uniform(0.3, 0.6) * scale)
    twig_tip = (twig_root[0] + rng.uniform(-0.4, 0.4) * scale, twig_root[1] - rng.uniform(0.3, 0.7) * scale)
    draw.line([twig_root, twig_tip], fill=colour, width=max(1, int(width / 2.5)))


def draw_reeds(draw: ImageDraw.ImageDraw, feet: np.ndarray, scale: float, size, rng) -> None:
    colour = tuple(jitter(rng, (150, 150, 90), 30).astype(int))
    grip = feet.mean(axis=0)
    # (x at the grip's height, top): first the stem the bird holds, ending a little above it
    stems = [(grip[0], grip[1] - rng.uniform(0.2, 1.0) * scale)]
    stems += [(x, rng.uniform(0, size[1] / 2)) for x in rng.uniform(0, size[0], int(rng.integers(2, 6)))]
    for x, top in stems:
        lean = rng.uniform(-0.1, 0.1)
        bottom = (x + lean * (size[1] - grip[1]), size[1])
        draw.line([(x - lean * (grip[1] - top), top), bottom], fill=colour, width=max(2, int(0.05 * scale)))
        for _ in range(2):  # long narrow leaves
            y = rng.uniform(top, size[1])
            tip = (x + rng.choice([-1, 1]) * rng.uniform(0.3, 0.6) * scale, y + rng.uniform(-0.4, 0.2) * scale)
            leaf = lens((x, y), tip, 0.06 * scale)
            draw.polygon([tuple(p) for p in leaf], fill=shade(colour, rng.uniform(0.7, 1.0)))


def draw_trunk(draw: ImageDraw.ImageDraw, surface: float, side: int, size, rng) -> None:
    """A vertical trunk from `surface` (where the bird clings) away from the bird."""
    width = rng.uniform(0.2, 0.45) * size[0]
    far_edge = surface + side * width
    colour = _bark(rng)
    draw.rectangle([min(surface, far_edge), 0, max(surface, far_edge), size[1]], fill=colour)
    for _ in range(int(rng.integers(6, 14))):  # furrows in the bark
        x = surface + side * rng.uniform(0.05, 1.0) * width
        y = rng.uniform(0, size[1])
        draw.line([(x, y), (x + rng.uniform(-5, 5), y + rng.uniform(0.1, 0.5) * size[1])],
                  fill=shade(colour, 0.6), width=max(1, int(width / 40)))


def draw_ground(draw: ImageDraw.ImageDraw, feet: np.ndarray, size, rng) -> None:
    palette = ((190, 170, 130), (110, 90, 70), (90, 130, 60), (120, 120, 115), (150, 140, 110))
    colour = tuple(jitter(rng, palette[rng.integers(len(palette))], 15).astype(int))
    top = max(feet[:, 1].max() - rng.uniform(0.03, 0.3) * size[1], 0)
    edge = [(x, top + rng.uniform(-0.02, 0.02) * size[1]) for x in np.linspace(0, size[0], 9)]
    draw.polygon(edge + [(size[0], size[1]), (0, size[1])], fill=colour)
    for _ in range(int(rng.integers(3, 10))):  # pebbles and tufts
        x, y = rng.uniform(0, size[0]), rng.uniform(top, size[1])
        r = rng.uniform(0.005, 0.03) * size[0]
        draw.ellipse([x - r, y - r / 2, x + r, y + r / 2], fill=shade(colour, rng.uniform(0.6, 1.3)))


def draw_ripples(draw: ImageDraw.ImageDraw, centre: np.ndarray, scale: float, colour, rng) -> None:
    for ring in range(int(rng.integers(1, 4))):  # only the near halves: the far ones hide behind the bird
        rx = scale * (0.6 + 0.35 * ring)
        draw.arc([centre[0] - rx, centre[1] - 0.12 * rx, centre[0] + rx, centre[1] + 0.12 * rx],
                 0, 180, fill=colour, width=max(1, int(scale / 60)))
