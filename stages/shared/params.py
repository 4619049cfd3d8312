"""params.yaml, loaded once and checked completely: a bad value fails with the key that holds it.

Each section is a pydantic model: its fields are the allowed keys (`extra="forbid"`), their
annotations the allowed types (strict: no "3" for 3, no true for 1) and ranges, their defaults
the optional keys; model validators check what spans several keys. Pydantic's first error
becomes one line that names the key (`train.lr must be positive, got -1`).

A stage loads params with the keys it reads, `load_params(*PARAMS)`, and gets a view that
refuses any other key: what a stage reads is what it declares, and tests/test_dvc_graph.py
checks that dvc.yaml lists exactly those keys as the stage's params.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stages.shared.errors import PipelineError

PARAMS_FILE = Path("params.yaml")

Positive = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegative = Annotated[int, Field(ge=0)]


class ParamError(PipelineError):
    """A value in params.yaml is missing, unknown or of the wrong kind."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class BirdClass(Section):
    slug: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]  # folder name and label
    keyword: str  # the search term the article used (Japanese)


class SyntheticSource(Section):
    seed: NonNegative = 42  # the drawings' one seed (the crawl does not depend on the top-level seed)
    total_images: Positive = 190
    min_size: Positive = 180
    max_size: Positive = 480

    @model_validator(mode="after")
    def _sizes(self):
        if self.max_size < self.min_size:
            raise ValueError("crawl.synthetic.max_size must be >= crawl.synthetic.min_size")
        return self


class BingFilters(Section):
    """Bing's own search filters, as icrawler's BingFeeder names them; `any` leaves one out."""

    type: Literal["any", "photo", "clipart", "linedrawing", "transparent", "animated"] = "any"
    size: Annotated[str, Field(pattern=r"^(any|small|medium|large|extralarge|>\d+x\d+)$")] = "any"
    license: Literal[
        "any", "creativecommons", "publicdomain", "noncommercial", "commercial", "noncommercial,modify", "commercial,modify"
    ] = "any"


class BingSource(Section):
    max_num: Positive = 30  # images downloaded per class (before cleaning), one search per class keyword
    filters: BingFilters = BingFilters()
    endpoint: Annotated[str, Field(pattern=r"^https?://[^/]+")] = "https://www.bing.com/images/async"
    timeout_s: PositiveFloat = 10.0  # per request, for result pages and images alike
    retries: NonNegative = 2  # further tries after a connection error, a timeout or an HTTP 5xx/429
    threads: Positive = 4  # images downloaded at once, one pool for every class; files are numbered by result order
    download_timeout_s: PositiveFloat = 60.0  # one image's whole download, retries included (download_timed_out)
    allow_private_addresses: bool = False  # fetch images from loopback, private and link-local addresses too


class FolderSource(Section):
    path: str = ""  # a folder holding one sub-folder of images per class slug


class Crawl(Section):
    source: Literal["synthetic", "bing", "folder"] = "synthetic"
    min_side: Positive = 100  # images whose shorter side is below this are rejected
    near_duplicate_distance: Annotated[int, Field(ge=0, le=32)] = 4  # perceptual-hash bits (of 64)
    workers: NonNegative = 0  # decoding (and drawing) processes; 0 = one per CPU core; the output is the same for any count
    decode_timeout_s: PositiveFloat = 30.0  # an image whose decoding takes longer is rejected (timed_out)
    decode_memory_mb: Positive = 2048  # an image whose decoding needs more memory is rejected (over_memory_cap)
    max_image_mb: PositiveFloat = 50.0  # an image file (or download) larger than this is rejected unread (too_large)
    synthetic: SyntheticSource = SyntheticSource()
    bing: BingSource = BingSource()
    folder: FolderSource = FolderSource()

    @model_validator(mode="after")
    def _source(self):
        if self.source == "folder" and not self.folder.path:
            raise ValueError("crawl.folder.path must name a folder of <class slug>/<images> when crawl.source is folder")
        if self.source == "synthetic" and self.synthetic.min_size < self.min_side:
            raise ValueError(
                f"crawl.synthetic.min_size ({self.synthetic.min_size}) must be >= crawl.min_side ({self.min_side}), "
                "or the cleaning would reject the small synthetic images"
            )
        return self


class Split(Section):
    train: Positive = 145
    test: Positive = 45


class Preprocess(Section):
    resize: Positive = 256  # shorter side
    crop: Positive = 224
    mean: Annotated[list[float], Field(min_length=3, max_length=3)] = [0.485, 0.456, 0.406]
    std: Annotated[list[PositiveFloat], Field(min_length=3, max_length=3)] = [0.229, 0.224, 0.225]

    @model_validator(mode="after")
    def _crop_fits(self):
        if self.resize < self.crop:
            raise ValueError(f"preprocess.resize ({self.resize}) must be >= preprocess.crop ({self.crop})")
        return self


class Train(Section):
    epochs: Annotated[list[Positive], Field(min_length=1)] = [20, 50]
    pretrained: Literal["none", "imagenet"] = "none"
    batch_size: Positive = 16
    lr: PositiveFloat = 0.001
    weight_decay: Annotated[float, Field(ge=0)] = 0.0001
    min_crop_scale: Annotated[float, Field(gt=0, le=1)] = 0.35
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False
    threads: Positive = 2  # per training process
    processes: Positive = 1  # data-parallel processes (torchrun); batch_size is split among them
    workers: NonNegative = 1  # DataLoader worker processes per training process (0: prepare batches in it)
    cache_images: Literal["auto", True, False] = "auto"  # decoded once into memory, or read from disk every step
    cache_budget_mb: Positive = 1024  # auto caches when the decoded training images fit this

    @field_validator("epochs")
    @classmethod
    def _unique(cls, epochs):
        return unique(epochs, "train.epochs")

    @model_validator(mode="after")
    def _shards(self):
        if self.batch_size % self.processes:
            raise ValueError(
                f"train.batch_size ({self.batch_size}) must be a multiple of train.processes ({self.processes}): "
                "every process takes an equal share of each batch"
            )
        return self


class Int8(Section):
    calibration_images: Positive = 100  # training-split images that set the activation ranges; the others check the result
    # calibration methods tried in turn: the first whose int8 model agrees with fp32 on evaluate.min_agreement
    # of the held-out training images is kept
    methods: Annotated[list[Literal["minmax", "entropy", "percentile"]], Field(min_length=1)] = ["minmax", "percentile", "entropy"]

    @field_validator("methods")
    @classmethod
    def _methods(cls, methods):
        return unique(methods, "export.int8.methods")


class Export(Section):
    opset: Annotated[int, Field(ge=18, le=23)] = 18  # what torch's ONNX exporter and onnx both support
    int8: Int8 = Int8()


class Evaluate(Section):
    formats: Annotated[list[Literal["pth", "onnx", "onnx-int8", "openvino", "openvino-int8"]], Field(min_length=1)] = [
        "pth", "onnx", "onnx-int8", "openvino", "openvino-int8"
    ]
    threads: Positive = 2
    passes: Positive = 3  # the article's figure is the mean of 3 passes over the test set
    warmup: NonNegative = 5
    timed_runs: Positive = 30
    batch_size: Positive = 8  # for the throughput-at-batch figure
    required_img_per_s: PositiveFloat = 5.0  # the article's requirement: 5 images per second
    # the share of the test images on which a format must agree with pth to be recommended for deployment
    min_agreement: Annotated[float, Field(ge=0, le=1)] = 0.97

    @field_validator("formats")
    @classmethod
    def _formats(cls, formats):
        if "pth" not in formats:
            raise ValueError("evaluate.formats must include pth: every format is compared with it")
        return unique(formats, "evaluate.formats")


class Params(Section):
    seed: NonNegative
    classes: Annotated[list[BirdClass], Field(min_length=2)]
    crawl: Crawl = Crawl()
    split: Split = Split()
    preprocess: Preprocess = Preprocess()
    train: Train = Train()
    export: Export = Export()
    evaluate: Evaluate = Evaluate()

    @property
    def slugs(self) -> list[str]:
        return [c.slug for c in self.classes]

    @field_validator("classes")
    @classmethod
    def _distinct_slugs(cls, classes):
        slugs = [c.slug for c in classes]
        repeated = next((s for s in slugs if slugs.count(s) > 1), None)
        if repeated:
            raise ValueError(f"classes: slug {repeated!r} appears twice")
        return classes

    @model_validator(mode="after")
    def _across_sections(self):
        if self.train.batch_size > self.split.train:
            raise ValueError(f"train.batch_size ({self.train.batch_size}) must be <= split.train ({self.split.train})")
        if self.export.int8.calibration_images > self.split.train:
            raise ValueError(
                f"export.int8.calibration_images ({self.export.int8.calibration_images}) must be <= split.train "
                f"({self.split.train}): calibration uses training images only"
            )
        return self


def unique(values: list, key: str) -> list:
    if len(set(values)) != len(values):
        raise ValueError(f"{key} has a repeated value: {values}")
    return values


class DeclaredParams:
    """A view of Params that lets a stage read only the keys it declared: a declared section
    (`train`) or key (`train.lr`) reads as usual, anything else raises ParamError. Properties
    (`slugs`) are computed through the view, so they need the keys they read declared too."""

    def __init__(self, value, declared: frozenset[str], prefix: str = ""):
        self._value, self._declared, self._prefix = value, declared, prefix

    def __getattr__(self, name: str):
        key = self._prefix + name
        attribute = getattr(type(self._value), name, None)
        if isinstance(attribute, property):
            return attribute.fget(self)
        if key in self._declared:
            return getattr(self._value, name)
        if any(d.startswith(key + ".") for d in self._declared):
            return DeclaredParams(getattr(self._value, name), self._declared, key + ".")
        raise ParamError(f"this stage reads {key} but does not declare it: add it to the stage's PARAMS and its params in dvc.yaml")


def load_params(*reads: str, path: Path | str = PARAMS_FILE) -> Params:
    """params.yaml, validated whole. With `reads` (dotted keys: `seed`, `train`, `train.lr`,
    `crawl.{crawl.source}`), a view that allows only those keys; without, all of it (tools, tests)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(
            encoding="utf-8",  # pragma: no mutate: codec names are not case-sensitive
        ))
    except FileNotFoundError:
        raise ParamError(f"{path} not found (run from the project root)") from None
    except yaml.YAMLError as e:
        raise ParamError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ParamError(f"{path} must be a mapping of keys to values, got {raw!r}")
    try:
        params = Params.model_validate(raw)
    except ValidationError as e:
        raise ParamError(error_message(e)) from None
    return DeclaredParams(params, frozenset(resolve(key, raw) for key in reads)) if reads else params  # type: ignore[return-value]


def resolve(key: str, raw: dict) -> str:
    """`crawl.{crawl.source}` -> `crawl.synthetic`: a key that names a section chosen by a param,
    as dvc.yaml's `crawl.${crawl.source}` does."""
    def value(match: re.Match) -> str:
        node = raw
        for part in match.group(1).split("."):
            node = node[part]
        return str(node)

    return re.sub(r"\{([\w.]+)\}", value, key)


TYPE_NAMES = {"int_type": "int", "float_type": "float", "bool_type": "bool", "string_type": "str", "list_type": "a list"}


def error_message(error: ValidationError) -> str:
    """Pydantic's first error as one line that names the key; unknown and missing keys first."""
    errors = sorted(error.errors(), key=lambda e: {"extra_forbidden": 0, "missing": 1}.get(e["type"],
                                                                                       2,  # pragma: no mutate: any rank above missing's 1 keeps the other errors after the unknown and the missing keys
    ))
    e = errors[0]
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in e["loc"]).lstrip(
        ".",  # pragma: no mutate: stripping X as well as the dot changes only keys that start with X, and no key of params.yaml does
    )
    kind, got = e["type"], e.get("input")
    ctx = e.get("ctx", {})  # pragma: no mutate: read only for the kinds of error pydantic always gives a ctx (value, literal, bound, length)
    if kind == "extra_forbidden":
        return f"unknown key {key}; allowed: {', '.join(allowed_keys(e['loc'][:-1]))}"
    if kind == "missing":
        return f"missing key {key}"
    if kind == "value_error":
        return str(ctx["error"])
    if kind in TYPE_NAMES:
        return f"{key} must be {TYPE_NAMES[kind]}, got {got!r}"
    if kind == "literal_error":  # ctx: "'none' or 'imagenet'", "'auto', True or False"
        return f"{key} must be one of {', '.join(v.strip(QUOTE) for v in re.split(', | or ', ctx['expected']))}; got {got!r}"
    if kind == "greater_than" and ctx["gt"] == 0:
        return f"{key} must be positive, got {got!r}"
    if kind == "greater_than_equal":
        return f"{key} must be at least {ctx['ge']:g}, got {got!r}"
    if kind == "less_than_equal":
        return f"{key} must be at most {ctx['le']:g}, got {got!r}"
    if kind in ("too_short", "too_long") and key.endswith(("mean", "std")):
        return f"{key} must list 3 numbers (R, G, B), got {got!r}"
    if kind == "too_short":
        return f"{key} must be a list of at least {ctx['min_length']}, got {got!r}"
    if kind == "string_pattern_mismatch":
        return f"{key} {PATTERN_HINTS.get(key.split('.')[-1], 'has the wrong form')}, got {got!r}"
    if kind == "model_type":
        return f"{key or 'params.yaml'} must be a mapping, got {got!r}"
    return f"{key}: {e['msg'].lower()}, got {got!r}"


QUOTE = "'"
PATTERN_HINTS = {
    "slug": "must be ASCII letters, digits, '_' or '-'",
    "size": "must be any, small, medium, large, extralarge or >WxH",
    "endpoint": "must be an http(s) URL",
}


def allowed_keys(loc: tuple) -> list[str]:
    """The field names of the section at `loc` (list indexes skipped)."""
    model = Params
    for part in loc:
        if isinstance(part, str):
            annotation = model.model_fields[part].annotation
            while typing.get_origin(annotation) in (list, Annotated):
                annotation = typing.get_args(annotation)[0]
            model = annotation
    return list(model.model_fields)
