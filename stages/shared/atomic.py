"""Atomic writes: a reader sees the old file or the complete new one, never a half-written one.
And the CSV reader every stage shares, whose errors name the file and what is wrong with it.

Everything is written beside its destination (same file system) and renamed into place with
os.replace, which is atomic on POSIX. A crash leaves at most a `*.tmp` sibling behind.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from stages.shared.errors import PipelineError


@contextlib.contextmanager
def atomic_path(dest: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces `dest`, on error it is removed."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            _remove(tmp)


@contextlib.contextmanager
def atomic_dir(dest: Path | str) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it takes the place of `dest` as a whole."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
    _remove(tmp)
    tmp.mkdir()
    try:
        yield tmp
        if dest.exists():
            os.replace(dest, old)
        os.replace(tmp, dest)
    finally:
        _remove(tmp)
        _remove(old)


def write_bytes(dest: Path | str, data: bytes) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)


def write_json(dest: Path | str, obj) -> None:
    write_bytes(dest, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def write_csv(dest: Path | str, rows: list[dict], fieldnames: list[str]) -> None:
    with atomic_path(dest) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


def write_text(dest: Path | str, text: str) -> None:
    write_bytes(dest, text.encode("utf-8"))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


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
