"""Offline stand-in for the web crawl: deterministic synthetic photos of the nine bird species.

Each picture is drawn with Pillow from simple shapes, but the shapes follow each species' real field
marks (crest, eyebrow stripe, frontal shield, wing patches, hooked beak, ...), so a person can tell the
species apart by shape and markings. Backgrounds, pose, framing, lighting, white balance and sensor
noise vary so much, and so independently of the species, that global colour statistics alone do not
separate the classes (stages/baseline.py measures that).

Species (slug, the article's keyword): myna ハッカチョウ, reed_warbler ヨシキリ, sunbird タイヨウチョウ,
striated_heron ササゴイ, crow カラス, woodpecker アカゲラ, moorhen バン, sea_eagle ウミワシ, gull カモメ.

A bird is first built as a list of polygons and lines in "body units" (the body ellipse is 1 long, the
bird faces right, y points down), then fitted into the frame, then rasterised at twice the size and
shrunk, which anti-aliases the edges without per-pixel Python loops.
"""

from __future__ import annotations

import collections
import concurrent.futures
import io
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from stages.shared.params import Params
from stages.sources.cleaning import CrawlError, Found, process_context

SPECIES: tuple[str, ...] = (
    "myna", "reed_warbler", "sunbird", "striated_heron", "crow",
    "woodpecker", "moorhen", "sea_eagle", "gull",
)

_RGB = tuple[int, int, int]

_SUPERSAMPLE = 2
_JPEG_QUALITY = (60, 95)
_WHITE: _RGB = (238, 238, 232)
_BLACK: _RGB = (24, 24, 28)
_RED: _RGB = (200, 32, 38)

# Drawing order of a bird's parts, back to front.
_FAR_WING, _TAIL, _LEGS, _BODY, _BODY_MARK, _WING, _WING_MARK, _HEAD, _HEAD_MARK, _EYE, _BEAK = range(11)


# --------------------------------------------------------------------------------------------------
# Geometry helpers (numpy arrays of shape (n, 2), image orientation: y points down)


def _turn(points: np.ndarray, angle: float) -> np.ndarray:
    """Rotate points about the origin; a positive angle turns counter-clockwise on screen."""
    c, s = math.cos(angle), math.sin(angle)
    return np.asarray(points, dtype=float) @ np.array([[c, -s], [s, c]])


def _ellipse(centre, rx: float, ry: float, angle: float = 0.0,
             start: float = 0.0, stop: float = 2 * math.pi, n: int = 28) -> np.ndarray:
    """An ellipse, or the segment between two parameter angles (closed by its chord)."""
    a = np.linspace(start, stop, n)
    return _turn(np.stack([rx * np.cos(a), ry * np.sin(a)], axis=1), angle) + centre


def _circle(centre, r: float) -> np.ndarray:
    return _ellipse(centre, r, r, n=16)


def _lens(a, b, width: float, peak: float = 0.5, n: int = 10) -> np.ndarray:
    """A pointed leaf shape from a to b, widest (width) at fraction `peak` of the way."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    t = np.linspace(0.0, 1.0, n)
    half = 0.5 * width * np.sin(math.pi * t ** (math.log(0.5) / math.log(peak)))
    axis = b - a
    normal = np.array([-axis[1], axis[0]]) / (np.hypot(*axis) + 1e-9)
    centre = a + t[:, None] * axis
    return np.concatenate([centre + half[:, None] * normal, (centre - half[:, None] * normal)[::-1]])


def _choice(rng: np.random.Generator, weighted: tuple) -> tuple:
    """One entry of a tuple of (name, weight, ...) entries, picked by weight."""
    weights = np.array([entry[1] for entry in weighted], dtype=float)
    return weighted[rng.choice(len(weighted), p=weights / weights.sum())]


def _shade(colour, factor: float) -> _RGB:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)


def _jitter(rng: np.random.Generator, colour, spread: float) -> np.ndarray:
    return np.clip(np.asarray(colour, dtype=float) + rng.uniform(-spread, spread, 3), 0, 255)


# --------------------------------------------------------------------------------------------------
# Species: colours, proportions, poses and usual backdrops


@dataclass(frozen=True)
class _Look:
    back: _RGB
    belly: _RGB
    head: _RGB
    wing: _RGB
    primaries: _RGB            # flight feathers / wing tips
    tail: _RGB
    beak: _RGB
    lower_beak: _RGB
    legs: _RGB
    eye: _RGB
    poses: tuple              # (pose, weight, min tilt, max tilt in degrees; tilt raises the head)
    backdrops: tuple          # (backdrop, weight), backdrop in sky / foliage / water
    body_height: float = 0.27  # half-height of the body ellipse, whose half-length is 0.5
    head_radius: float = 0.18
    neck: float = 0.05
    beak_length: float = 0.18
    beak_depth: float = 0.07
    beak_curve: float = 0.0   # how far the beak tip bends down, in beak lengths
    beak_tip: _RGB | None = None
    hooked: bool = False
    sings: bool = False       # sometimes drawn with the beak wide open
    tail_length: float = 0.35
    tail_width: float = 0.1
    tail_droop: tuple = (-5.0, 20.0)
    wedge_tail: bool = False
    wing_tip: float = -0.55   # where the folded wing ends, along the body
    wing_span: float = 1.0
    wing_chord: float = 0.45
    wing_shape: str = "rounded"
    primary_cut: float = 0.55  # fraction of the spread wing's span where the flight feathers begin
    leg_length: float = 0.28
    leg_width: float = 0.03
    toe_length: float = 0.1


_LOOKS: dict[str, _Look] = {
    "myna": _Look(
        back=_BLACK, belly=(34, 34, 40), head=_BLACK, wing=(30, 30, 34), primaries=(20, 20, 24),
        tail=(22, 22, 26), beak=(238, 226, 150), lower_beak=(232, 220, 140), legs=(214, 188, 84),
        eye=(236, 160, 40), body_height=0.27, head_radius=0.19, beak_length=0.17, beak_depth=0.08,
        beak_curve=0.05, tail_length=0.38, leg_length=0.28, wing_span=1.05,
        poses=(("perched", 5, 15, 40), ("standing", 3, 5, 20), ("flying", 2, -5, 10)),
        backdrops=(("sky", 3), ("foliage", 5), ("water", 2))),
    "reed_warbler": _Look(
        back=(128, 112, 72), belly=(226, 214, 180), head=(122, 106, 68), wing=(112, 96, 60),
        primaries=(95, 80, 52), tail=(110, 95, 62), beak=(88, 76, 60), lower_beak=(214, 170, 130),
        legs=(160, 136, 112), eye=(40, 30, 25), body_height=0.25, head_radius=0.17, beak_length=0.18,
        beak_depth=0.055, sings=True, tail_length=0.45, tail_width=0.09, leg_length=0.24,
        wing_span=0.9, wing_chord=0.4,
        poses=(("reed", 6, 30, 60), ("perched", 3, 20, 45), ("flying", 1, -5, 10)),
        backdrops=(("foliage", 4), ("water", 3), ("sky", 3))),
    "sunbird": _Look(
        back=(36, 150, 104), belly=(232, 204, 56), head=(32, 160, 122), wing=(72, 76, 46),
        primaries=(55, 56, 40), tail=(30, 46, 104), beak=(20, 20, 22), lower_beak=(20, 20, 22),
        legs=(30, 30, 30), eye=(22, 16, 16), body_height=0.25, head_radius=0.16, beak_length=0.42,
        beak_depth=0.045, beak_curve=0.22, tail_length=0.36, tail_width=0.08, leg_length=0.18,
        wing_span=0.8, wing_chord=0.35,
        poses=(("perched", 7, 15, 45), ("flying", 3, 10, 35)),
        backdrops=(("foliage", 5), ("sky", 3), ("water", 2))),
    "striated_heron": _Look(
        back=(92, 112, 100), belly=(150, 154, 152), head=(118, 128, 124), wing=(84, 106, 90),
        primaries=(58, 68, 68), tail=(68, 78, 78), beak=(34, 34, 34), lower_beak=(196, 170, 64),
        legs=(236, 160, 44), eye=(242, 204, 44), body_height=0.3, head_radius=0.17, neck=0.1,
        beak_length=0.45, beak_depth=0.07, tail_length=0.18, tail_width=0.12, leg_length=0.34,
        leg_width=0.04, toe_length=0.13, wing_span=1.2, wing_chord=0.55, wing_tip=-0.5,
        poses=(("standing", 5, 5, 25), ("perched", 3, 10, 30), ("flying", 2, -5, 10)),
        backdrops=(("water", 5), ("foliage", 3), ("sky", 2))),
    "crow": _Look(
        back=(20, 20, 24), belly=(24, 24, 28), head=(18, 18, 22), wing=(22, 22, 28),
        primaries=(16, 16, 20), tail=(18, 18, 22), beak=(14, 14, 16), lower_beak=(14, 14, 16),
        legs=(20, 20, 22), eye=(26, 20, 20), body_height=0.28, head_radius=0.21, neck=0.06,
        beak_length=0.3, beak_depth=0.15, beak_curve=0.07, tail_length=0.45, tail_width=0.12,
        leg_length=0.36, leg_width=0.035, toe_length=0.12, wing_span=1.35, wing_chord=0.55,
        wing_shape="fingered",
        poses=(("perched", 4, 10, 30), ("standing", 3, 0, 15), ("flying", 3, -5, 10)),
        backdrops=(("sky", 4), ("foliage", 3), ("water", 3))),
    "woodpecker": _Look(
        back=(18, 18, 18), belly=(232, 226, 212), head=(20, 20, 20), wing=(18, 18, 18),
        primaries=(22, 22, 22), tail=(20, 20, 20), beak=(58, 58, 62), lower_beak=(70, 70, 74),
        legs=(84, 84, 90), eye=(30, 20, 20), body_height=0.26, head_radius=0.18, neck=0.03,
        beak_length=0.22, beak_depth=0.08, tail_length=0.38, tail_width=0.09, tail_droop=(25, 45),
        wedge_tail=True, leg_length=0.2, wing_span=1.0,
        poses=(("clinging", 8, 65, 85), ("flying", 2, -5, 10)),
        backdrops=(("foliage", 6), ("sky", 3), ("water", 1))),
    "moorhen": _Look(
        back=(72, 64, 48), belly=(50, 52, 62), head=(40, 42, 50), wing=(74, 66, 50),
        primaries=(60, 55, 42), tail=(30, 30, 34), beak=(205, 30, 30), lower_beak=(205, 30, 30),
        beak_tip=(232, 204, 56), legs=(168, 190, 62), eye=(200, 30, 30), body_height=0.33,
        head_radius=0.16, neck=0.06, beak_length=0.17, beak_depth=0.08, tail_length=0.2,
        tail_droop=(-40, -20), leg_length=0.42, leg_width=0.035, toe_length=0.2, wing_tip=-0.45,
        poses=(("swimming", 13, 0, 8), ("standing", 7, 0, 15)),
        backdrops=(("water", 5), ("foliage", 3), ("sky", 2))),
    "sea_eagle": _Look(
        back=(78, 56, 36), belly=(70, 50, 32), head=(150, 124, 88), wing=(86, 62, 40),
        primaries=(40, 30, 22), tail=_WHITE, beak=(240, 200, 55), lower_beak=(232, 192, 52),
        legs=(236, 196, 62), eye=(236, 216, 120), body_height=0.27, head_radius=0.19, neck=0.07,
        beak_length=0.3, beak_depth=0.17, beak_curve=0.08, hooked=True, tail_length=0.35,
        tail_width=0.13, wedge_tail=True, leg_length=0.28, leg_width=0.045, toe_length=0.12,
        wing_span=1.6, wing_chord=0.6, wing_shape="fingered", wing_tip=-0.6,
        poses=(("flying", 11, -5, 10), ("perched", 9, 35, 60)),
        backdrops=(("sky", 5), ("water", 3), ("foliage", 2))),
    "gull": _Look(
        back=(166, 174, 186), belly=(242, 242, 242), head=(245, 245, 245), wing=(166, 174, 186),
        primaries=(25, 25, 28), tail=(244, 244, 244), beak=(242, 205, 55), lower_beak=(238, 200, 52),
        legs=(236, 200, 92), eye=(230, 224, 200), body_height=0.26, head_radius=0.18,
        beak_length=0.22, beak_depth=0.075, beak_curve=0.03, tail_length=0.22, leg_length=0.32,
        wing_span=1.6, wing_chord=0.45, wing_shape="pointed", primary_cut=0.75, wing_tip=-0.8,
        poses=(("flying", 9, -5, 10), ("swimming", 5, 0, 6), ("standing", 6, 0, 12)),
        backdrops=(("sky", 5), ("water", 4), ("foliage", 1))),
}


# --------------------------------------------------------------------------------------------------
# The bird as shapes in body units


class _Bird:
    """A bird's shapes in body units, with the anchor points that field marks and props attach to."""

    head: np.ndarray          # set by _add_head
    head_radius: float
    beak_base: np.ndarray     # set by _add_beak
    beak_angle: float
    tail_base: np.ndarray     # set by _add_tail
    tail_tip: np.ndarray
    tail_dir: np.ndarray
    tail_under: np.ndarray    # unit vector from the tail towards its underside
    hips: list[np.ndarray]    # set by _add_legs

    def __init__(self, look: _Look, pose: str, tilt_degrees: float):
        self.look, self.pose = look, pose
        self.tilt = math.radians(tilt_degrees)
        self.shapes: list[tuple[int, np.ndarray, _RGB, float]] = []  # (z, points, colour, line width)
        self.contacts: list[np.ndarray] = []  # where the bird touches its perch, ground or trunk
        self.wings: list[tuple[Callable, int]] = []  # (wing-to-body mapper, z) of spread wings
        self.hips = []

    def at(self, x: float, y: float) -> np.ndarray:
        """A point in the tilted body frame: x towards the head, y towards the belly."""
        return _turn(np.array([[x, y]]), self.tilt)[0]

    def fill(self, z: int, points, colour) -> None:
        self.shapes.append((z, np.asarray(points, dtype=float), colour, 0.0))

    def line(self, z: int, points, colour, width: float) -> None:
        self.shapes.append((z, np.asarray(points, dtype=float), colour, width))


def _add_body(bird: _Bird) -> None:
    look, bh = bird.look, bird.look.body_height
    bird.fill(_BODY, _ellipse((0, 0), 0.5, bh, bird.tilt), look.back)
    # The belly: the body ellipse below a chord just above its midline.
    bird.fill(_BODY, _ellipse((0, 0), 0.5, bh, bird.tilt, -0.25, math.pi + 0.25), look.belly)


def _add_head(bird: _Bird, rng: np.random.Generator) -> None:
    look, bh, hr = bird.look, bird.look.body_height, bird.look.head_radius
    neck = look.neck * rng.uniform(0.7, 1.6)
    if bird.pose == "flying":  # head stretched forward
        head = bird.at(0.55, -0.25 * bh) + (neck, -0.3 * neck)
    else:
        head = bird.at(0.4, -0.55 * bh) + (0.03, -neck)
    bird.head, bird.head_radius = head, hr
    neck_base = bird.at(0.25, -0.15 * bh)
    reach = (head - neck_base) / (np.hypot(*(head - neck_base)) + 1e-9)
    # The neck: a lens whose pointed ends hide inside the body and the head.
    bird.fill(_HEAD, _lens(neck_base, head + 0.5 * hr * reach, 1.6 * hr), look.head)
    bird.fill(_HEAD, _circle(head, hr), look.head)
    eye = head + (0.3 * hr, -0.12 * hr)
    bird.fill(_EYE, _circle(eye, 0.19 * hr), look.eye)
    bird.fill(_EYE, _circle(eye, 0.11 * hr), (12, 10, 10))
    bird.fill(_EYE, _circle(eye + (0.04 * hr, -0.05 * hr), 0.035 * hr), (250, 250, 250))

    angle = {"clinging": (10, 45), "flying": (-10, 5)}.get(bird.pose, (-12, 12))
    beak_angle = math.radians(rng.uniform(*angle))
    gape = math.radians(rng.uniform(18, 32)) if look.sings and rng.random() < 0.5 else 0.0
    base = head + 0.78 * hr * np.array([math.cos(beak_angle), -math.sin(beak_angle)]) + (0, 0.12 * hr)
    _add_beak(bird, base, beak_angle, gape)


def _add_beak(bird: _Bird, base: np.ndarray, angle: float, gape: float) -> None:
    look = bird.look
    length, depth = look.beak_length, look.beak_depth
    s = np.linspace(0.0, 1.0, 14)
    centre = np.stack([s * length, look.beak_curve * length * s ** 2], axis=1)
    if look.hooked:  # the upper mandible's tip curls down over a shorter lower one
        centre[:, 1] += 0.6 * depth * np.clip((s - 0.7) / 0.3, 0, 1) ** 2
    half = 0.5 * depth * (1 - s) ** (0.5 if look.hooked else 0.8)
    top, bottom = centre - np.c_[np.zeros_like(half), half], centre + np.c_[np.zeros_like(half), half]
    lower_end = 11 if look.hooked else len(s)

    def mandibles(first: int) -> tuple[np.ndarray, np.ndarray]:
        """Upper and lower mandible from point `first` to the tip, each turned apart by half the gape."""
        upper = np.concatenate([top[first:], centre[first:][::-1]])
        lower = np.concatenate([centre[first:lower_end], bottom[first:lower_end][::-1]])
        return _turn(upper, angle + gape / 2) + base, _turn(lower, angle - gape / 2) + base

    bird.beak_base, bird.beak_angle = base, angle
    upper, lower = mandibles(0)
    if gape:  # the open mouth shows an orange-pink gape
        mouth = [base, _turn(centre[8:9], angle + gape / 2)[0] + base,
                 _turn(centre[8:9], angle - gape / 2)[0] + base]
        bird.fill(_BEAK, mouth, (232, 112, 72))
    bird.fill(_BEAK, lower, look.lower_beak)
    bird.fill(_BEAK, upper, look.beak)
    if look.beak_tip:
        tip_upper, tip_lower = mandibles(len(s) * 2 // 3)
        bird.fill(_BEAK, tip_lower, look.beak_tip)
        bird.fill(_BEAK, tip_upper, look.beak_tip)


def _beak_point(bird: _Bird, along: float, below: float) -> np.ndarray:
    """A point on the beak: `along` in beak lengths from the base, `below` in beak depths."""
    look = bird.look
    local = np.array([[along * look.beak_length, below * look.beak_depth]])
    return _turn(local, bird.beak_angle)[0] + bird.beak_base


def _add_tail(bird: _Bird, rng: np.random.Generator) -> None:
    look, bh = bird.look, bird.look.body_height
    base = bird.at(-0.4, -0.1 * bh)
    direction = _turn(-bird.at(1, 0), math.radians(rng.uniform(*look.tail_droop)))
    across = np.array([-direction[1], direction[0]])
    tip = base + look.tail_length * direction
    w0, w1 = 0.5 * look.tail_width, 0.65 * look.tail_width * (0.7 if look.wedge_tail else 1.0)
    outline = [base + w0 * across, tip + w1 * across]
    if look.wedge_tail:
        outline.append(tip + 0.3 * look.tail_length * direction)
    outline += [tip - w1 * across, base - w0 * across]
    bird.fill(_TAIL, outline, look.tail)
    bird.tail_base, bird.tail_tip, bird.tail_dir = base, tip, direction
    bird.tail_under = across if across[1] > 0 else -across


def _add_folded_wing(bird: _Bird) -> None:
    look, bh = bird.look, bird.look.body_height
    tip = bird.at(look.wing_tip, -0.15 * bh)
    bird.fill(_WING, _lens(bird.at(0.28, -0.4 * bh), tip, 1.25 * bh, peak=0.35), look.wing)
    bird.fill(_WING, _lens(bird.at(-0.05, -0.2 * bh), tip, 0.55 * bh, peak=0.3), look.primaries)


_WING_OUTLINES = {  # (span fraction, chord fraction); the leading edge first, from the shoulder
    "rounded": [(0, 0), (0.3, -0.04), (0.55, -0.03), (0.8, 0.04), (0.97, 0.2), (1.0, 0.32),
                (0.9, 0.38), (0.96, 0.48), (0.86, 0.55), (0.88, 0.66), (0.75, 0.82), (0.45, 0.98),
                (0.15, 1.0), (0, 0.9)],
    "pointed": [(0, 0), (0.3, -0.05), (0.5, -0.04), (0.75, 0.04), (1.0, 0.2), (0.85, 0.42),
                (0.6, 0.72), (0.35, 0.95), (0.1, 1.0), (0, 0.9)],
    "fingered": [(0, 0), (0.3, -0.04), (0.55, -0.03), (0.85, 0.02), (1.0, 0.12), (0.86, 0.24),
                 (0.99, 0.3), (0.85, 0.4), (0.96, 0.47), (0.83, 0.55), (0.9, 0.63), (0.76, 0.7),
                 (0.7, 0.84), (0.45, 0.98), (0.15, 1.0), (0, 0.9)],
}


def _wing_mapper(bird: _Bird, shoulder, span: float, sweep: float, raised: bool) -> Callable:
    """Maps wing-local (span fraction, chord fraction) points into the body frame."""
    up = -1.0 if raised else 1.0
    along = _turn(np.array([[-math.sin(sweep), up * math.cos(sweep)]]), bird.tilt)[0]
    back = _turn(np.array([[-math.cos(sweep), -up * math.sin(sweep)]]), bird.tilt)[0]
    chord = bird.look.wing_chord

    def to_body(points) -> np.ndarray:
        local = np.asarray(points, dtype=float)
        return shoulder + local[:, :1] * span * along + local[:, 1:] * chord * back
    return to_body


def _add_spread_wings(bird: _Bird, rng: np.random.Generator) -> None:
    """Seen from the side: the far wing raised behind the body, the near one up or down."""
    look, bh = bird.look, bird.look.body_height
    outline = np.array(_WING_OUTLINES[look.wing_shape])
    inner = outline.copy()
    inner[:, 0] = np.minimum(inner[:, 0], look.primary_cut)
    far = _wing_mapper(bird, bird.at(0.02, -0.6 * bh), look.wing_span * rng.uniform(0.5, 0.85),
                       math.radians(rng.uniform(15, 40)), raised=True)
    near = _wing_mapper(bird, bird.at(0.12, -0.45 * bh), look.wing_span * rng.uniform(0.6, 1.0),
                        math.radians(rng.uniform(0, 30)), raised=rng.random() < 0.6)
    for to_body, z, light in ((far, _FAR_WING, 0.75), (near, _WING, 1.0)):
        bird.fill(z, to_body(outline), _shade(look.primaries, light))
        bird.fill(z, to_body(inner), _shade(look.wing, light))
    bird.wings = [(far, _FAR_WING), (near, _WING_MARK)]


_TOES = {  # toe directions on a horizontal perch or ground, and on a vertical stem or trunk
    "horizontal": ((1.0, 0.12), (0.8, 0.5), (-0.8, 0.3)),
    "vertical": ((0.3, -1.0), (0.3, 1.0), (0.7, 0.2)),
}


def _add_legs(bird: _Bird, rng: np.random.Generator) -> None:
    look, bh = bird.look, bird.look.body_height
    hip = bird.at(0.0, 0.8 * bh)
    length = look.leg_length * rng.uniform(0.85, 1.1)
    bird.hips = [hip + (-0.04, 0), hip + (0.04, 0)]
    if bird.pose == "clinging":  # both feet on the trunk, which lies on the belly side
        surface = max(p[0] for p in bird.hips) + 0.7 * length
        feet = [np.array([surface, hip[1] - 0.12]), np.array([surface, hip[1] + 0.12])]
    elif bird.pose == "reed":  # both feet on one vertical stem
        feet = [np.array([hip[0] + 0.08, hip[1] + 0.5 * length]), np.array([hip[0] + 0.08, hip[1] + length])]
    else:
        stride = rng.uniform(0.0, 0.15) if bird.pose == "standing" else 0.03
        feet = [hip + (-stride, length * 0.6 if bird.pose == "perched" else length),
                hip + (stride, length * 0.6 if bird.pose == "perched" else length)]
    toes = _TOES["vertical" if bird.pose in ("clinging", "reed") else "horizontal"]
    width = look.leg_width
    for top, foot in zip(bird.hips, feet):
        bird.line(_LEGS, [top, foot], look.legs, width)
        for direction in toes:
            bird.line(_LEGS, [foot, foot + look.toe_length * np.array(direction)], look.legs, 0.7 * width)
    bird.contacts = feet


# --------------------------------------------------------------------------------------------------
# Field marks, one function per species


def _marks_myna(bird: _Bird, rng: np.random.Generator) -> None:
    head, hr = bird.head, bird.head_radius
    for i in range(4):  # the crest: a tuft of forward-curled feathers on the forehead
        root = head + hr * np.array([0.45 + 0.12 * i, -0.75 + 0.1 * i])
        bird.fill(_HEAD_MARK, _lens(root, root + hr * np.array([0.35 + 0.05 * i, -0.75 + 0.12 * i]),
                                    0.3 * hr), bird.look.head)
    _white_wing_patches(bird, (0.62, 0.45), 0.05, 0.42)
    if not bird.wings:
        bh = bird.look.body_height
        bird.fill(_WING_MARK, _lens(bird.at(-0.02, -0.22 * bh), bird.at(-0.22, -0.12 * bh), 0.12 * bh),
                  _WHITE)
    ends = [bird.tail_tip + 0.05 * bird.tail_under, bird.tail_tip - 0.05 * bird.tail_under]
    bird.line(_TAIL, ends, _WHITE, 0.03)  # white tail tip


def _marks_reed_warbler(bird: _Bird, rng: np.random.Generator) -> None:
    head, hr = bird.head, bird.head_radius
    bird.fill(_HEAD_MARK, _ellipse(head + hr * np.array([0.35, 0.5]), 0.45 * hr, 0.4 * hr),
              bird.look.belly)  # pale throat
    bird.fill(_HEAD_MARK, _lens(head + hr * np.array([0.9, 0.05]), head + hr * np.array([-0.6, 0.05]),
                                0.14 * hr), _shade(bird.look.head, 0.7))  # dark eye line
    bird.fill(_HEAD_MARK, _lens(head + hr * np.array([0.85, -0.25]), head + hr * np.array([-0.65, -0.35]),
                                0.2 * hr, peak=0.4), (236, 226, 192))  # pale eyebrow


def _marks_sunbird(bird: _Bird, rng: np.random.Generator) -> None:
    head, hr, bh = bird.head, bird.head_radius, bird.look.body_height
    breast = (214, 40, 34) if rng.random() < 0.5 else (236, 196, 40)
    bird.fill(_BODY_MARK, _ellipse(bird.at(0.2, 0.25 * bh), 0.2, 0.5 * bh, bird.tilt), breast)
    bird.fill(_HEAD_MARK, _ellipse(head + hr * np.array([0.25, 0.55]), 0.6 * hr, 0.45 * hr),
              (92, 60, 176))  # metallic violet throat
    bird.fill(_HEAD_MARK, _ellipse(head, hr, hr, 0, math.pi + 0.5, 2 * math.pi - 0.1),
              (44, 112, 206))  # blue sheen on the crown
    for offset in (0.1, -0.15):  # green-blue sheen on the back
        bird.fill(_BODY_MARK, _lens(bird.at(offset + 0.15, -0.75 * bh), bird.at(offset - 0.2, -0.6 * bh),
                                    0.2 * bh), (48, 190, 150))


def _marks_striated_heron(bird: _Bird, rng: np.random.Generator) -> None:
    head, hr = bird.head, bird.head_radius
    cap = (24, 34, 34)
    bird.fill(_HEAD_MARK, _ellipse(head, hr, hr, 0, math.pi - 0.2, 2 * math.pi + 0.25), cap)
    bird.fill(_HEAD_MARK, _lens(head + hr * np.array([-0.3, -0.7]), head + hr * np.array([-1.6, -0.1]),
                                0.4 * hr, peak=0.3), cap)  # crest at the back of the cap
    bird.fill(_HEAD_MARK, _lens(head + hr * np.array([0.8, 0.35]), head + hr * np.array([-0.5, 0.45]),
                                0.16 * hr), cap)  # dark line below the eye
    bird.fill(_HEAD_MARK, _lens(head + hr * np.array([0.3, 0.75]), bird.at(0.38, -0.1 * bird.look.body_height),
                                0.35 * hr), (206, 204, 192))  # pale streaked foreneck
    if not bird.wings:  # pale-edged wing coverts
        bh = bird.look.body_height
        for i in range(5):
            x = 0.2 - 0.1 * i
            bird.line(_WING_MARK, [bird.at(x, -0.5 * bh), bird.at(x - 0.1, -0.05 * bh)], (172, 190, 160), 0.015)


def _marks_crow(bird: _Bird, rng: np.random.Generator) -> None:
    head, hr, bh = bird.head, bird.head_radius, bird.look.body_height
    bird.fill(_HEAD, _circle(head + hr * np.array([0.45, -0.45]), 0.55 * hr), bird.look.head)  # steep forehead
    gloss = (58, 62, 98)
    if bird.wings:
        for to_body, z in bird.wings:
            bird.fill(z, to_body(_lens((0.05, 0.3), (0.5, 0.35), 0.2)), gloss)
    else:
        bird.fill(_WING_MARK, _lens(bird.at(0.2, -0.5 * bh), bird.at(-0.35, -0.35 * bh), 0.18 * bh), gloss)


def _marks_woodpecker(bird: _Bird, rng: np.random.Generator) -> None:
    head, hr, bh = bird.head, bird.head_radius, bird.look.body_height
    cheek_and_throat = _ellipse(head + hr * np.array([0.2, 0.4]), 0.75 * hr, 0.6 * hr)
    bird.fill(_HEAD_MARK, cheek_and_throat, _WHITE)
    bird.fill(_HEAD_MARK, _lens(head + hr * np.array([0.8, 0.35]), head + hr * np.array([-0.9, 0.6]),
                                0.25 * hr), bird.look.head)  # black moustache stripe
    if rng.random() < 0.5:  # males have a red nape patch
        bird.fill(_HEAD_MARK, _ellipse(head, hr, hr, 0, math.pi - 0.3, math.pi + 1.0), _RED)
    bird.fill(_BODY_MARK, _ellipse(bird.at(-0.36, 0.45 * bh), 0.12, 0.4 * bh, bird.tilt), _RED)  # red vent
    if bird.wings:
        _white_wing_patches(bird, (0.25, 0.35), 0.16, 0.25)
        for to_body, z in bird.wings:
            spots = [(x, y) for x in np.linspace(0.62, 0.92, 4) for y in (0.35, 0.6)]
            for spot in spots:
                bird.fill(z, to_body(_ellipse(spot, 0.03, 0.06, n=8)), _WHITE)
        return
    bird.fill(_WING_MARK, _lens(bird.at(0.25, -0.35 * bh), bird.at(-0.22, -0.3 * bh), 0.55 * bh), _WHITE)
    for x in np.linspace(-0.2, -0.5, 4):  # barred flight feathers
        for y in (-0.25, -0.02):
            bird.fill(_WING_MARK, _circle(bird.at(x, y * bh), 0.025), _WHITE)


def _marks_moorhen(bird: _Bird, rng: np.random.Generator) -> None:
    head, hr, bh = bird.head, bird.head_radius, bird.look.body_height
    shield_top = head + hr * np.array([0.45, -0.9])  # the red frontal shield, from the bill up the forehead
    bird.fill(_HEAD_MARK, _lens(_beak_point(bird, 0.2, 0.0), shield_top, 0.4 * hr, peak=0.7), bird.look.beak)
    bird.fill(_WING_MARK, _lens(bird.at(0.32, 0.08 * bh), bird.at(-0.42, -0.08 * bh), 0.13 * bh, peak=0.6),
              _WHITE)  # white flank line
    for side in (0.03, 0.09):  # white undertail, shown off by the cocked tail
        start = bird.tail_base + side * bird.tail_under
        bird.fill(_TAIL, _lens(start, start + 0.7 * bird.look.tail_length * bird.tail_dir, 0.07), _WHITE)


def _marks_sea_eagle(bird: _Bird, rng: np.random.Generator) -> None:
    head, hr, bh = bird.head, bird.head_radius, bird.look.body_height
    brow = _shade(bird.look.head, 0.55)
    bird.fill(_HEAD_MARK, _lens(head + hr * np.array([0.75, -0.2]), head + hr * np.array([0.0, -0.45]),
                                0.22 * hr), brow)  # the frowning brow ridge
    for i in range(3):  # streaky neck
        start = head + hr * np.array([-0.5 + 0.3 * i, 0.5])
        bird.fill(_HEAD_MARK, _lens(start, start + hr * np.array([-0.2, 0.8]), 0.1 * hr), brow)
    if bird.wings:
        return
    for i in range(6):  # pale-tipped wing coverts
        point = bird.at(0.15 - 0.1 * i, (-0.5 + 0.15 * (i % 3)) * bh)
        bird.fill(_WING_MARK, _lens(point, point + bird.at(-0.12, 0.02), 0.04), (150, 120, 84))
    for hip in bird.hips:  # feathered "trousers" over the upper legs
        bird.line(_LEGS, [hip, hip + (0.0, 0.6 * bird.look.leg_length)], bird.look.belly, 0.12)


def _marks_gull(bird: _Bird, rng: np.random.Generator) -> None:
    bird.fill(_BEAK, _circle(_beak_point(bird, 0.72, 0.22), 0.022), _RED)  # red spot on the lower bill
    if bird.wings:
        to_body, z = bird.wings[-1]
        bird.fill(z, to_body(_ellipse((0.86, 0.2), 0.035, 0.07, n=10)), _WHITE)  # white "mirror"
        return
    bh = bird.look.body_height
    tip = bird.at(bird.look.wing_tip, -0.15 * bh)
    bird.fill(_WING_MARK, _circle(tip + bird.at(0.1, -0.02), 0.03), _WHITE)
    bird.fill(_WING_MARK, _lens(bird.at(0.0, -0.55 * bh), bird.at(-0.4, -0.25 * bh), 0.05), _WHITE)  # tertials


def _white_wing_patches(bird: _Bird, centre, rx: float, ry: float) -> None:
    for to_body, z in bird.wings:
        bird.fill(z, to_body(_ellipse(centre, rx, ry, n=14)), _WHITE)


_MARKS: dict[str, Callable[[_Bird, np.random.Generator], None]] = {
    "myna": _marks_myna, "reed_warbler": _marks_reed_warbler, "sunbird": _marks_sunbird,
    "striated_heron": _marks_striated_heron, "crow": _marks_crow, "woodpecker": _marks_woodpecker,
    "moorhen": _marks_moorhen, "sea_eagle": _marks_sea_eagle, "gull": _marks_gull,
}


def _build_bird(species: str, rng: np.random.Generator) -> _Bird:
    look = _LOOKS[species]
    pose, _, low, high = _choice(rng, look.poses)
    bird = _Bird(look, pose, rng.uniform(low, high))
    _add_body(bird)
    _add_tail(bird, rng)
    _add_head(bird, rng)
    if pose == "flying":
        _add_spread_wings(bird, rng)
    else:
        _add_folded_wing(bird)
    if pose not in ("flying", "swimming"):
        _add_legs(bird, rng)
    _MARKS[species](bird, rng)
    return bird


# --------------------------------------------------------------------------------------------------
# Framing: from body units to pixels


@dataclass(frozen=True)
class _Placement:
    scale: float           # pixels per body unit, at the final size
    angle: float
    mirrored: bool         # facing left
    offset: np.ndarray

    def apply(self, points) -> np.ndarray:
        points = np.asarray(points, dtype=float).reshape(-1, 2) * ((-1.0 if self.mirrored else 1.0), 1.0)
        return _turn(points, self.angle) * self.scale + self.offset


def _place(bird: _Bird, size: tuple[int, int], rng: np.random.Generator) -> _Placement:
    """Scale, mirror, rotate slightly and position the bird so it fits the frame."""
    steady = bird.pose == "swimming"  # a tilted waterline would look wrong
    unit = _Placement(1.0, math.radians(rng.uniform(-3, 3) if steady else rng.uniform(-10, 10)),
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
    return _Placement(scale, unit.angle, unit.mirrored, offset)


# --------------------------------------------------------------------------------------------------
# Backdrops


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
    gradient = _gradient(size, _jitter(rng, zenith, 20), _jitter(rng, horizon, 20))
    image = Image.fromarray(gradient.astype(np.uint8))
    if rng.random() < 0.6:
        cloud = _jitter(rng, (236, 236, 240), 25).astype(int)
        blobs = _soft_blobs(size, rng, int(rng.integers(3, 12)), (0.08, 0.3),
                            lambda: (*cloud, int(rng.integers(60, 220))), 4)
        image.paste(blobs, (0, 0), blobs)
    return image


def _foliage(size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    dark, light = (_jitter(rng, c, 20) for c in _LEAVES[rng.integers(len(_LEAVES))])
    sky_gaps = rng.random() < 0.35

    def leaf_colour() -> tuple:
        if sky_gaps and rng.random() < 0.12:
            return (*_jitter(rng, (200, 215, 225), 25).astype(int), 255)
        t = rng.uniform(0, 1)
        return (*(dark + t * (light - dark)).astype(int), 255)

    image = Image.new("RGB", size, tuple(((dark + light) / 2).astype(int)))
    for count, radius, shrink in ((60, (0.05, 0.25), 6), (160, (0.02, 0.07), 3)):
        blobs = _soft_blobs(size, rng, count, radius, leaf_colour, shrink)
        image.paste(blobs, (0, 0), blobs)
    return image


def _water(size: tuple[int, int], rng: np.random.Generator, horizon: int) -> Image.Image:
    """Open water below `horizon` (pixels from the top), sky or a far shore of trees above it."""
    far, near = (_jitter(rng, c, 18) for c in _WATERS[rng.integers(len(_WATERS))])
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


def _backdrop(kind: str, size: tuple[int, int], rng: np.random.Generator, horizon_max: float) -> Image.Image:
    if kind == "sky":
        return _sky(size, rng)
    if kind == "foliage":
        return _foliage(size, rng)
    return _water(size, rng, int(rng.uniform(0, 1) * max(0.0, horizon_max)))


# --------------------------------------------------------------------------------------------------
# Props the bird stands, sits, clings or swims on (drawn supersampled, behind the bird)


def _bark(rng: np.random.Generator) -> tuple:
    palette = ((95, 75, 55), (122, 102, 82), (70, 60, 50), (142, 132, 116), (60, 48, 40))
    return tuple(_jitter(rng, palette[rng.integers(len(palette))], 15).astype(int))


def _draw_branch(draw: ImageDraw.ImageDraw, feet: np.ndarray, scale: float, size, rng) -> None:
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


def _draw_reeds(draw: ImageDraw.ImageDraw, feet: np.ndarray, scale: float, size, rng) -> None:
    colour = tuple(_jitter(rng, (150, 150, 90), 30).astype(int))
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
            leaf = _lens((x, y), tip, 0.06 * scale)
            draw.polygon([tuple(p) for p in leaf], fill=_shade(colour, rng.uniform(0.7, 1.0)))


def _draw_trunk(draw: ImageDraw.ImageDraw, surface: float, side: int, size, rng) -> None:
    """A vertical trunk from `surface` (where the bird clings) away from the bird."""
    width = rng.uniform(0.2, 0.45) * size[0]
    far_edge = surface + side * width
    colour = _bark(rng)
    draw.rectangle([min(surface, far_edge), 0, max(surface, far_edge), size[1]], fill=colour)
    for _ in range(int(rng.integers(6, 14))):  # furrows in the bark
        x = surface + side * rng.uniform(0.05, 1.0) * width
        y = rng.uniform(0, size[1])
        draw.line([(x, y), (x + rng.uniform(-5, 5), y + rng.uniform(0.1, 0.5) * size[1])],
                  fill=_shade(colour, 0.6), width=max(1, int(width / 40)))


def _draw_ground(draw: ImageDraw.ImageDraw, feet: np.ndarray, size, rng) -> None:
    palette = ((190, 170, 130), (110, 90, 70), (90, 130, 60), (120, 120, 115), (150, 140, 110))
    colour = tuple(_jitter(rng, palette[rng.integers(len(palette))], 15).astype(int))
    top = max(feet[:, 1].max() - rng.uniform(0.03, 0.3) * size[1], 0)
    edge = [(x, top + rng.uniform(-0.02, 0.02) * size[1]) for x in np.linspace(0, size[0], 9)]
    draw.polygon(edge + [(size[0], size[1]), (0, size[1])], fill=colour)
    for _ in range(int(rng.integers(3, 10))):  # pebbles and tufts
        x, y = rng.uniform(0, size[0]), rng.uniform(top, size[1])
        r = rng.uniform(0.005, 0.03) * size[0]
        draw.ellipse([x - r, y - r / 2, x + r, y + r / 2], fill=_shade(colour, rng.uniform(0.6, 1.3)))


def _draw_ripples(draw: ImageDraw.ImageDraw, centre: np.ndarray, scale: float, colour, rng) -> None:
    for ring in range(int(rng.integers(1, 4))):  # only the near halves: the far ones hide behind the bird
        rx = scale * (0.6 + 0.35 * ring)
        draw.arc([centre[0] - rx, centre[1] - 0.12 * rx, centre[0] + rx, centre[1] + 0.12 * rx],
                 0, 180, fill=colour, width=max(1, int(scale / 60)))


# --------------------------------------------------------------------------------------------------
# Rendering


def _render(bird: _Bird, placement: _Placement, big: tuple[int, int], tint: np.ndarray) -> Image.Image:
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


def _scene(bird: _Bird, placement: _Placement, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    look = bird.look
    big = (size[0] * _SUPERSAMPLE, size[1] * _SUPERSAMPLE)
    scale = placement.scale * _SUPERSAMPLE
    waterline = placement.apply([bird.at(0.0, 0.0) + (0, 0.35 * look.body_height)])[0]
    if bird.pose == "swimming":
        kind, horizon_max = "water", waterline[1] - 2
    else:
        kind, horizon_max = _choice(rng, look.backdrops)[0], 0.6 * size[1]
    backdrop = _backdrop(kind, size, rng, horizon_max)

    # Props and bird are drawn supersampled on one transparent layer, then shrunk onto the backdrop.
    layer = Image.new("RGBA", big, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    contacts = placement.apply(np.array(bird.contacts)) * _SUPERSAMPLE if bird.contacts else None
    if bird.pose == "perched":
        _draw_branch(draw, contacts, scale, big, rng)
    elif bird.pose == "reed":
        _draw_reeds(draw, contacts, scale, big, rng)
    elif bird.pose == "standing":
        _draw_ground(draw, contacts, big, rng)
    elif bird.pose == "clinging":
        side = -1 if placement.mirrored else 1
        tail_tip = placement.apply([bird.tail_tip])[0] * _SUPERSAMPLE
        _draw_trunk(draw, side * max(side * contacts[0][0], side * tail_tip[0]), side, big, rng)
    layer.alpha_composite(_render(bird, placement, big, rng.uniform(0.9, 1.1, 3)))
    if bird.pose == "swimming":  # hide what is under the water, and ring the bird with ripples
        draw.rectangle([0, waterline[1] * _SUPERSAMPLE, big[0], big[1]], fill=(0, 0, 0, 0))
        probe = backdrop.getpixel((int(np.clip(waterline[0], 0, size[0] - 1)),
                                   int(np.clip(waterline[1] + 2, 0, size[1] - 1))))
        _draw_ripples(draw, waterline * _SUPERSAMPLE, scale, _shade(probe, 1.3), rng)
    small = layer.reduce(_SUPERSAMPLE)
    backdrop.paste(small, (0, 0), small)
    return backdrop


def _camera(image: Image.Image, rng: np.random.Generator) -> Image.Image:
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


# --------------------------------------------------------------------------------------------------
# Public API


def draw_bird(species: str, rng: np.random.Generator, *,
              size_range: tuple[int, int] = (180, 480)) -> Image.Image:
    """One RGB picture of `species` (a slug from SPECIES); raises ValueError naming the slug if unknown."""
    if species not in _LOOKS:
        raise ValueError(f"unknown species {species!r}; expected one of {', '.join(SPECIES)}")
    low, high = size_range
    size = (int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1)))
    bird = _build_bird(species, rng)
    placement = _place(bird, size, rng)
    return _camera(_scene(bird, placement, size, rng), rng)


def synthesize(species: list[str], total: int, seed: int, *,
               size_range: tuple[int, int] = (180, 480), workers: int = 1) -> Iterator[tuple[str, int, bytes]]:
    """Yield (slug, index_within_class, jpeg_bytes) for `total` images spread over `species` as evenly
    as possible (190 over 9 -> one class gets 22, the rest 21; the first classes in the list get the extra
    images). Same arguments -> same bytes, whatever `workers` (processes drawing at once; 0 = one per
    CPU core). Raises ValueError for an unknown slug or total < len(species).

    The arguments are checked at once; the images are drawn lazily, a few per worker ahead."""
    unknown = [slug for slug in species if slug not in _LOOKS]
    if unknown:
        raise ValueError(f"unknown species {', '.join(map(repr, unknown))}; "
                         f"expected some of {', '.join(SPECIES)}")
    if len(set(species)) != len(species):
        raise ValueError(f"species listed twice in {species}")
    if not species or total < len(species):
        raise ValueError(f"need at least one image per species: total={total} for {len(species)} species")
    if not 1 <= size_range[0] <= size_range[1]:
        raise ValueError(f"bad size_range {size_range}")
    jobs = [(slug, index, seed, size_range) for slug, index in _plan(list(species), total)]
    processes = workers or os.cpu_count() or 1
    if processes == 1:
        return (_draw_jpeg(*job) for job in jobs)
    return _in_order(_draw_jpeg, jobs, processes)


def _plan(species: list[str], total: int) -> Iterator[tuple[str, int]]:
    per_class, extra = divmod(total, len(species))
    for position, slug in enumerate(species):
        for index in range(per_class + (position < extra)):
            yield slug, index


def _draw_jpeg(slug: str, index: int, seed: int, size_range: tuple[int, int]) -> tuple[str, int, bytes]:
    # Seeded by the slug's place in SPECIES, not in `species`: adding a class changes no other class.
    rng = np.random.default_rng([seed, SPECIES.index(slug), index])
    image = draw_bird(slug, rng, size_range=size_range)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(_JPEG_QUALITY[0], _JPEG_QUALITY[1] + 1)),
               subsampling=2, optimize=False)
    return slug, index, buffer.getvalue()


def _in_order(function: Callable, jobs: list[tuple], processes: int, ahead: int = 4) -> Iterator:
    """function(*job) for every job, computed by `processes` processes, yielded in the jobs' order;
    at most `ahead` results per process wait to be taken, so memory stays flat however many jobs."""
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=process_context()) as pool:
        window: collections.deque = collections.deque()
        for job in jobs:
            window.append(pool.submit(function, *job))
            if len(window) >= processes * ahead:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def find_images(params: Params) -> Iterator[Found]:
    """The crawl's synthetic source: crawl.synthetic.total_images drawings of params' classes."""
    cfg = params.crawl.synthetic
    try:
        drawn = synthesize(params.slugs, cfg.total_images, cfg.seed, size_range=(cfg.min_size, cfg.max_size),
                           workers=params.crawl.workers)
    except ValueError as e:
        raise CrawlError(f"crawl.source synthetic: {e}") from None
    for slug, _, data in drawn:
        yield Found(slug, "synthetic", data)
