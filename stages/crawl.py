"""crawl stage: collect the images of every class into data/raw/<class>/ with a manifest.

    python -m stages.crawl  ->  data/raw/<slug>/<slug>_<nnn>.<ext>, data/raw/manifest.csv, data/raw/rejects.csv

crawl.source picks where images come from: `synthetic` draws them (offline, deterministic), `bing`
searches Bing for each class's keyword with icrawler (as the article did), `folder` reads your own
<class>/<images>. Every source goes through the same cleaning (stages/sources/cleaning.py); the stage prints
what it found, kept and rejected per class. The folder is built aside and swapped in whole, only
once the split is known to be possible, so a failed crawl never leaves a partial data/raw for the
split stage to read.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Iterator

from stages.errors import run_stage
from stages.sources import bing, folder
from stages.atomic import atomic_dir, write_csv
from stages.sources.cleaning import Cleaned, CrawlError, Found, clean
from stages.manifest import MANIFEST_FIELDS, RAW_DIR, REJECT_FIELDS
from stages.params import Params, load_params
from stages.split import SplitError, check_enough
from stages.sources.synthetic import synthesize

PARAMS = ("seed", "classes", "crawl", "split")  # the params this stage reads: dvc.yaml lists the same keys


def synthetic_images(params: Params) -> Iterator[Found]:
    cfg = params.crawl.synthetic
    for slug, _, data in synthesize(params.slugs, cfg.total_images, params.seed, size_range=(cfg.min_size, cfg.max_size)):
        yield Found(slug, "synthetic", data)


def find_images(params: Params) -> Iterable[Found]:
    if params.crawl.source == "bing":
        return bing.find_images(list(params.classes), params.crawl.bing)
    if params.crawl.source == "folder":
        return folder.find_images(params.crawl.folder.path, params.slugs)
    return synthetic_images(params)


def manifest_rows(cleaned: Cleaned, keywords: dict[str, str]) -> list[dict]:
    return [
        {
            "path": k.name, "class": k.found.label, "keyword": keywords[k.found.label], "source": k.found.source,
            "url": k.found.url, "page_url": k.found.page_url, "sha256": k.sha256, "width": k.width,
            "height": k.height, "bytes": len(k.data), "time": k.found.time,
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
    params = load_params(*PARAMS)
    cleaned = clean(find_images(params), params.crawl.min_side, params.crawl.near_duplicate_distance)
    print(f"crawl: images per class from source {params.crawl.source}")
    print(cleaned.summary(params.slugs))
    kept = Counter(k.found.label for k in cleaned.kept)
    try:
        check_enough({c: kept[c] for c in params.slugs}, params.split.train, params.split.test)
    except SplitError as e:
        raise CrawlError(f"too few images kept for the split, {RAW_DIR} is left as it was: {e}") from None
    keywords = {c.slug: c.keyword for c in params.classes}
    with atomic_dir(RAW_DIR) as root:
        for k in cleaned.kept:
            (root / k.name).parent.mkdir(exist_ok=True)
            (root / k.name).write_bytes(k.data)
        write_csv(root / "manifest.csv", manifest_rows(cleaned, keywords), MANIFEST_FIELDS)
        write_csv(root / "rejects.csv", reject_rows(cleaned, keywords), REJECT_FIELDS)
    print(f"crawl: {len(cleaned.kept)} images into {RAW_DIR}; its rejects.csv says why the other {len(cleaned.rejected)} were rejected")


if __name__ == "__main__":
    run_stage(main)
