"""Rendering: the bird and its props drawn supersampled onto a backdrop, then the camera's variations."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from stages.sources.synthetic.backdrops import draw_backdrop
from stages.sources.synthetic.bird import Bird
from stages.sources.synthetic.framing import Placement
from stages.sources.synthetic.geometry import choice, shade
from stages.sources.synthetic.props import draw_branch, draw_ground, draw_reeds, draw_ripples, draw_trunk

_SUPERSAMPLE = 2


def _render(bird: Bird, placement: Placement, big: tuple[int, int], tint: np.ndarray) -> Image.Image:
    """The bird alone on a transparent layer at the supersampled size, shaded darker towards the bottom."""
    layer = Image.new("RGBA", big, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    pixels_per_unit = placement.scale * _SUPERSAMPLE
    for _, points, colour, width in sorted(bird.shapes, key=lambda shape: shape[0]):  # stable in z
        xy = [tuple(p) for p in placement.apply(points) * _SUPERSAMPLE]
        fill = tuple(np.clip(np.asarray(colour) * tint, 0, 255).astype(int))
        if width:
            draw.line(xy, fill=fill, width=max(1, int(round(width * pixels_per_unit))))
        else:
            draw.polygon(xy, fill=fill)
    box = layer.getbbox()
    if box:  # light from above: a soft top-to-bottom shading over the bird's height
        pixels = np.asarray(layer.crop(box), dtype=np.float32).copy()
        pixels[..., :3] *= np.linspace(1.12, 0.8, box[3] - box[1], dtype=np.float32)[:, None, None]
        layer.paste(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGBA"), box[:2])
    return layer


def scene(bird: Bird, placement: Placement, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    look = bird.look
    big = (size[0] * _SUPERSAMPLE, size[1] * _SUPERSAMPLE)
    scale = placement.scale * _SUPERSAMPLE
    waterline = placement.apply([bird.at(0.0, 0.0) + (0, 0.35 * look.body_height)])[0]
    if bird.pose == "swimming":
        kind, horizon_max = "water", waterline[1] - 2
    else:
        kind, horizon_max = choice(rng, look.backdrops)[0], 0.6 * size[1]
    backdrop = draw_backdrop(kind, size, rng, horizon_max)

    # Props and bird are drawn supersampled on one transparent layer, then shrunk onto the backdrop.
    layer = Image.new("RGBA", big, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    contacts = placement.apply(np.array(bird.contacts)) * _SUPERSAMPLE if bird.contacts else None
    if bird.pose == "perched":
        draw_branch(draw, contacts, scale, big, rng)
    elif bird.pose == "reed":
        draw_reeds(draw, contacts, scale, big, rng)
    elif bird.pose == "standing":
        draw_ground(draw, contacts, big, rng)
    elif bird.pose == "clinging":
        side = -1 if placement.mirrored else 1
        tail_tip = placement.apply([bird.tail_tip])[0] * _SUPERSAMPLE
        draw_trunk(draw, side * max(side * contacts[0][0], side * tail_tip[0]), side, big, rng)
    layer.alpha_composite(_render(bird, placement, big, rng.uniform(0.9, 1.1, 3)))
    if bird.pose == "swimming":  # hide what is under the water, and ring the bird with ripples
        draw.rectangle([0, waterline[1] * _SUPERSAMPLE, big[0], big[1]], fill=(0, 0, 0, 0))
        probe = backdrop.getpixel((int(np.clip(waterline[0], 0, size[0] - 1)),
                                   int(np.clip(waterline[1] + 2, 0, size[1] - 1))))
        draw_ripples(draw, waterline * _SUPERSAMPLE, scale, shade(probe, 1.3), rng)
    small = layer.reduce(_SUPERSAMPLE)
    backdrop.paste(small, (0, 0), small)
    return backdrop


def camera(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Exposure, contrast, white balance, occasional blur and sensor noise, as real photos vary."""
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
    pixels = np.asarray(image, dtype=np.float32)
    contrast, exposure = rng.uniform(0.7, 1.2), rng.uniform(0.7, 1.3)
    balance = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    pixels = ((pixels - 128) * contrast + 128) * exposure * balance
    sigma = rng.uniform(2, 9)
    pixels += sigma * rng.standard_normal(pixels.shape[:2], dtype=np.float32)[..., None]  # luminance noise
    pixels += (sigma / 3) * rng.standard_normal(pixels.shape, dtype=np.float32)  # chroma noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
