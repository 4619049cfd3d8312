"""crawl stage: collect the images of every class into data/raw/<class>/ with a manifest.

    python -m stages.crawl  ->  data/raw/<slug>/*.jpg, data/raw/manifest.csv

crawl.source picks where images come from: `synthetic` draws them (offline, deterministic).
The folder is built aside and swapped in whole, so a failed crawl never leaves a partial
data/raw for the split stage to read.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image

from stages.atomic import atomic_dir, write_csv
from stages.manifest import MANIFEST_FIELDS, RAW_DIR
from stages.params import Params, load_params
from stages.synthetic import synthesize


def manifest_row(root: Path, path: Path, data: bytes, label: str, keyword: str, source: str, **extra) -> dict:
    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size
    row = dict.fromkeys(MANIFEST_FIELDS, "")
    row.update(
        path=path.relative_to(root).as_posix(), **{"class": label}, keyword=keyword, source=source,
        sha256=hashlib.sha256(data).hexdigest(), width=width, height=height, bytes=len(data), **extra,
    )
    return row


def crawl_synthetic(params: Params, root: Path) -> list[dict]:
    cfg = params.crawl.synthetic
    keywords = {c.slug: c.keyword for c in params.classes}
    rows = []
    for slug, index, data in synthesize(params.slugs, cfg.total_images, params.seed, size_range=(cfg.min_size, cfg.max_size)):
        path = root / slug / f"{slug}_{index:03d}.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        rows.append(manifest_row(root, path, data, slug, keywords[slug], "synthetic"))
    return rows


def main() -> None:
    params = load_params()
    if params.crawl.source != "synthetic":
        raise NotImplementedError(f"crawl.source {params.crawl.source!r} is not available yet; use synthetic")
    with atomic_dir(RAW_DIR) as root:
        rows = crawl_synthetic(params, root)
        write_csv(root / "manifest.csv", rows, MANIFEST_FIELDS)
    print(f"crawl: {len(rows)} images from {params.crawl.source} into {RAW_DIR}")


if __name__ == "__main__":
    main()
