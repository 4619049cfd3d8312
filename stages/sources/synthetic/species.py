"""The nine species: their colours, proportions, poses and usual backdrops."""

from __future__ import annotations

from dataclasses import dataclass

from stages.sources.synthetic.geometry import RGB

SPECIES: tuple[str, ...] = (
    "myna", "reed_warbler", "sunbird", "striated_heron", "crow",
    "woodpecker", "moorhen", "sea_eagle", "gull",
)

WHITE: RGB = (238, 238, 232)
BLACK: RGB = (24, 24, 28)
RED: RGB = (200, 32, 38)


@dataclass(frozen=True)
class Look:
    back: RGB
    belly: RGB
    head: RGB
    wing: RGB
    primaries: RGB            # flight feathers / wing tips
    tail: RGB
    beak: RGB
    lower_beak: RGB
    legs: RGB
    eye: RGB
    poses: tuple              # (pose, weight, min tilt, max tilt in degrees; tilt raises the head)
    backdrops: tuple          # (backdrop, weight), backdrop in sky / foliage / water
    body_height: float = 0.27  # half-height of the body ellipse, whose half-length is 0.5
    head_radius: float = 0.18
    neck: float = 0.05
    beak_length: float = 0.18
    beak_depth: float = 0.07
    beak_curve: float = 0.0   # how far the beak tip bends down, in beak lengths
    beak_tip: RGB | None = None
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


LOOKS: dict[str, Look] = {
    "myna": Look(
        back=BLACK, belly=(34, 34, 40), head=BLACK, wing=(30, 30, 34), primaries=(20, 20, 24),
        tail=(22, 22, 26), beak=(238, 226, 150), lower_beak=(232, 220, 140), legs=(214, 188, 84),
        eye=(236, 160, 40), body_height=0.27, head_radius=0.19, beak_length=0.17, beak_depth=0.08,
        beak_curve=0.05, tail_length=0.38, leg_length=0.28, wing_span=1.05,
        poses=(("perched", 5, 15, 40), ("standing", 3, 5, 20), ("flying", 2, -5, 10)),
        backdrops=(("sky", 3), ("foliage", 5), ("water", 2))),
    "reed_warbler": Look(
        back=(128, 112, 72), belly=(226, 214, 180), head=(122, 106, 68), wing=(112, 96, 60),
        primaries=(95, 80, 52), tail=(110, 95, 62), beak=(88, 76, 60), lower_beak=(214, 170, 130),
        legs=(160, 136, 112), eye=(40, 30, 25), body_height=0.25, head_radius=0.17, beak_length=0.18,
        beak_depth=0.055, sings=True, tail_length=0.45, tail_width=0.09, leg_length=0.24,
        wing_span=0.9, wing_chord=0.4,
        poses=(("reed", 6, 30, 60), ("perched", 3, 20, 45), ("flying", 1, -5, 10)),
        backdrops=(("foliage", 4), ("water", 3), ("sky", 3))),
    "sunbird": Look(
        back=(36, 150, 104), belly=(232, 204, 56), head=(32, 160, 122), wing=(72, 76, 46),
        primaries=(55, 56, 40), tail=(30, 46, 104), beak=(20, 20, 22), lower_beak=(20, 20, 22),
        legs=(30, 30, 30), eye=(22, 16, 16), body_height=0.25, head_radius=0.16, beak_length=0.42,
        beak_depth=0.045, beak_curve=0.22, tail_length=0.36, tail_width=0.08, leg_length=0.18,
        wing_span=0.8, wing_chord=0.35,
        poses=(("perched", 7, 15, 45), ("flying", 3, 10, 35)),
        backdrops=(("foliage", 5), ("sky", 3), ("water", 2))),
    "striated_heron": Look(
        back=(92, 112, 100), belly=(150, 154, 152), head=(118, 128, 124), wing=(84, 106, 90),
        primaries=(58, 68, 68), tail=(68, 78, 78), beak=(34, 34, 34), lower_beak=(196, 170, 64),
        legs=(236, 160, 44), eye=(242, 204, 44), body_height=0.3, head_radius=0.17, neck=0.1,
        beak_length=0.45, beak_depth=0.07, tail_length=0.18, tail_width=0.12, leg_length=0.34,
        leg_width=0.04, toe_length=0.13, wing_span=1.2, wing_chord=0.55, wing_tip=-0.5,
        poses=(("standing", 5, 5, 25), ("perched", 3, 10, 30), ("flying", 2, -5, 10)),
        backdrops=(("water", 5), ("foliage", 3), ("sky", 2))),
    "crow": Look(
        back=(20, 20, 24), belly=(24, 24, 28), head=(18, 18, 22), wing=(22, 22, 28),
        primaries=(16, 16, 20), tail=(18, 18, 22), beak=(14, 14, 16), lower_beak=(14, 14, 16),
        legs=(20, 20, 22), eye=(26, 20, 20), body_height=0.28, head_radius=0.21, neck=0.06,
        beak_length=0.3, beak_depth=0.15, beak_curve=0.07, tail_length=0.45, tail_width=0.12,
        leg_length=0.36, leg_width=0.035, toe_length=0.12, wing_span=1.35, wing_chord=0.55,
        wing_shape="fingered",
        poses=(("perched", 4, 10, 30), ("standing", 3, 0, 15), ("flying", 3, -5, 10)),
        backdrops=(("sky", 4), ("foliage", 3), ("water", 3))),
    "woodpecker": Look(
        back=(18, 18, 18), belly=(232, 226, 212), head=(20, 20, 20), wing=(18, 18, 18),
        primaries=(22, 22, 22), tail=(20, 20, 20), beak=(58, 58, 62), lower_beak=(70, 70, 74),
        legs=(84, 84, 90), eye=(30, 20, 20), body_height=0.26, head_radius=0.18, neck=0.03,
        beak_length=0.22, beak_depth=0.08, tail_length=0.38, tail_width=0.09, tail_droop=(25, 45),
        wedge_tail=True, leg_length=0.2, wing_span=1.0,
        poses=(("clinging", 8, 65, 85), ("flying", 2, -5, 10)),
        backdrops=(("foliage", 6), ("sky", 3), ("water", 1))),
    "moorhen": Look(
        back=(72, 64, 48), belly=(50, 52, 62), head=(40, 42, 50), wing=(74, 66, 50),
        primaries=(60, 55, 42), tail=(30, 30, 34), beak=(205, 30, 30), lower_beak=(205, 30, 30),
        beak_tip=(232, 204, 56), legs=(168, 190, 62), eye=(200, 30, 30), body_height=0.33,
        head_radius=0.16, neck=0.06, beak_length=0.17, beak_depth=0.08, tail_length=0.2,
        tail_droop=(-40, -20), leg_length=0.42, leg_width=0.035, toe_length=0.2, wing_tip=-0.45,
        poses=(("swimming", 13, 0, 8), ("standing", 7, 0, 15)),
        backdrops=(("water", 5), ("foliage", 3), ("sky", 2))),
    "sea_eagle": Look(
        back=(78, 56, 36), belly=(70, 50, 32), head=(150, 124, 88), wing=(86, 62, 40),
        primaries=(40, 30, 22), tail=WHITE, beak=(240, 200, 55), lower_beak=(232, 192, 52),
        legs=(236, 196, 62), eye=(236, 216, 120), body_height=0.27, head_radius=0.19, neck=0.07,
        beak_length=0.3, beak_depth=0.17, beak_curve=0.08, hooked=True, tail_length=0.35,
        tail_width=0.13, wedge_tail=True, leg_length=0.28, leg_width=0.045, toe_length=0.12,
        wing_span=1.6, wing_chord=0.6, wing_shape="fingered", wing_tip=-0.6,
        poses=(("flying", 11, -5, 10), ("perched", 9, 35, 60)),
        backdrops=(("sky", 5), ("water", 3), ("foliage", 2))),
    "gull": Look(
        back=(166, 174, 186), belly=(242, 242, 242), head=(245, 245, 245), wing=(166, 174, 186),
        primaries=(25, 25, 28), tail=(244, 244, 244), beak=(242, 205, 55), lower_beak=(238, 200, 52),
        legs=(236, 200, 92), eye=(230, 224, 200), body_height=0.26, head_radius=0.18,
        beak_length=0.22, beak_depth=0.075, beak_curve=0.03, tail_length=0.22, leg_length=0.32,
        wing_span=1.6, wing_chord=0.45, wing_shape="pointed", primary_cut=0.75, wing_tip=-0.8,
        poses=(("flying", 9, -5, 10), ("swimming", 5, 0, 6), ("standing", 6, 0, 12)),
        backdrops=(("sky", 5), ("water", 4), ("foliage", 1))),
}
