"""The bird as shapes in body units (the body ellipse is 1 long, the bird faces right, y points down)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from stages.sources.synthetic.geometry import RGB, circle, ellipse, lens, shade, turn
from stages.sources.synthetic.species import Look

# Drawing order of a bird's parts, back to front.
FAR_WING, TAIL, LEGS, BODY, BODY_MARK, WING, WING_MARK, HEAD, HEAD_MARK, EYE, BEAK = range(11)


class Bird:
    """A bird's shapes in body units, with the anchor points that field marks and props attach to."""

    head: np.ndarray          # set by add_head
    head_radius: float
    beak_base: np.ndarray     # set by _add_beak
    beak_angle: float
    tail_base: np.ndarray     # set by add_tail
    tail_tip: np.ndarray
    tail_dir: np.ndarray
    tail_under: np.ndarray    # unit vector from the tail towards its underside
    hips: list[np.ndarray]    # set by add_legs

    def __init__(self, look: Look, pose: str, tilt_degrees: float):
        self.look, self.pose = look, pose
        self.tilt = math.radians(tilt_degrees)
        self.shapes: list[tuple[int, np.ndarray, RGB, float]] = []  # (z, points, colour, line width)
        self.contacts: list[np.ndarray] = []  # where the bird touches its perch, ground or trunk
        self.wings: list[tuple[Callable, int]] = []  # (wing-to-body mapper, z) of spread wings
        self.hips = []

    def at(self, x: float, y: float) -> np.ndarray:
        """A point in the tilted body frame: x towards the head, y towards the belly."""
        return turn(np.array([[x, y]]), self.tilt)[0]

    def fill(self, z: int, points, colour) -> None:
        self.shapes.append((z, np.asarray(points, dtype=float), colour, 0.0))

    def line(self, z: int, points, colour, width: float) -> None:
        self.shapes.append((z, np.asarray(points, dtype=float), colour, width))


def add_body(bird: Bird) -> None:
    look, bh = bird.look, bird.look.body_height
    bird.fill(BODY, ellipse((0, 0), 0.5, bh, bird.tilt), look.back)
    # The belly: the body ellipse below a chord just above its midline.
    bird.fill(BODY, ellipse((0, 0), 0.5, bh, bird.tilt, -0.25, math.pi + 0.25), look.belly)


def add_head(bird: Bird, rng: np.random.Generator) -> None:
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
    bird.fill(HEAD, lens(neck_base, head + 0.5 * hr * reach, 1.6 * hr), look.head)
    bird.fill(HEAD, circle(head, hr), look.head)
    eye = head + (0.3 * hr, -0.12 * hr)
    bird.fill(EYE, circle(eye, 0.19 * hr), look.eye)
    bird.fill(EYE, circle(eye, 0.11 * hr), (12, 10, 10))
    bird.fill(EYE, circle(eye + (0.04 * hr, -0.05 * hr), 0.035 * hr), (250, 250, 250))

    angle = {"clinging": (10, 45), "flying": (-10, 5)}.get(bird.pose, (-12, 12))
    beak_angle = math.radians(rng.uniform(*angle))
    gape = math.radians(rng.uniform(18, 32)) if look.sings and rng.random() < 0.5 else 0.0
    base = head + 0.78 * hr * np.array([math.cos(beak_angle), -math.sin(beak_angle)]) + (0, 0.12 * hr)
    _add_beak(bird, base, beak_angle, gape)


def _add_beak(bird: Bird, base: np.ndarray, angle: float, gape: float) -> None:
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
        return turn(upper, angle + gape / 2) + base, turn(lower, angle - gape / 2) + base

    bird.beak_base, bird.beak_angle = base, angle
    upper, lower = mandibles(0)
    if gape:  # the open mouth shows an orange-pink gape
        mouth = [base, turn(centre[8:9], angle + gape / 2)[0] + base,
                 turn(centre[8:9], angle - gape / 2)[0] + base]
        bird.fill(BEAK, mouth, (232, 112, 72))
    bird.fill(BEAK, lower, look.lower_beak)
    bird.fill(BEAK, upper, look.beak)
    if look.beak_tip:
        tip_upper, tip_lower = mandibles(len(s) * 2 // 3)
        bird.fill(BEAK, tip_lower, look.beak_tip)
        bird.fill(BEAK, tip_upper, look.beak_tip)


def beak_point(bird: Bird, along: float, below: float) -> np.ndarray:
    """A point on the beak: `along` in beak lengths from the base, `below` in beak depths."""
    look = bird.look
    local = np.array([[along * look.beak_length, below * look.beak_depth]])
    return turn(local, bird.beak_angle)[0] + bird.beak_base


def add_tail(bird: Bird, rng: np.random.Generator) -> None:
    look, bh = bird.look, bird.look.body_height
    base = bird.at(-0.4, -0.1 * bh)
    direction = turn(-bird.at(1, 0), math.radians(rng.uniform(*look.tail_droop)))
    across = np.array([-direction[1], direction[0]])
    tip = base + look.tail_length * direction
    w0, w1 = 0.5 * look.tail_width, 0.65 * look.tail_width * (0.7 if look.wedge_tail else 1.0)
    outline = [base + w0 * across, tip + w1 * across]
    if look.wedge_tail:
        outline.append(tip + 0.3 * look.tail_length * direction)
    outline += [tip - w1 * across, base - w0 * across]
    bird.fill(TAIL, outline, look.tail)
    bird.tail_base, bird.tail_tip, bird.tail_dir = base, tip, direction
    bird.tail_under = across if across[1] > 0 else -across


def add_folded_wing(bird: Bird) -> None:
    look, bh = bird.look, bird.look.body_height
    tip = bird.at(look.wing_tip, -0.15 * bh)
    bird.fill(WING, lens(bird.at(0.28, -0.4 * bh), tip, 1.25 * bh, peak=0.35), look.wing)
    bird.fill(WING, lens(bird.at(-0.05, -0.2 * bh), tip, 0.55 * bh, peak=0.3), look.primaries)


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


def _wing_mapper(bird: Bird, shoulder, span: float, sweep: float, raised: bool) -> Callable:
    """Maps wing-local (span fraction, chord fraction) points into the body frame."""
    up = -1.0 if raised else 1.0
    along = turn(np.array([[-math.sin(sweep), up * math.cos(sweep)]]), bird.tilt)[0]
    back = turn(np.array([[-math.cos(sweep), -up * math.sin(sweep)]]), bird.tilt)[0]
    chord = bird.look.wing_chord

    def to_body(points) -> np.ndarray:
        local = np.asarray(points, dtype=float)
        return shoulder + local[:, :1] * span * along + local[:, 1:] * chord * back
    return to_body


def add_spread_wings(bird: Bird, rng: np.random.Generator) -> None:
    """Seen from the side: the far wing raised behind the body, the near one up or down."""
    look, bh = bird.look, bird.look.body_height
    outline = np.array(_WING_OUTLINES[look.wing_shape])
    inner = outline.copy()
    inner[:, 0] = np.minimum(inner[:, 0], look.primary_cut)
    far = _wing_mapper(bird, bird.at(0.02, -0.6 * bh), look.wing_span * rng.uniform(0.5, 0.85),
                       math.radians(rng.uniform(15, 40)), raised=True)
    near = _wing_mapper(bird, bird.at(0.12, -0.45 * bh), look.wing_span * rng.uniform(0.6, 1.0),
                        math.radians(rng.uniform(0, 30)), raised=rng.random() < 0.6)
    for to_body, z, light in ((far, FAR_WING, 0.75), (near, WING, 1.0)):
        bird.fill(z, to_body(outline), shade(look.primaries, light))
        bird.fill(z, to_body(inner), shade(look.wing, light))
    bird.wings = [(far, FAR_WING), (near, WING_MARK)]


_TOES = {  # toe directions on a horizontal perch or ground, and on a vertical stem or trunk
    "horizontal": ((1.0, 0.12), (0.8, 0.5), (-0.8, 0.3)),
    "vertical": ((0.3, -1.0), (0.3, 1.0), (0.7, 0.2)),
}


def add_legs(bird: Bird, rng: np.random.Generator) -> None:
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
        bird.line(LEGS, [top, foot], look.legs, width)
        for direction in toes:
            bird.line(LEGS, [foot, foot + look.toe_length * np.array(direction)], look.legs, 0.7 * width)
    bird.contacts = feet
