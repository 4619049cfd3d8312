"""params.yaml, loaded once and checked: a bad value fails with the key that holds it.

Each section is a frozen dataclass. Its fields are the allowed keys, their annotations the
allowed types (``Literal`` for a fixed set of words), their defaults the optional ones.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from stages.errors import PipelineError
from birds_onnx.preprocess import PreprocessSpec

PARAMS_FILE = Path("params.yaml")


class ParamError(PipelineError):
    """A value in params.yaml is missing, unknown or of the wrong kind."""


@dataclass(frozen=True)
class BirdClass:
    slug: str  # folder name and label: ASCII, no spaces
    keyword: str  # the search term the article used (Japanese)


@dataclass(frozen=True)
class SyntheticSource:
    total_images: int = 190
    min_size: int = 180
    max_size: int = 480


@dataclass(frozen=True)
class BingFilters:
    """Bing's own search filters, as icrawler's BingFeeder names them; `any` leaves one out."""

    type: Literal["any", "photo", "clipart", "linedrawing", "transparent", "animated"] = "any"
    size: str = "any"  # any | small | medium | large | extralarge | >WxH (at least W by H pixels)
    license: Literal[
        "any", "creativecommons", "publicdomain", "noncommercial", "commercial", "noncommercial,modify", "commercial,modify"
    ] = "any"


@dataclass(frozen=True)
class BingSource:
    max_num: int = 30  # images downloaded per class (before cleaning), one search per class keyword
    filters: BingFilters = field(default_factory=BingFilters)
    endpoint: str = "https://www.bing.com/images/async"  # the environment variable BIRDS_BING_ENDPOINT overrides it
    timeout_s: float = 10.0  # per request, for result pages and images alike
    retries: int = 2  # further tries after a connection error, a timeout or an HTTP 5xx/429


@dataclass(frozen=True)
class FolderSource:
    path: str = ""  # a folder holding one sub-folder of images per class slug


@dataclass(frozen=True)
class Crawl:
    source: Literal["synthetic", "bing", "folder"] = "synthetic"
    min_side: int = 100  # images whose shorter side is below this are rejected
    near_duplicate_distance: int = 4  # perceptual-hash bits (of 64) within which two images are one
    synthetic: SyntheticSource = field(default_factory=SyntheticSource)
    bing: BingSource = field(default_factory=BingSource)
    folder: FolderSource = field(default_factory=FolderSource)


@dataclass(frozen=True)
class Split:
    train: int = 145
    test: int = 45


@dataclass(frozen=True)
class Train:
    epochs: tuple[int, ...] = (20, 50)
    pretrained: Literal["none", "imagenet"] = "none"
    batch_size: int = 16
    lr: float = 0.001
    weight_decay: float = 0.0001
    min_crop_scale: float = 0.35
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False
    threads: int = 2  # per training process
    processes: int = 1  # data-parallel processes (torchrun); batch_size is split among them
    workers: int = 1  # DataLoader worker processes per training process (0: prepare batches in it)
    cache_images: Literal["auto", True, False] = "auto"  # decoded once into memory, or read from disk every step
    cache_budget_mb: int = 1024  # auto caches when the decoded training images fit this


@dataclass(frozen=True)
class Int8:
    calibration_images: int = 145  # training-split images that set the activation ranges
    method: Literal["minmax", "entropy", "percentile"] = "minmax"


@dataclass(frozen=True)
class Export:
    opset: int = 18
    int8: Int8 = field(default_factory=Int8)


@dataclass(frozen=True)
class Evaluate:
    formats: tuple[Literal["pth", "onnx", "onnx-int8"], ...] = ("pth", "onnx", "onnx-int8")
    threads: int = 2
    passes: int = 3  # the article's figure is the mean of 3 passes over the test set
    warmup: int = 5
    timed_runs: int = 30
    batch_size: int = 8  # for the throughput-at-batch figure
    required_img_per_s: float = 5.0  # the article's requirement: 5 images per second


@dataclass(frozen=True)
class Params:
    seed: int
    classes: tuple[BirdClass, ...]
    crawl: Crawl = field(default_factory=Crawl)
    split: Split = field(default_factory=Split)
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    train: Train = field(default_factory=Train)
    export: Export = field(default_factory=Export)
    evaluate: Evaluate = field(default_factory=Evaluate)

    @property
    def slugs(self) -> list[str]:
        return [c.slug for c in self.classes]


def load_params(path: Path | str = PARAMS_FILE) -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamError(f"{path} not found (run from the project root)") from None
    except yaml.YAMLError as e:
        raise ParamError(f"{path} is not valid YAML: {e}") from None
    params = _build(Params, raw, key="")
    _check_ranges(params)
    return params


def _build(cls, value, key: str):
    """Turn `value` (parsed YAML) into an instance of `cls`, naming `key` on any mismatch."""
    where = key or "params.yaml"
    if not isinstance(value, dict):
        raise ParamError(f"{where} must be a mapping, got {value!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ParamError(f"unknown key {_join(key, unknown[0])}; allowed: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], _join(key, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ParamError(f"missing key {_join(key, name)}")
    return cls(**kwargs)


def _convert(hint, value, key: str):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin is tuple:
        if not isinstance(value, list) or not value:
            raise ParamError(f"{key} must be a non-empty list, got {value!r}")
        return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is Literal:
        if value not in args:
            raise ParamError(f"{key} must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or isinstance(value, bool) and hint is not bool:
        raise ParamError(f"{key} must be {hint.__name__}, got {value!r}")
    return value


def _check_ranges(p: Params) -> None:
    """Checks that types alone cannot express."""
    slugs = p.slugs
    for i, slug in enumerate(slugs):
        if not slug or not slug.isascii() or not slug.replace("_", "").replace("-", "").isalnum():
            raise ParamError(f"classes[{i}].slug must be ASCII letters, digits, '_' or '-'; got {slug!r}")
    duplicate = next((s for s in slugs if slugs.count(s) > 1), None)
    if duplicate:
        raise ParamError(f"classes: slug {duplicate!r} appears twice")
    if len(slugs) < 2:
        raise ParamError("classes must list at least 2 classes")
    positive = {
        "crawl.synthetic.total_images": p.crawl.synthetic.total_images,
        "crawl.synthetic.min_size": p.crawl.synthetic.min_size,
        "crawl.min_side": p.crawl.min_side,
        "crawl.bing.max_num": p.crawl.bing.max_num,
        "crawl.bing.timeout_s": p.crawl.bing.timeout_s,
        "split.train": p.split.train,
        "split.test": p.split.test,
        "preprocess.crop": p.preprocess.crop,
        "train.batch_size": p.train.batch_size,
        "train.lr": p.train.lr,
        "train.min_crop_scale": p.train.min_crop_scale,
        "train.threads": p.train.threads,
        "train.processes": p.train.processes,
        "train.cache_budget_mb": p.train.cache_budget_mb,
        "export.opset": p.export.opset,
        "export.int8.calibration_images": p.export.int8.calibration_images,
        "evaluate.threads": p.evaluate.threads,
        "evaluate.passes": p.evaluate.passes,
        "evaluate.timed_runs": p.evaluate.timed_runs,
        "evaluate.batch_size": p.evaluate.batch_size,
    }
    positive.update({f"train.epochs[{i}]": e for i, e in enumerate(p.train.epochs)})
    for key, value in positive.items():
        if value <= 0:
            raise ParamError(f"{key} must be positive, got {value}")
    if p.crawl.synthetic.max_size < p.crawl.synthetic.min_size:
        raise ParamError("crawl.synthetic.max_size must be >= crawl.synthetic.min_size")
    _check_crawl(p.crawl)
    if p.preprocess.resize < p.preprocess.crop:
        raise ParamError(
            f"preprocess.resize ({p.preprocess.resize}) must be >= preprocess.crop ({p.preprocess.crop})"
        )
    for key in ("mean", "std"):
        if len(getattr(p.preprocess, key)) != 3:
            raise ParamError(f"preprocess.{key} must list 3 numbers (R, G, B)")
    if p.train.batch_size > p.split.train:
        raise ParamError(f"train.batch_size ({p.train.batch_size}) must be <= split.train ({p.split.train})")
    if p.train.workers < 0:
        raise ParamError(f"train.workers must be 0 or more, got {p.train.workers}")
    if p.train.batch_size % p.train.processes:
        raise ParamError(
            f"train.batch_size ({p.train.batch_size}) must be a multiple of train.processes ({p.train.processes}): "
            "each process takes an equal share of every batch"
        )
    if len(set(p.train.epochs)) != len(p.train.epochs):
        raise ParamError(f"train.epochs has a repeated value: {list(p.train.epochs)}")
    if p.export.int8.calibration_images > p.split.train:
        raise ParamError(
            f"export.int8.calibration_images ({p.export.int8.calibration_images}) must be <= split.train ({p.split.train}): "
            "calibration uses training images only"
        )
    if len(set(p.evaluate.formats)) != len(p.evaluate.formats):
        raise ParamError(f"evaluate.formats has a repeated value: {list(p.evaluate.formats)}")
    if "pth" not in p.evaluate.formats:
        raise ParamError("evaluate.formats must include pth: every format is compared with it")


def _check_crawl(c: Crawl) -> None:
    if not 0 <= c.near_duplicate_distance <= 32:
        raise ParamError(f"crawl.near_duplicate_distance must be 0 to 32 (bits of 64), got {c.near_duplicate_distance}")
    if c.bing.retries < 0:
        raise ParamError(f"crawl.bing.retries must be 0 or more, got {c.bing.retries}")
    size = c.bing.filters.size
    if size not in ("any", "small", "medium", "large", "extralarge") and not re.fullmatch(r">\d+x\d+", size):
        raise ParamError(f"crawl.bing.filters.size must be any, small, medium, large, extralarge or >WxH; got {size!r}")
    if not re.match(r"https?://[^/]+", c.bing.endpoint):
        raise ParamError(f"crawl.bing.endpoint must be an http(s) URL, got {c.bing.endpoint!r}")
    if c.source == "folder" and not c.folder.path:
        raise ParamError("crawl.folder.path must name a folder of <class slug>/<images> when crawl.source is folder")
    if c.source == "synthetic" and c.synthetic.min_size < c.min_side:
        raise ParamError(
            f"crawl.synthetic.min_size ({c.synthetic.min_size}) must be >= crawl.min_side ({c.min_side}), "
            "or the cleaning would reject the small synthetic images"
        )


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
