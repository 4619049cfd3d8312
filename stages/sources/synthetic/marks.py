"""Field marks, one function per species, and the whole bird: body parts, then its marks."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from stages.sources.synthetic.bird import (
    BEAK, BODY_MARK, HEAD, HEAD_MARK, LEGS, TAIL, WING_MARK, Bird, add_body, add_folded_wing, add_head, add_legs,
    add_spread_wings, add_tail, beak_point,
)
from stages.sources.synthetic.geometry import choice, circle, ellipse, lens, shade
from stages.sources.synthetic.species import LOOKS, RED, WHITE


def _marks_myna(bird: Bird, rng: np.random.Generator) -> None:
    head, hr = bird.head, bird.head_radius
    for i in range(4):  # the crest: a tuft of forward-curled feathers on the forehead
        root = head + hr * np.array([0.45 + 0.12 * i, -0.75 + 0.1 * i])
        bird.fill(HEAD_MARK, lens(root, root + hr * np.array([0.35 + 0.05 * i, -0.75 + 0.12 * i]),
                                  0.3 * hr), bird.look.head)
    _white_wing_patches(bird, (0.62, 0.45), 0.05, 0.42)
    if not bird.wings:
        bh = bird.look.body_height
        bird.fill(WING_MARK, lens(bird.at(-0.02, -0.22 * bh), bird.at(-0.22, -0.12 * bh), 0.12 * bh),
                  WHITE)
    ends = [bird.tail_tip + 0.05 * bird.tail_under, bird.tail_tip - 0.05 * bird.tail_under]
    bird.line(TAIL, ends, WHITE, 0.03)  # white tail tip


def _marks_reed_warbler(bird: Bird, rng: np.random.Generator) -> None:
    head, hr = bird.head, bird.head_radius
    bird.fill(HEAD_MARK, ellipse(head + hr * np.array([0.35, 0.5]), 0.45 * hr, 0.4 * hr),
              bird.look.belly)  # pale throat
    bird.fill(HEAD_MARK, lens(head + hr * np.array([0.9, 0.05]), head + hr * np.array([-0.6, 0.05]),
                              0.14 * hr), shade(bird.look.head, 0.7))  # dark eye line
    bird.fill(HEAD_MARK, lens(head + hr * np.array([0.85, -0.25]), head + hr * np.array([-0.65, -0.35]),
                              0.2 * hr, peak=0.4), (236, 226, 192))  # pale eyebrow


def _marks_sunbird(bird: Bird, rng: np.random.Generator) -> None:
    head, hr, bh = bird.head, bird.head_radius, bird.look.body_height
    breast = (214, 40, 34) if rng.random() < 0.5 else (236, 196, 40)
    bird.fill(BODY_MARK, ellipse(bird.at(0.2, 0.25 * bh), 0.2, 0.5 * bh, bird.tilt), breast)
    bird.fill(HEAD_MARK, ellipse(head + hr * np.array([0.25, 0.55]), 0.6 * hr, 0.45 * hr),
              (92, 60, 176))  # metallic violet throat
    bird.fill(HEAD_MARK, ellipse(head, hr, hr, 0, math.pi + 0.5, 2 * math.pi - 0.1),
              (44, 112, 206))  # blue sheen on the crown
    for offset in (0.1, -0.15):  # green-blue sheen on the back
        bird.fill(BODY_MARK, lens(bird.at(offset + 0.15, -0.75 * bh), bird.at(offset - 0.2, -0.6 * bh),
                                  0.2 * bh), (48, 190, 150))


def _marks_striated_heron(bird: Bird, rng: np.random.Generator) -> None:
    head, hr = bird.head, bird.head_radius
    cap = (24, 34, 34)
    bird.fill(HEAD_MARK, ellipse(head, hr, hr, 0, math.pi - 0.2, 2 * math.pi + 0.25), cap)
    bird.fill(HEAD_MARK, lens(head + hr * np.array([-0.3, -0.7]), head + hr * np.array([-1.6, -0.1]),
                              0.4 * hr, peak=0.3), cap)  # crest at the back of the cap
    bird.fill(HEAD_MARK, lens(head + hr * np.array([0.8, 0.35]), head + hr * np.array([-0.5, 0.45]),
                              0.16 * hr), cap)  # dark line below the eye
    bird.fill(HEAD_MARK, lens(head + hr * np.array([0.3, 0.75]), bird.at(0.38, -0.1 * bird.look.body_height),
                              0.35 * hr), (206, 204, 192))  # pale streaked foreneck
    if not bird.wings:  # pale-edged wing coverts
        bh = bird.look.body_height
        for i in range(5):
            x = 0.2 - 0.1 * i
            bird.line(WING_MARK, [bird.at(x, -0.5 * bh), bird.at(x - 0.1, -0.05 * bh)], (172, 190, 160), 0.015)


def _marks_crow(bird: Bird, rng: np.random.Generator) -> None:
    head, hr, bh = bird.head, bird.head_radius, bird.look.body_height
    bird.fill(HEAD, circle(head + hr * np.array([0.45, -0.45]), 0.55 * hr), bird.look.head)  # steep forehead
    gloss = (58, 62, 98)
    if bird.wings:
        for to_body, z in bird.wings:
            bird.fill(z, to_body(lens((0.05, 0.3), (0.5, 0.35), 0.2)), gloss)
    else:
        bird.fill(WING_MARK, lens(bird.at(0.2, -0.5 * bh), bird.at(-0.35, -0.35 * bh), 0.18 * bh), gloss)


def _marks_woodpecker(bird: Bird, rng: np.random.Generator) -> None:
    head, hr, bh = bird.head, bird.head_radius, bird.look.body_height
    cheek_and_throat = ellipse(head + hr * np.array([0.2, 0.4]), 0.75 * hr, 0.6 * hr)
    bird.fill(HEAD_MARK, cheek_and_throat, WHITE)
    bird.fill(HEAD_MARK, lens(head + hr * np.array([0.8, 0.35]), head + hr * np.array([-0.9, 0.6]),
                              0.25 * hr), bird.look.head)  # black moustache stripe
    if rng.random() < 0.5:  # males have a red nape patch
        bird.fill(HEAD_MARK, ellipse(head, hr, hr, 0, math.pi - 0.3, math.pi + 1.0), RED)
    bird.fill(BODY_MARK, ellipse(bird.at(-0.36, 0.45 * bh), 0.12, 0.4 * bh, bird.tilt), RED)  # red vent
    if bird.wings:
        _white_wing_patches(bird, (0.25, 0.35), 0.16, 0.25)
        for to_body, z in bird.wings:
            spots = [(x, y) for x in np.linspace(0.62, 0.92, 4) for y in (0.35, 0.6)]
            for spot in spots:
                bird.fill(z, to_body(ellipse(spot, 0.03, 0.06, n=8)), WHITE)
        return
    bird.fill(WING_MARK, lens(bird.at(0.25, -0.35 * bh), bird.at(-0.22, -0.3 * bh), 0.55 * bh), WHITE)
    for x in np.linspace(-0.2, -0.5, 4):  # barred flight feathers
        for y in (-0.25, -0.02):
            bird.fill(WING_MARK, circle(bird.at(x, y * bh), 0.025), WHITE)


def _marks_moorhen(bird: Bird, rng: np.random.Generator) -> None:
    head, hr, bh = bird.head, bird.head_radius, bird.look.body_height
    shield_top = head + hr * np.array([0.45, -0.9])  # the red frontal shield, from the bill up the forehead
    bird.fill(HEAD_MARK, lens(beak_point(bird, 0.2, 0.0), shield_top, 0.4 * hr, peak=0.7), bird.look.beak)
    bird.fill(WING_MARK, lens(bird.at(0.32, 0.08 * bh), bird.at(-0.42, -0.08 * bh), 0.13 * bh, peak=0.6),
              WHITE)  # white flank line
    for side in (0.03, 0.09):  # white undertail, shown off by the cocked tail
        start = bird.tail_base + side * bird.tail_under
        bird.fill(TAIL, lens(start, start + 0.7 * bird.look.tail_length * bird.tail_dir, 0.07), WHITE)


def _marks_sea_eagle(bird: Bird, rng: np.random.Generator) -> None:
    head, hr, bh = bird.head, bird.head_radius, bird.look.body_height
    brow = shade(bird.look.head, 0.55)
    bird.fill(HEAD_MARK, lens(head + hr * np.array([0.75, -0.2]), head + hr * np.array([0.0, -0.45]),
                              0.22 * hr), brow)  # the frowning brow ridge
    for i in range(3):  # streaky neck
        start = head + hr * np.array([-0.5 + 0.3 * i, 0.5])
        bird.fill(HEAD_MARK, lens(start, start + hr * np.array([-0.2, 0.8]), 0.1 * hr), brow)
    if bird.wings:
        return
    for i in range(6):  # pale-tipped wing coverts
        point = bird.at(0.15 - 0.1 * i, (-0.5 + 0.15 * (i % 3)) * bh)
        bird.fill(WING_MARK, lens(point, point + bird.at(-0.12, 0.02), 0.04), (150, 120, 84))
    for hip in bird.hips:  # feathered "trousers" over the upper legs
        bird.line(LEGS, [hip, hip + (0.0, 0.6 * bird.look.leg_length)], bird.look.belly, 0.12)


def _marks_gull(bird: Bird, rng: np.random.Generator) -> None:
    bird.fill(BEAK, circle(beak_point(bird, 0.72, 0.22), 0.022), RED)  # red spot on the lower bill
    if bird.wings:
        to_body, z = bird.wings[-1]
        bird.fill(z, to_body(ellipse((0.86, 0.2), 0.035, 0.07, n=10)), WHITE)  # white "mirror"
        return
    bh = bird.look.body_height
    tip = bird.at(bird.look.wing_tip, -0.15 * bh)
    bird.fill(WING_MARK, circle(tip + bird.at(0.1, -0.02), 0.03), WHITE)
    bird.fill(WING_MARK, lens(bird.at(0.0, -0.55 * bh), bird.at(-0.4, -0.25 * bh), 0.05), WHITE)  # tertials


def _white_wing_patches(bird: Bird, centre, rx: float, ry: float) -> None:
    for to_body, z in bird.wings:
        bird.fill(z, to_body(ellipse(centre, rx, ry, n=14)), WHITE)


_MARKS: dict[str, Callable[[Bird, np.random.Generator], None]] = {
    "myna": _marks_myna, "reed_warbler": _marks_reed_warbler, "sunbird": _marks_sunbird,
    "striated_heron": _marks_striated_heron, "crow": _marks_crow, "woodpecker": _marks_woodpecker,
    "moorhen": _marks_moorhen, "sea_eagle": _marks_sea_eagle, "gull": _marks_gull,
}


def build_bird(species: str, rng: np.random.Generator) -> Bird:
    look = LOOKS[species]
    pose, _, low, high = choice(rng, look.poses)
    bird = Bird(look, pose, rng.uniform(low, high))
    add_body(bird)
    add_tail(bird, rng)
    add_head(bird, rng)
    if pose == "flying":
        add_spread_wings(bird, rng)
    else:
        add_folded_wing(bird)
    if pose not in ("flying", "swimming"):
        add_legs(bird, rng)
    _MARKS[species](bird, rng)
    return bird
