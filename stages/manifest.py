"""The CSV files that pass data between stages: the raw image manifest and the split lists."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from stages.atomic import write_csv
from stages.errors import PipelineError

RAW_DIR = Path("data/raw")
SPLIT_DIR = Path("data/split")

# One row per kept image. `path` is relative to the manifest's folder.
MANIFEST_FIELDS = ["path", "class", "keyword", "source", "url", "page_url", "sha256", "width", "height", "bytes", "time"]
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


def read_manifest(raw_dir: Path = RAW_DIR) -> list[dict]:
    return read_csv(raw_dir / "manifest.csv", MANIFEST_FIELDS)


def write_split(path: Path, examples: list[Example]) -> None:
    write_csv(path, [{"path": e.path.as_posix(), "class": e.label} for e in examples], SPLIT_FIELDS)


def read_split(name: str, split_dir: Path = SPLIT_DIR) -> list[Example]:
    """`name` is train or test."""
    rows = read_csv(split_dir / f"{name}.csv", SPLIT_FIELDS)
    return [Example(Path(r["path"]), r["class"]) for r in rows]
