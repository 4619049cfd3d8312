"""The source's entry points: one drawing, a deterministic set of JPEG files, and the crawl's find_images."""

from __future__ import annotations

import collections
import concurrent.futures
import io
import os
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image

from stages.shared.params import Params
from stages.sources.cleaning import CrawlError, Found, process_context
from stages.sources.synthetic.framing import place
from stages.sources.synthetic.marks import build_bird
from stages.sources.synthetic.render import camera, scene
from stages.sources.synthetic.species import LOOKS, SPECIES

_JPEG_QUALITY = (60, 95)


def draw_bird(species: str, rng: np.random.Generator, *,
              size_range: tuple[int, int] = (180, 480)) -> Image.Image:
    """One RGB picture of `species` (a slug from SPECIES); raises ValueError naming the slug if unknown."""
    if species not in LOOKS:
        raise ValueError(f"unknown species {species!r}; expected one of {', '.join(SPECIES)}")
    low, high = size_range
    size = (int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1)))
    bird = build_bird(species, rng)
    placement = place(bird, size, rng)
    return camera(scene(bird, placement, size, rng), rng)


def synthesize(species: list[str], total: int, seed: int, *,
               size_range: tuple[int, int] = (180, 480), workers: int = 1) -> Iterator[tuple[str, int, bytes]]:
    """Yield (slug, index_within_class, jpeg_bytes) for `total` images spread over `species` as evenly
    as possible (190 over 9 -> one class gets 22, the rest 21; the first classes in the list get the extra
    images). Same arguments -> same bytes, whatever `workers` (processes drawing at once; 0 = one per
    CPU core). Raises ValueError for an unknown slug or total < len(species).

    The arguments are checked at once; the images are drawn lazily, a few per worker ahead."""
    unknown = [slug for slug in species if slug not in LOOKS]
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
