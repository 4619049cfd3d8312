"""The embedded bird-photo generator: deterministic, evenly spread, valid JPEGs, class-independent seeds."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from stages.sources.synthetic import SPECIES, draw_bird, synthesize

TINY = (48, 96)  # small images keep these tests fast; the drawing code is the same at any size


def generate(species: list[str], total: int, seed: int = 0, size_range: tuple[int, int] = TINY):
    return list(synthesize(species, total, seed, size_range=size_range))


def test_species_are_the_nine_in_article_order():
    assert SPECIES == ("myna", "reed_warbler", "sunbird", "striated_heron", "crow",
                       "woodpecker", "moorhen", "sea_eagle", "gull")


def test_same_arguments_give_identical_bytes_and_another_seed_differs():
    first = generate(["crow", "gull", "sunbird"], 6, seed=3)
    assert generate(["crow", "gull", "sunbird"], 6, seed=3) == first
    other = generate(["crow", "gull", "sunbird"], 6, seed=4)
    assert [item[:2] for item in other] == [item[:2] for item in first]
    assert all(a[2] != b[2] for a, b in zip(first, other))


def test_190_images_over_9_species_gives_the_first_class_the_extra_one():
    counts = Counter(slug for slug, _, _ in generate(list(SPECIES), 190, size_range=(16, 24)))
    assert counts == {slug: 22 if slug == SPECIES[0] else 21 for slug in SPECIES}


def test_subset_in_any_order_is_spread_evenly_with_indices_per_class():
    items = generate(["gull", "myna", "crow"], 8)
    assert [(slug, index) for slug, index, _ in items] == [
        ("gull", 0), ("gull", 1), ("gull", 2), ("myna", 0), ("myna", 1), ("myna", 2), ("crow", 0), ("crow", 1)]


def test_outputs_are_rgb_jpegs_inside_the_size_range_with_varied_shapes():
    aspect_ratios = []
    for _, _, data in generate(list(SPECIES), 27):
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert "exif" not in image.info
            assert TINY[0] <= image.width <= TINY[1] and TINY[0] <= image.height <= TINY[1]
            image.load()
            aspect_ratios.append(image.width / image.height)
    assert min(aspect_ratios) < 1 < max(aspect_ratios)  # portrait and landscape


def test_default_sizes_stay_between_180_and_480():
    for _, _, data in synthesize(["woodpecker", "moorhen"], 4, 1):
        with Image.open(io.BytesIO(data)) as image:
            assert 180 <= min(image.size) and max(image.size) <= 480


def test_every_species_can_be_drawn():
    for slug in SPECIES:
        image = draw_bird(slug, np.random.default_rng(0), size_range=TINY)
        assert image.mode == "RGB"


def test_unknown_species_is_refused_by_name():
    with pytest.raises(ValueError, match="penguin"):
        synthesize(["crow", "penguin"], 4, 0)
    with pytest.raises(ValueError, match="penguin"):
        draw_bird("penguin", np.random.default_rng(0))


def test_fewer_images_than_species_is_refused():
    with pytest.raises(ValueError, match="at least one image per species"):
        synthesize(["crow", "gull", "myna"], 2, 0)


def test_a_class_does_not_change_when_another_class_is_added():
    alone = generate(["woodpecker"], 2, seed=5)
    among_others = generate(["gull", "woodpecker", "crow"], 6, seed=5)
    assert [item for item in among_others if item[0] == "woodpecker"] == alone


def test_two_workers_draw_the_same_bytes_in_the_same_order():
    species = ["crow", "gull", "sunbird", "myna"]
    assert list(synthesize(species, 10, 3, size_range=TINY, workers=2)) == generate(species, 10, seed=3)


def test_each_species_is_its_own_bird():
    # the same random numbers draw nine different pictures: the species, not the seed, decides the bird
    drawings = [np.asarray(draw_bird(slug, np.random.default_rng(0), size_range=TINY)) for slug in SPECIES]
    for i in range(len(drawings)):
        for j in range(i):
            assert drawings[i].shape != drawings[j].shape or not np.array_equal(drawings[i], drawings[j]), (i, j)
