import re
from pathlib import Path

import pytest
import yaml

from stages.params import ParamError, load_params

PROJECT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def write_params(tmp_path, edit):
    raw = yaml.safe_load(PROJECT_PARAMS.read_text(encoding="utf-8"))
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_project_params_load():
    params = load_params(PROJECT_PARAMS)
    assert len(params.classes) == 9
    assert params.classes[0].keyword == "ハッカチョウ"
    assert params.train.epochs == (20, 50)
    assert params.split.train + params.split.test == params.crawl.synthetic.total_images == 190


def set_key(key, value):
    def edit(raw):
        *parents, last = key.split(".")
        node = raw
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[last] = value
    return edit


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("train.lr", "fast", "train.lr must be float"),
        ("train.lr", -1, "train.lr must be positive"),
        ("train.epochs", [20, 20], "train.epochs has a repeated value"),
        ("train.epochs", 20, "train.epochs must be a non-empty list"),
        ("train.pretrained", "imagenet21k", "train.pretrained must be one of none, imagenet"),
        ("train.batch_size", True, "train.batch_size must be int"),
        ("train.batch_size", 146, "train.batch_size (146) must be <= split.train (145)"),
        ("train.compile", "yes", "train.compile must be bool"),
        ("train.precision", "fp16", "train.precision must be one of auto, fp32, bf16"),
        ("train.processes", 0, "train.processes must be positive"),
        ("train.processes", 3, "train.batch_size (16) must be a multiple of train.processes (3)"),
        ("train.workers", -1, "train.workers must be 0 or more"),
        ("train.cache_images", "sometimes", "train.cache_images must be one of auto, True, False"),
        ("train.cache_budget_mb", 0, "train.cache_budget_mb must be positive"),
        ("crawl.source", "google", "crawl.source must be one of synthetic, bing, folder"),
        ("crawl.bing.filters.size", "huge", "crawl.bing.filters.size must be any, small, medium, large, extralarge or >WxH"),
        ("crawl.bing.filters.license", "free", "crawl.bing.filters.license must be one of any, creativecommons"),
        ("crawl.bing.endpoint", "www.bing.com/images/async", "crawl.bing.endpoint must be an http(s) URL"),
        ("crawl.bing.max_num", 0, "crawl.bing.max_num must be positive"),
        ("crawl.bing.retries", -1, "crawl.bing.retries must be 0 or more"),
        ("crawl.near_duplicate_distance", 40, "crawl.near_duplicate_distance must be 0 to 32"),
        ("crawl.min_side", 200, "crawl.synthetic.min_size (180) must be >= crawl.min_side (200)"),
        ("crawl.source", "folder", "crawl.folder.path must name a folder of <class slug>/<images>"),
        ("split.test", 0, "split.test must be positive"),
        ("preprocess.crop", 300, "preprocess.resize (256) must be >= preprocess.crop (300)"),
        ("evaluate.formats", ["onnx"], "evaluate.formats must include pth"),
        ("evaluate.formats", ["pth", "tflite"], "evaluate.formats[1] must be one of"),
        ("evaluate.formats", ["pth", "onnx-int8", "onnx-int8"], "evaluate.formats has a repeated value"),
        ("export.int8.method", "kl", "export.int8.method must be one of minmax, entropy, percentile"),
        ("export.int8.calibration_images", 0, "export.int8.calibration_images must be positive"),
        ("split.train", 100, "export.int8.calibration_images (145) must be <= split.train (100)"),
        ("classes.1.slug", "myna", "slug 'myna' appears twice"),
        ("classes.2.slug", "sun bird", "classes[2].slug must be ASCII"),
    ],
)
def test_bad_value_names_the_key(tmp_path, key, value, message):
    with pytest.raises(ParamError, match=re.escape(message)):
        load_params(write_params(tmp_path, set_key(key, value)))


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ParamError, match="unknown key train.learning_rate"):
        load_params(write_params(tmp_path, set_key("train.learning_rate", 0.1)))


def test_missing_required_key_is_named(tmp_path):
    with pytest.raises(ParamError, match="missing key seed"):
        load_params(write_params(tmp_path, lambda raw: raw.pop("seed")))


def test_broken_yaml_is_reported(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: [1,\n", encoding="utf-8")
    with pytest.raises(ParamError, match="not valid YAML"):
        load_params(path)
