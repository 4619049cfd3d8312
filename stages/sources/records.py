"""The crawl's bookkeeping in data/crawl: where each kept image came from, and what was rejected.

data/raw holds only images, data/raw/<class>/<file>; what the crawl knows about them (where each
came from, when, its hash) and about the files it rejected lives apart, so that a re-crawl that
finds the same images at another time does not change what later stages read. No stage reads
these files: they are for people (and tests).
"""

from __future__ import annotations

from pathlib import Path

from stages.shared.atomic import read_csv
from stages.shared.paths import CRAWL_DIR

# One row per kept image. `path` is relative to data/raw; `warnings`: what the decoder warned about.
MANIFEST_FIELDS = [
    "path", "class", "keyword", "source", "url", "page_url", "sha256", "width", "height", "bytes", "time", "warnings",
]
# One row per rejected image: where it came from and why (stages/sources/cleaning.py lists the reasons).
REJECT_FIELDS = ["class", "keyword", "source", "url", "page_url", "time", "reason", "detail"]


def read_manifest(crawl_dir: Path = CRAWL_DIR) -> list[dict]:
    return read_csv(crawl_dir / "manifest.csv", MANIFEST_FIELDS)


def read_rejects(crawl_dir: Path = CRAWL_DIR) -> list[dict]:
    return read_csv(crawl_dir / "rejects.csv", REJECT_FIELDS)
