"""Cleaning, the same for every crawl source: only whole, upright RGB pictures of one class get through.

Each image a source found is opened, verified and fully decoded: Pillow's verify() passes a
truncated JPEG, only load() fails on it. Odd but valid images (CMYK, palette, alpha, 16-bit,
EXIF-rotated, grayscale) become upright RGB. An image that already is upright RGB in JPEG, PNG or
WebP keeps its bytes, so nothing is re-encoded without need and a rerun gives the same files.
Then duplicates go: exact ones (same sha256) and near ones (perceptual hashes a few bits apart,
e.g. the same photo resized or recompressed). One copy stays within a class; an image found under
two classes is dropped from both, since it cannot be a good example of either.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from stages.errors import PipelineError

# Every reason an image is rejected, in the order the pipeline meets them.
REASONS = (
    "fetch_failed",  # the download (or the file read) failed
    "not_an_image",  # no image format recognised: an HTML page saved as .jpg, a text file, ...
    "broken",  # an image format, but truncated or corrupt
    "decompression_bomb",  # more pixels than Pillow's safety limit (Image.MAX_IMAGE_PIXELS)
    "too_small",  # shorter side below crawl.min_side
    "exact_duplicate",  # the same bytes as an image kept in the same class
    "near_duplicate",  # the same picture (perceptual hash) as an image kept in the same class
    "in_several_classes",  # the same picture found under two or more classes: dropped from all
)

# Formats kept byte for byte when already upright RGB; anything else is re-encoded, lossy sources as
# JPEG, lossless ones as PNG, so the file's extension always says what it holds.
KEEP_AS_IS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
LOSSY = {"JPEG", "WEBP", "MPO"}
JPEG_QUALITY = 95
BACKGROUND = (255, 255, 255)  # what transparent pixels become


class CrawlError(PipelineError):
    """A crawl that cannot give usable data (no network, a missing folder, too few images)."""


@dataclass(frozen=True)
class Found:
    """One image a source found, before cleaning, with where it came from."""

    label: str  # class slug
    source: str  # synthetic | bing | the original file's path (folder source)
    data: bytes | None  # None when it could not be fetched; `error` says why
    error: str = ""
    url: str = ""  # the image's URL (bing)
    page_url: str = ""  # the page that shows it (bing)
    time: str = ""  # when it was fetched (bing) or last modified (folder), UTC ISO 8601

    @property
    def origin(self) -> str:
        return self.url or self.source


@dataclass(frozen=True)
class Kept:
    found: Found  # without its data: `data` below is what gets saved
    data: bytes
    ext: str
    width: int
    height: int
    sha256: str
    phash: int
    name: str = ""  # <class>/<class>_<nnn><ext> under data/raw, set once duplicates are gone


@dataclass(frozen=True)
class Rejected:
    found: Found  # without its data
    reason: str  # one of REASONS
    detail: str


@dataclass(frozen=True)
class Cleaned:
    kept: list[Kept]
    rejected: list[Rejected]
    found: Counter  # class -> images found

    def summary(self, classes: list[str]) -> str:
        """A table: per class, images found, kept and rejected for each reason that occurred."""
        reasons = [r for r in REASONS if any(x.reason == r for x in self.rejected)]
        kept = Counter(k.found.label for k in self.kept)
        rejected = Counter((x.found.label, x.reason) for x in self.rejected)
        header = ["class", "found", "kept", *reasons]
        rows = [[c, self.found[c], kept[c], *(rejected[c, r] for r in reasons)] for c in classes]
        totals = (sum(rejected[c, r] for c in classes) for r in reasons)
        rows.append(["total", sum(self.found.values()), len(self.kept), *totals])
        widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
            for row in [header, *rows]
        ]
        return "\n".join(lines)


def clean(found: Iterable[Found], min_side: int, near_duplicate_distance: int) -> Cleaned:
    """Examine every image as it arrives (rejected bytes are freed at once), then drop duplicates."""
    counts: Counter = Counter()
    kept, rejected = [], []
    for f in found:
        counts[f.label] += 1
        outcome = examine(f, min_side)
        (kept if isinstance(outcome, Kept) else rejected).append(outcome)
    unique, duplicates = deduplicate(kept, near_duplicate_distance)
    class_order = {label: i for i, label in enumerate(counts)}  # the order the source went through them
    return Cleaned(unique, sorted(rejected + duplicates, key=lambda r: class_order[r.found.label]), counts)


def examine(found: Found, min_side: int) -> Kept | Rejected:
    """Decode `found` whole and turn it into upright RGB, or say why it cannot be used."""
    bare = dataclasses.replace(found, data=None)
    if found.data is None:
        return Rejected(bare, "fetch_failed", found.error)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its pixel limit and twice that; both are bombs here.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(found.data)) as img:
                img.verify()  # structure and checksums; it does not decode the pixels
            with Image.open(io.BytesIO(found.data)) as img:
                img.load()  # the full decode: fails on a truncated file
                data, ext, picture = upright_rgb(img, found.data)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return Rejected(bare, "decompression_bomb", str(e))
    except UnidentifiedImageError:
        return Rejected(bare, "not_an_image", describe_bytes(found.data))
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        return Rejected(bare, "broken", str(e) or type(e).__name__)
    width, height = picture.size
    if min(width, height) < min_side:
        return Rejected(bare, "too_small", f"{width}x{height}, shorter side under {min_side}")
    return Kept(bare, data, ext, width, height, hashlib.sha256(data).hexdigest(), perceptual_hash(picture))


def upright_rgb(img: Image.Image, data: bytes) -> tuple[bytes, str, Image.Image]:
    """(file bytes, extension, decoded RGB picture): the original bytes when they already are upright
    RGB in a kept format, otherwise the picture turned upright, flattened onto white and re-encoded."""
    fmt = img.format
    rotated = img.getexif().get(ExifTags.Base.Orientation, 1) != 1
    if fmt in KEEP_AS_IS and img.mode == "RGB" and not rotated and not img.has_transparency_data:
        if not getattr(img, "is_animated", False):
            return data, KEEP_AS_IS[fmt], img
    picture = to_rgb(ImageOps.exif_transpose(img))
    out = io.BytesIO()
    if fmt in LOSSY:
        picture.save(out, "JPEG", quality=JPEG_QUALITY)
        return out.getvalue(), ".jpg", picture
    picture.save(out, "PNG")
    return out.getvalue(), ".png", picture


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode.startswith("I") or img.mode == "F":
        # 16-bit (and deeper) grey: Pillow's convert() clips at 255, so scale 0..65535 onto 0..255.
        pixels = np.asarray(img, dtype=np.float64) / 257
        img = Image.fromarray(np.clip(pixels.round(), 0, 255).astype(np.uint8), "L")
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, BACKGROUND + (255,)), rgba).convert("RGB")
    return img.convert("RGB")


# DCT-II basis for 32 samples: row k holds cos(pi * k * (2n + 1) / 64).
_DCT = np.cos(np.pi * np.outer(np.arange(32), 2 * np.arange(32) + 1) / 64)


def perceptual_hash(picture: Image.Image) -> int:
    """64-bit pHash: which of the 8x8 lowest spatial frequencies of a 32x32 grey thumbnail lie above
    their median. Resizing, recompression and small edits move few bits; different pictures ~32."""
    grey = np.asarray(picture.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = (_DCT @ grey @ _DCT.T)[:8, :8]
    return int.from_bytes(np.packbits(low > np.median(low)).tobytes(), "big")


def deduplicate(kept: list[Kept], max_distance: int) -> tuple[list[Kept], list[Rejected]]:
    """Group images that are one picture (same bytes, or hashes at most `max_distance` bits apart).
    A group within one class keeps its first image; a group spanning classes loses every image.
    The survivors are named <class>/<class>_<nnn><ext>, numbered in the order they were found."""
    parent = list(range(len(kept)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(kept):
        for j in range(i):
            if a.sha256 == kept[j].sha256 or (a.phash ^ kept[j].phash).bit_count() <= max_distance:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(kept)):
        groups[root(i)].append(i)

    one_class = [g for g in groups.values() if len({kept[i].found.label for i in g}) == 1]
    numbered: Counter = Counter()
    named = {}
    for i in sorted(g[0] for g in one_class):
        label = kept[i].found.label
        named[i] = dataclasses.replace(kept[i], name=f"{label}/{label}_{numbered[label]:03d}{kept[i].ext}")
        numbered[label] += 1

    rejected = []
    for group in groups.values():
        members = [kept[i] for i in group]
        if group not in one_class:
            for k in members:
                others = [f"{o.found.label}: {o.found.origin}" for o in members if o.found.label != k.found.label]
                rejected.append(Rejected(k.found, "in_several_classes", "also under " + ", ".join(others)))
            continue
        first = named[group[0]]
        for k in members[1:]:
            if k.sha256 == first.sha256:
                rejected.append(Rejected(k.found, "exact_duplicate", f"same bytes as {first.name}"))
            else:
                bits = (k.phash ^ first.phash).bit_count()
                rejected.append(Rejected(k.found, "near_duplicate", f"{bits} bits from {first.name}"))
    return list(named.values()), rejected


def describe_bytes(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "an HTML page, not an image"
    if not data:
        return "an empty file"
    return f"no image format recognised (starts with {data[:8]!r})"
