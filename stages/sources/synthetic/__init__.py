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

The package holds one module per part of the drawing: geometry (shapes and colours), species (the
nine looks), bird (the body parts), marks (each species' field marks), framing, backdrops, props,
render (the scene and the camera) and source (draw_bird, synthesize and the crawl's find_images,
which this package exposes).
"""

from stages.sources.synthetic.source import draw_bird, find_images, synthesize
from stages.sources.synthetic.species import SPECIES

__all__ = ["SPECIES", "draw_bird", "find_images", "synthesize"]
