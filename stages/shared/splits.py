"""The split lists every stage after the crawl reads: data/split/train.csv and test.csv, one row
per image (its path from the project root, its class)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stages.shared.atomic import read_csv, write_csv
from stages.shared.paths import SPLIT_DIR

SPLIT_FIELDS = ["path", "class"]


@dataclass(frozen=True)
class Example:
    path: Path  # relative to the project root
    label: str


def write_split(path: Path, examples: list[Example]) -> None:
    write_csv(path, [{"path": e.path.as_posix(), "class": e.label} for e in examples], SPLIT_FIELDS)


def read_split(name: str, split_dir: Path = SPLIT_DIR) -> list[Example]:
    """`name` is train or test."""
    rows = read_csv(split_dir / f"{name}.csv", SPLIT_FIELDS)
    return [Example(Path(r["path"]), r["class"]) for r in rows]
