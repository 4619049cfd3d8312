"""Cleaning, the same for every crawl source: only whole, upright RGB pictures of one class get through.

Each image a source found is opened, verified and fully decoded: Pillow's verify() passes a
truncated JPEG, only load() fails on it. Odd but valid images (CMYK, palette, alpha, 16-bit,
EXIF-rotated, grayscale) become upright RGB. An image that already is upright RGB in JPEG, PNG or
WebP keeps its bytes, so nothing is re-encoded without need and a rerun gives the same files.
Then duplicates go: exact ones (same sha256) and near ones (perceptual hashes a few bits apart,
e.g. the same photo resized or recompressed). One copy stays within a class; an image found under
two classes is dropped from both, since it cannot be a good example of either.

The bytes are untrusted (any web server, any folder), and a decoder can raise anything, hang,
crash its process, ask for gigabytes or write to the terminal. So decoding runs in worker
processes (stages/sources/sandbox.py), each image under a time limit and each worker under a
memory cap, with what a decoder writes to stderr (libtiff does) filed with the image: whatever a
decoder does, that one file is rejected with its reason and the crawl goes on. No image larger
than crawl.max_image_mb is read at all. A worker is handed a file's path, never its bytes, and
writes the kept image to the destination folder itself (only hashes and sizes come back); the
images get their final names once duplicates are known; the names follow the order the source
found the images in, so the output is the same whatever the number of workers and the order in
which they finish.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import multiprocessing
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from tabulate import tabulate

from stages.shared.errors import PipelineError
from stages.sources.sandbox import Died, TimedOut, run_isolated

# Every reason an image is rejected, in the order the pipeline meets them.
REASONS = (
    "fetch_failed",  # the download (or the file read) failed
    "refused_address",  # the image URL, or a redirect, points at a private, loopback or link-local address (bing)
    "download_timed_out",  # the whole download took longer than crawl.bing.download_timeout_s (bing)
    "too_large",  # more bytes than crawl.max_image_mb: announced, sent, or the file's size; never read whole
    "not_an_image",  # no image format recognised: an HTML page saved as .jpg, a text file, ...
    "broken",  # an image format, but truncated or corrupt
    "decoder_failed",  # the decoder raised an error of another kind, or its process died
    "timed_out",  # decoding took longer than crawl.decode_timeout_s
    "over_memory_cap",  # decoding needed more memory than crawl.decode_memory_mb
    "decompression_bomb",  # more pixels than Pillow's safety limit (Image.MAX_IMAGE_PIXELS)
    "too_small",  # shorter side below crawl.min_side
    "exact_duplicate",  # the same bytes as an image kept in the same class
    "near_duplicate",  # the same picture (perceptual hash) as an image kept in the same class
    "in_several_classes",  # the same picture found under two or more classes: dropped from all
)

# Tests only: a Python file that each decoding process runs at start, to register decoders that
# misbehave on purpose (tests/helpers/nasty_decoders.py). Never set it for a real crawl: DVC does not see it.
PLUGIN_ENV = "BIRDS_CRAWL_TEST_DECODERS"
STDERR_KEPT = 500  # characters of what a decoder wrote to stderr that are filed with its image

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
    data: bytes | None  # the image's bytes, or None: in `file`, or not fetched (`reason` and `error` say why)
    error: str = ""
    reason: str = "fetch_failed"  # one of REASONS, for an image neither in data nor in file
    file: Path | None = None  # where the image is when a source does not hold its bytes (folder)
    url: str = ""  # the image's URL (bing)
    page_url: str = ""  # the page that shows it (bing)
    time: str = ""  # when it was fetched (bing) or last modified (folder), UTC ISO 8601

    @property
    def origin(self) -> str:
        return self.url or self.source


@dataclass(frozen=True)
class Kept:
    found: Found  # without its data: the saved file is <dest>/<name>
    ext: str
    width: int
    height: int
    size: int  # bytes of the saved file
    sha256: str
    phash: int
    warnings: str = ""  # what the decoder warned about (corrupt EXIF, odd TIFF tags, ...)
    seq: int = 0  # the image's place in the order the source found them
    name: str = ""  # <class>/<class>_<nnn><ext> under the destination, set once duplicates are gone


@dataclass(frozen=True)
class Limits:
    """What one image may cost to decode, and how many decode at once."""

    workers: int = 1  # processes; 0 = one per CPU core
    timeout_s: float = 30.0
    memory_mb: int = 2048
    max_bytes: int = 50 * 2**20  # an image's file

    @property
    def processes(self) -> int:
        return self.workers or os.cpu_count() or 1


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
    dedupe_s: float = 0.0  # time of the duplicate search

    def summary(self, classes: list[str]) -> str:
        """A table: per class, images found, kept and rejected for each reason that occurred."""
        reasons = [r for r in REASONS if any(x.reason == r for x in self.rejected)]
        kept = Counter(k.found.label for k in self.kept)
        rejected = Counter((x.found.label, x.reason) for x in self.rejected)
        header = ["class", "found", "kept", *reasons]
        rows = [[c, self.found[c], kept[c], *(rejected[c, r] for r in reasons)] for c in classes]
        totals = (sum(rejected[c, r] for c in classes) for r in reasons)
        rows.append(["total", sum(self.found.values()), len(self.kept), *totals])
        return tabulate(rows, header, tablefmt="plain", colalign=("left", *["right"] * (len(header) - 1)))


def clean(found: Iterable[Found], dest: Path, min_side: int, near_duplicate_distance: int, limits: Limits = Limits()) -> Cleaned:
    """Examine every image in worker processes, which write the kept ones under `dest` as they go,
    then drop duplicates and name the rest dest/<class>/<class>_<nnn><ext> in the order found."""
    incoming = Path(dest) / ".incoming"  # kept images under their sequence number, until named
    incoming.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    kept, rejected = [], []
    for seq, outcome in decode_all(counted(found, counts), min_side, limits, incoming):
        if isinstance(outcome, Rejected):
            rejected.append((seq, outcome))
        else:
            kept.append(dataclasses.replace(outcome, seq=seq))
    kept.sort(key=lambda k: k.seq)
    rejected = [r for _, r in sorted(rejected, key=lambda x: x[0])]
    start = time.perf_counter()
    unique, duplicates = deduplicate(kept, near_duplicate_distance)
    dedupe_s = time.perf_counter() - start
    for k in unique:
        (dest / k.name).parent.mkdir(exist_ok=True)
        os.replace(incoming / f"{k.seq}{k.ext}", dest / k.name)
    shutil.rmtree(incoming)  # the duplicates' files
    class_order = {label: i for i, label in enumerate(counts)}  # the order the source went through them
    return Cleaned(unique, sorted(rejected + duplicates, key=lambda r: class_order[r.found.label]), counts, dedupe_s)


def counted(found: Iterable[Found], counts: Counter) -> Iterator[Found]:
    for f in found:
        counts[f.label] += 1
        yield f


def decode_all(found: Iterable[Found], min_side: int, limits: Limits, incoming: Path) -> Iterator[tuple[int, Kept | Rejected]]:
    """(sequence number, outcome) of every image, in the order they are decided; a kept image is
    written to incoming/<seq><ext> by its worker. Images are taken from the source only as workers
    become free, so memory does not grow with their number."""
    bare: dict[int, Found] = {}  # the images in the workers, without their bytes
    decided: list[tuple[int, Rejected]] = []  # images no worker needs to see

    def tasks() -> Iterator[tuple[int, tuple]]:
        for seq, f in enumerate(found):
            bare[seq] = dataclasses.replace(f, data=None)
            file = staged(f, incoming / f"{seq}.source", limits.max_bytes)
            if isinstance(file, Rejected):
                decided.append((seq, dataclasses.replace(file, found=bare.pop(seq))))
            else:
                yield seq, (bare[seq], str(file), str(incoming / str(seq)), min_side, limits.max_bytes)

    plugin = os.environ.get(PLUGIN_ENV, "")
    results = run_isolated(
        examine_untrusted, tasks(), limits.processes, limits.timeout_s, process_context(),
        start_worker, (limits.memory_mb, plugin),
    )
    for seq, outcome in results:
        yield from decided
        decided.clear()
        (incoming / f"{seq}.source").unlink(missing_ok=True)
        yield seq, outcome_of(outcome, bare.pop(seq), limits)
    yield from decided


def staged(f: Found, path: Path, max_bytes: int) -> Path | Rejected:
    """Where a worker reads `f` from: its own file, or its bytes written to `path`; or why no worker
    needs to see it (not fetched, or too large: a file's size is read, not its bytes)."""
    if f.data is not None:
        if len(f.data) > max_bytes:
            return too_large(f, len(f.data), max_bytes)
        path.write_bytes(f.data)
        return path
    if f.file is None:
        return Rejected(f, f.reason, f.error)
    try:
        size = os.stat(f.file).st_size
    except OSError as e:
        return Rejected(f, "fetch_failed", f"cannot read the file: {e.strerror}")
    return too_large(f, size, max_bytes) if size > max_bytes else Path(f.file)


def too_large(f: Found, size: int, max_bytes: int) -> Rejected:
    return Rejected(f, "too_large", f"{size:,} bytes, over the cap of {max_bytes:,} (crawl.max_image_mb)")


def process_context() -> multiprocessing.context.BaseContext:
    """How worker processes start: forked from a clean server process that has imported the
    cleaning once (fast starts), never forked from the crawl itself, which may run threads (bing's)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["stages.sources.cleaning"])
    return context


def outcome_of(outcome: Kept | Rejected | TimedOut | Died, bare: Found, limits: Limits) -> Kept | Rejected:
    """The worker's verdict, or the reason its process gave none."""
    if isinstance(outcome, TimedOut):
        return Rejected(bare, "timed_out", f"decoding took over {limits.timeout_s:g} s; its process was stopped")
    if isinstance(outcome, Died):
        code = outcome.exitcode
        how = f"signal {signal.Signals(-code).name}" if code and code < 0 and -code in signal.valid_signals() else f"exit status {code}"
        return Rejected(bare, "decoder_failed", f"the decoding process died ({how})")
    return outcome


def start_worker(memory_mb: int, plugin: str) -> None:
    """In each worker: send stderr to a file of its own (read by decoder_stderr), cap the memory it
    may add to what it holds now, then load the tests' decoders."""
    global captured_stderr
    sys.stderr.flush()
    with tempfile.TemporaryFile() as file:
        os.dup2(file.fileno(), 2)  # the file lives on as fd 2
    captured_stderr = True
    if hasattr(resource, "RLIMIT_AS") and os.path.exists("/proc/self/statm"):  # Linux; elsewhere no cap
        with open("/proc/self/statm") as f:
            mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = mapped + memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    if plugin:
        exec(compile(Path(plugin).read_text(encoding="utf-8"), plugin, "exec"), {"__name__": "test_decoders"})


captured_stderr = False  # True in a worker, whose stderr start_worker sent to a file


def decoder_stderr() -> str:
    """What Python or C code wrote to this worker's stderr since the last call, on one line."""
    if not captured_stderr:
        return ""  # examine_untrusted called in another process (the tests): its stderr is not ours to read
    sys.stderr.flush()
    said = os.pread(2, 4 * STDERR_KEPT, 0).decode("utf-8", "replace")
    os.ftruncate(2, 0)
    os.lseek(2, 0, os.SEEK_SET)
    return " ".join(said.split())[:STDERR_KEPT]


class Unreadable(Exception):
    def __init__(self, verdict: Rejected):
        self.verdict = verdict


def read_capped(bare: Found, path: str, max_bytes: int) -> bytes:
    """The file's bytes, never more than max_bytes of them read (a file may grow after its size was checked)."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise Unreadable(Rejected(bare, "fetch_failed", f"cannot read the file: {e.strerror}")) from None
    if len(data) > max_bytes:
        raise Unreadable(too_large(bare, os.path.getsize(path), max_bytes))
    return data


def examine_untrusted(bare: Found, source: str, out_stem: str, min_side: int, max_bytes: int) -> Kept | Rejected:
    """examine() on the file at `source`, turning any exception into a verdict and writing a kept
    image to <out_stem><ext>: runs in a worker, on bytes from anywhere."""
    decoder_stderr()  # forget what came before this image
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Pillow only warns between its pixel limit and twice that; both are bombs here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            outcome = examine(dataclasses.replace(bare, data=read_capped(bare, source, max_bytes)), min_side)
        except Unreadable as e:
            outcome = e.verdict
        except MemoryError:
            outcome = Rejected(bare, "over_memory_cap", "decoding needed more memory than crawl.decode_memory_mb allows")
        except Exception as e:  # a decoder on hostile bytes can raise anything: IndexError, NotImplementedError, ...
            outcome = Rejected(bare, "decoder_failed", f"{type(e).__name__}: {e}")
    said = [f"{w.category.__name__}: {w.message}" for w in caught]
    if printed := decoder_stderr():
        said.append(f"stderr: {printed}")
    said = "; ".join(dict.fromkeys(said))
    if isinstance(outcome, Rejected):
        return dataclasses.replace(outcome, detail=f"{outcome.detail} (decoder warnings: {said})") if said else outcome
    kept, data = outcome
    Path(f"{out_stem}{kept.ext}").write_bytes(data)
    return dataclasses.replace(kept, warnings=said)


def examine(found: Found, min_side: int) -> tuple[Kept, bytes] | Rejected:
    """Decode `found` whole and turn it into upright RGB (with the bytes to save), or say why it
    cannot be used. Exceptions other than the documented ones of a bad file propagate."""
    bare = dataclasses.replace(found, data=None)
    if found.data is None:
        return Rejected(bare, found.reason, found.error)
    try:
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
    return Kept(bare, ext, width, height, len(data), hashlib.sha256(data).hexdigest(), perceptual_hash(picture)), data


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

    first_with_bytes: dict[str, int] = {}
    for i, k in enumerate(kept):
        j = first_with_bytes.setdefault(k.sha256, i)
        parent[root(i)] = root(j)
    for j, i in near_pairs([k.phash for k in kept], max_distance):
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


def near_pairs(hashes: list[int], max_distance: int) -> Iterator[tuple[int, int]]:
    """Every pair (j, i), j < i, of 64-bit hashes at most `max_distance` bits apart, by multi-index
    hashing: cut the 64 bits into max_distance + 1 bands; two hashes that differ in at most
    max_distance bits agree on at least one whole band (pigeonhole), so each hash is compared
    only with those sharing a band with it instead of with all the others."""
    bands = max_distance + 1
    cuts = [64 * b // bands for b in range(bands + 1)]
    masks = [(cuts[b], (1 << (cuts[b + 1] - cuts[b])) - 1) for b in range(bands)]
    tables: list[dict[int, list[int]]] = [{} for _ in range(bands)]
    for i, h in enumerate(hashes):
        candidates: set[int] = set()
        for (shift, mask), table in zip(masks, tables):
            same_band = table.setdefault((h >> shift) & mask, [])
            candidates.update(same_band)
            same_band.append(i)
        for j in sorted(candidates):
            if (h ^ hashes[j]).bit_count() <= max_distance:
                yield j, i


def describe_bytes(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "an HTML page, not an image"
    if not data:
        return "an empty file"
    return f"no image format recognised (starts with {data[:8]!r})"
