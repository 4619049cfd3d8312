"""The folder crawl source: your own images, one sub-folder per class slug.

    <crawl.folder.path>/<slug>/<any file name>   (sub-folders of a class folder are searched too)

Every file is handed to the cleaning as found: a stray text file is rejected with its reason like
any broken download, a file over crawl.max_image_mb by its size, unread. Hidden files (.DS_Store,
...) are skipped.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from stages.shared.params import Params
from stages.sources.cleaning import CrawlError, Found


def find_images(params: Params) -> Iterator[Found]:
    """The crawl's folder source: every file under crawl.folder.path/<class slug>/."""
    return read_folder(params.crawl.folder.path, params.slugs)


def read_folder(folder: Path | str, slugs: list[str]) -> Iterator[Found]:
    folder = Path(folder)
    if not folder.is_dir():
        raise CrawlError(f"crawl.folder.path: {folder} is not a folder (it should hold one folder of images per class)")
    present = sorted(p.name for p in folder.iterdir() if p.is_dir())
    missing = [s for s in slugs if s not in present]
    if missing:
        raise CrawlError(
            f"crawl.folder.path: {folder} has no folder for class {', '.join(missing)}; "
            f"it has: {', '.join(present) or 'no folders'}; expected one folder per class slug: {', '.join(slugs)}"
        )
    for slug in slugs:
        files = sorted(p for p in (folder / slug).rglob("*") if p.is_file() and not is_hidden(p, folder))
        for path in files:
            yield read_found(slug, path)


def read_found(slug: str, path: Path) -> Found:
    """The file as the cleaning's workers will read it: by its path, never whole into this process."""
    try:
        modified = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    except OSError as e:
        return Found(slug, path.as_posix(), None, f"cannot read the file: {e.strerror}")
    return Found(slug, path.as_posix(), None, file=path, time=modified)


def is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)
