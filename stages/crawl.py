"""crawl stage: collect the images of every class into data/raw/<class>/, and say where each came from.

    python -m stages.crawl  ->  data/raw/<slug>/<slug>_<nnn>.<ext>   (images only)
                                data/crawl/manifest.csv, data/crawl/rejects.csv

crawl.source picks where images come from: `synthetic` draws them (offline, deterministic), `bing`
searches Bing for each class's keyword with icrawler (as the article did), `folder` reads your own
<class>/<images>. Each source is a package of stages/sources with a find_images(params), imported by
name, so the stage's code is only the chosen source's (dvc.yaml depends on that one folder). Every
source goes through the same cleaning (stages/sources/cleaning.py); the stage prints what it found,
kept and rejected per class. Both folders are built aside and swapped in whole at the end, and DVC
keeps them while the stage runs (persist), so a crawl that fails leaves the previous ones as they were.
Whether the data can give the split is the split stage's to check.
"""

from __future__ import annotations

import importlib

from stages.shared.atomic import atomic_dir, write_csv
from stages.shared.errors import run_stage
from stages.shared.paths import CRAWL_DIR, RAW_DIR
from stages.sources.records import MANIFEST_FIELDS, REJECT_FIELDS
from stages.shared.params import Params, load_params
from stages.sources.cleaning import Cleaned, Limits, clean

# the params that decide this stage's output, which dvc.yaml lists: the chosen source's own section only
PARAMS = (
    "classes", "crawl.source", "crawl.{crawl.source}", "crawl.min_side", "crawl.near_duplicate_distance",
    "crawl.decode_timeout_s", "crawl.decode_memory_mb", "crawl.max_image_mb",
)
RUN_SETTINGS = ("crawl.workers",)  # read too, but no dep: any worker count gives the same bytes


def limits(params: Params) -> Limits:
    c = params.crawl
    return Limits(c.workers, c.decode_timeout_s, c.decode_memory_mb, max_bytes=int(c.max_image_mb * 2**20))


def manifest_rows(cleaned: Cleaned, keywords: dict[str, str]) -> list[dict]:
    return [
        {
            "path": k.name, "class": k.found.label, "keyword": keywords[k.found.label], "source": k.found.source,
            "url": k.found.url, "page_url": k.found.page_url, "sha256": k.sha256, "width": k.width,
            "height": k.height, "bytes": k.size, "time": k.found.time, "warnings": k.warnings,
        }
        for k in cleaned.kept
    ]


def reject_rows(cleaned: Cleaned, keywords: dict[str, str]) -> list[dict]:
    return [
        {
            "class": r.found.label, "keyword": keywords[r.found.label], "source": r.found.source, "url": r.found.url,
            "page_url": r.found.page_url, "time": r.found.time, "reason": r.reason, "detail": r.detail,
        }
        for r in cleaned.rejected
    ]


def main() -> None:
    params = load_params(*PARAMS, *RUN_SETTINGS)
    source = importlib.import_module(f"stages.sources.{params.crawl.source}")
    keywords = {c.slug: c.keyword for c in params.classes}
    with atomic_dir(CRAWL_DIR) as books, atomic_dir(RAW_DIR) as images:
        cleaned = clean(
            source.find_images(params), images, params.crawl.min_side, params.crawl.near_duplicate_distance, limits(params)
        )
        write_csv(books / "manifest.csv", manifest_rows(cleaned, keywords), MANIFEST_FIELDS)
        write_csv(books / "rejects.csv", reject_rows(cleaned, keywords), REJECT_FIELDS)
    print(f"crawl: images per class from source {params.crawl.source}")
    print(cleaned.summary(params.slugs))
    warned = sum(bool(k.warnings) for k in cleaned.kept)
    print(
        f"crawl: {len(cleaned.kept)} images into {RAW_DIR}; {CRAWL_DIR}/manifest.csv says where each came from"
        + (f" ({warned} with decoder warnings)" if warned else "")
        + f", {CRAWL_DIR}/rejects.csv why the other {len(cleaned.rejected)} were rejected"
    )
    print(f"crawl: duplicate search {cleaned.dedupe_s:.3f} s")


if __name__ == "__main__":
    run_stage(main)
