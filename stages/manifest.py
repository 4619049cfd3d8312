"""The CSV files of the pipeline: the crawl's bookkeeping (manifest, rejects) and the split lists.

data/raw holds only images, data/raw/<class>/<file>; what the crawl knows about them (where each
came from, when, its hash) and about the files it rejected lives apart in data/crawl, so that a
re-crawl that finds the same images at another time does not change what later stages read.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from stages.atomic import write_csv
from stages.errors import PipelineError

RAW_DIR = Path("data/raw")  # images only: <class>/<class>_<nnn>.<ext>
CRAWL_DIR = Path("data/crawl")  # manifest.csv and rejects.csv
SPLIT_DIR = Path("data/split")

# One row per kept image. `path` is relative to data/raw; `warnings`: what the decoder warned about.
MANIFEST_FIELDS = [
    "path", "class", "keyword", "source", "url", "page_url", "sha256", "width", "height", "bytes", "time", "warnings",
]
# One row per rejected image: where it came from and why (stages/sources/cleaning.py lists the reasons).
REJECT_FIELDS = ["class", "keyword", "source", "url", "page_url", "time", "reason", "detail"]
SPLIT_FIELDS = ["path", "class"]


@dataclass(frozen=True)
class Example:
    path: Path  # relative to the project root
    label: str


def read_csv(path: Path, required: list[str]) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise PipelineError(f"{path}: missing column(s) {', '.join(missing)}")
            return list(reader)
    except FileNotFoundError:
        raise PipelineError(f"{path} not found: run the stage that writes it (dvc repro)") from None


def read_manifest(crawl_dir: Path = CRAWL_DIR) -> list[dict]:
    """The crawl's manifest, one row per image under data/raw (for people and tests: no stage reads it)."""
    return read_csv(crawl_dir / "manifest.csv", MANIFEST_FIELDS)


def read_rejects(crawl_dir: Path = CRAWL_DIR) -> list[dict]:
    return read_csv(crawl_dir / "rejects.csv", REJECT_FIELDS)


def write_split(path: Path, examples: list[Example]) -> None:
    write_csv(path, [{"path": e.path.as_posix(), "class": e.label} for e in examples], SPLIT_FIELDS)


def read_split(name: str, split_dir: Path = SPLIT_DIR) -> list[Example]:
    """`name` is train or test."""
    rows = read_csv(split_dir / f"{name}.csv", SPLIT_FIELDS)
    return [Example(Path(r["path"]), r["class"]) for r in rows]
