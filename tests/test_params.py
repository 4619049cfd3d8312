from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from birds_onnx.preprocess import PreprocessSpec
from helpers.project import params_file
from stages.shared.params import ParamError, error_message, load_params

PROJECT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def write_params(tmp_path, edit):
    raw = yaml.safe_load(PROJECT_PARAMS.read_text(encoding="utf-8"))
    edit(raw)
    return params_file(tmp_path, raw)


def test_project_params_load():
    params = load_params(path=PROJECT_PARAMS)
    assert len(params.classes) == 9
    assert params.classes[0].keyword == "ハッカチョウ"
    assert params.train.epochs == [20, 50]
    assert params.split.train + params.split.test == params.crawl.synthetic.total_images == 190


def set_key(key, value):
    def edit(raw):
        *parents, last = key.split(".")
        node = raw
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[last] = value
    return edit


# Every bad value ends in one line that names its key (and, for cross-key rules, the other key).
@pytest.mark.parametrize(
    "key, value, message",
    [
        ("seed", -1, "seed must be at least 0, got -1"),
        ("seed", "42", "seed must be int, got '42'"),
        ("train.lr", "fast", "train.lr must be float, got 'fast'"),
        ("train.lr", -1, "train.lr must be positive, got -1"),
        ("train.weight_decay", -0.1, "train.weight_decay must be at least 0, got -0.1"),
        ("train.min_crop_scale", 1.5, "train.min_crop_scale must be at most 1, got 1.5"),
        ("train.epochs", [20, 20], "train.epochs has a repeated value: [20, 20]"),
        ("train.epochs", [], "train.epochs must be a list of at least 1, got []"),
        ("train.epochs", 20, "train.epochs must be a list, got 20"),
        ("train.epochs", [20, 0], "train.epochs[1] must be positive, got 0"),
        ("train.pretrained", "imagenet21k", "train.pretrained must be one of none, imagenet; got 'imagenet21k'"),
        ("train.batch_size", True, "train.batch_size must be int, got True"),
        ("train.batch_size", 146, "train.batch_size (146) must be <= split.train (145)"),
        ("train.compile", "yes", "train.compile must be bool, got 'yes'"),
        ("train.precision", "fp16", "train.precision must be one of auto, fp32, bf16; got 'fp16'"),
        ("train.threads", 0, "train.threads must be positive, got 0"),
        ("train.processes", 0, "train.processes must be positive, got 0"),
        ("train.processes", 3, "train.batch_size (16) must be a multiple of train.processes (3): every process takes an equal share of each batch"),
        ("train.workers", -1, "train.workers must be at least 0, got -1"),
        ("train.cache_images", "sometimes", "train.cache_images must be one of auto, True, False; got 'sometimes'"),
        ("train.cache_budget_mb", 0, "train.cache_budget_mb must be positive, got 0"),
        ("crawl.source", "google", "crawl.source must be one of synthetic, bing, folder; got 'google'"),
        ("crawl.bing.filters.size", "huge", "crawl.bing.filters.size must be any, small, medium, large, extralarge or >WxH, got 'huge'"),
        ("crawl.bing.filters.license", "free", "crawl.bing.filters.license must be one of any, creativecommons, publicdomain, noncommercial, commercial, noncommercial,modify, commercial,modify; got 'free'"),
        ("crawl.bing.endpoint", "www.bing.com/images/async", "crawl.bing.endpoint must be an http(s) URL, got 'www.bing.com/images/async'"),
        ("crawl.bing.max_num", 0, "crawl.bing.max_num must be positive, got 0"),
        ("crawl.bing.timeout_s", 0, "crawl.bing.timeout_s must be positive, got 0"),
        ("crawl.bing.retries", -1, "crawl.bing.retries must be at least 0, got -1"),
        ("crawl.near_duplicate_distance", 40, "crawl.near_duplicate_distance must be at most 32, got 40"),
        ("crawl.near_duplicate_distance", -1, "crawl.near_duplicate_distance must be at least 0, got -1"),
        ("crawl.min_side", 200, "crawl.synthetic.min_size (180) must be >= crawl.min_side (200), or the cleaning would reject the small synthetic images"),
        ("crawl.synthetic.max_size", 100, "crawl.synthetic.max_size must be >= crawl.synthetic.min_size"),
        ("crawl.synthetic.total_images", -5, "crawl.synthetic.total_images must be positive, got -5"),
        ("crawl.source", "folder", "crawl.folder.path must name a folder of <class slug>/<images> when crawl.source is folder"),
        ("crawl.folder", [], "crawl.folder must be a mapping, got []"),
        ("split.test", 0, "split.test must be positive, got 0"),
        ("preprocess.crop", 300, "preprocess.resize (256) must be >= preprocess.crop (300)"),
        ("preprocess.std", [0, 0, 0], "preprocess.std[0] must be positive, got 0"),
        ("preprocess.std", [0.2, 0.2], "preprocess.std must list 3 numbers (R, G, B), got [0.2, 0.2]"),
        ("preprocess.mean", [0.5, 0.5, 0.5, 0.5], "preprocess.mean must list 3 numbers (R, G, B), got [0.5, 0.5, 0.5, 0.5]"),
        ("evaluate.formats", ["onnx"], "evaluate.formats must include pth: every format is compared with it"),
        ("evaluate.formats", ["pth", "tflite"], "evaluate.formats[1] must be one of pth, onnx, onnx-int8, openvino, openvino-int8; got 'tflite'"),
        ("evaluate.formats", ["pth", "onnx-int8", "onnx-int8"], "evaluate.formats has a repeated value: ['pth', 'onnx-int8', 'onnx-int8']"),
        ("evaluate.warmup", -1, "evaluate.warmup must be at least 0, got -1"),
        ("evaluate.required_img_per_s", 0, "evaluate.required_img_per_s must be positive, got 0"),
        ("evaluate.min_agreement", 1.5, "evaluate.min_agreement must be at most 1, got 1.5"),
        ("evaluate.min_agreement", -0.1, "evaluate.min_agreement must be at least 0, got -0.1"),
        ("evaluate.min_agreement", "97%", "evaluate.min_agreement must be float, got '97%'"),
        ("export.opset", 99, "export.opset must be at most 23, got 99"),
        ("export.int8.methods", ["kl"], "export.int8.methods[0] must be one of minmax, entropy, percentile; got 'kl'"),
        ("export.int8.methods", [], "export.int8.methods must be a list of at least 1, got []"),
        ("export.int8.methods", ["minmax", "minmax"], "export.int8.methods has a repeated value: ['minmax', 'minmax']"),
        ("export.int8.calibration_images", 0, "export.int8.calibration_images must be positive, got 0"),
        ("split.train", 99, "export.int8.calibration_images (100) must be <= split.train (99): calibration uses training images only"),
        ("classes.1.slug", "myna", "classes: slug 'myna' appears twice"),
        ("classes.2.slug", "sun bird", "classes[2].slug must be ASCII letters, digits, '_' or '-', got 'sun bird'"),
        ("classes", [{"slug": "crow", "keyword": "カラス"}], "classes must be a list of at least 2, got [{'slug': 'crow', 'keyword': 'カラス'}]"),
    ],
)
def test_bad_value_names_the_key(tmp_path, key, value, message):
    with pytest.raises(ParamError) as raised:
        load_params(path=write_params(tmp_path, set_key(key, value)))
    assert str(raised.value) == message


def test_a_stage_reads_only_the_keys_it_declares(tmp_path):
    path = write_params(tmp_path, lambda raw: None)
    params = load_params("seed", "train.lr", "classes", path=path)
    assert (params.seed, params.train.lr, params.slugs[0]) == (42, 0.001, "myna")
    with pytest.raises(ParamError, match="this stage reads train.threads but does not declare it"):
        params.train.threads
    with pytest.raises(ParamError, match="this stage reads split but does not declare it"):
        params.split


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ParamError, match="unknown key train.learning_rate"):
        load_params(path=write_params(tmp_path, set_key("train.learning_rate", 0.1)))


def test_missing_required_key_is_named(tmp_path):
    with pytest.raises(ParamError, match="missing key seed"):
        load_params(path=write_params(tmp_path, lambda raw: raw.pop("seed")))


def test_broken_yaml_is_reported(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("seed: [1,\n", encoding="utf-8")
    with pytest.raises(ParamError, match="not valid YAML"):
        load_params(path=path)


def test_every_format_is_evaluated_by_default():
    assert load_params(path=PROJECT_PARAMS).evaluate.formats == ["pth", "onnx", "onnx-int8", "openvino", "openvino-int8"]


@pytest.mark.parametrize("key, value", [
    ("seed", 0), ("crawl.near_duplicate_distance", 32), ("crawl.near_duplicate_distance", 0),
    ("crawl.synthetic.max_size", 180), ("crawl.min_side", 180), ("preprocess.crop", 256), ("train.min_crop_scale", 1),
    ("train.batch_size", 145), ("train.processes", 2), ("export.int8.calibration_images", 145),
    ("export.opset", 18), ("export.opset", 23), ("evaluate.warmup", 0), ("train.epochs", [1]),
    ("evaluate.min_agreement", 0.0), ("evaluate.min_agreement", 1),
])
def test_values_at_their_limits_are_accepted(tmp_path, key, value):
    params = load_params(path=write_params(tmp_path, set_key(key, value)))
    node = params
    for part in key.split("."):
        node = getattr(node, part)
    assert node == value


def test_unknown_keys_say_what_is_allowed_there(tmp_path):
    with pytest.raises(ParamError) as raised:
        load_params(path=write_params(tmp_path, set_key("split.validation", 10)))
    assert str(raised.value) == "unknown key split.validation; allowed: train, test"
    with pytest.raises(ParamError) as raised:
        load_params(path=write_params(tmp_path, set_key("classes.3.colour", "black")))
    assert str(raised.value) == "unknown key classes[3].colour; allowed: slug, keyword"
    with pytest.raises(ParamError) as raised:  # an unknown key is named before any bad value
        load_params(path=write_params(tmp_path, lambda raw: (set_key("train.lr", -1)(raw), set_key("train.speed", 1)(raw))))
    assert str(raised.value).startswith("unknown key train.speed; allowed: epochs, pretrained, batch_size, lr, ")


def test_a_params_file_that_is_missing_or_not_a_mapping_is_named(tmp_path):
    with pytest.raises(ParamError) as raised:
        load_params(path=tmp_path / "params.yaml")
    assert str(raised.value) == f"{tmp_path / 'params.yaml'} not found (run from the project root)"
    (tmp_path / "list.yaml").write_text("- seed\n- 42\n", encoding="utf-8")
    with pytest.raises(ParamError) as raised:
        load_params(path=tmp_path / "list.yaml")
    assert str(raised.value) == f"{tmp_path / 'list.yaml'} must be a mapping of keys to values, got ['seed', 42]"


def test_a_declared_section_chosen_by_a_param_reads_that_section_only(tmp_path):
    path = write_params(tmp_path, set_key("crawl.source", "synthetic"))
    params = load_params("crawl.{crawl.source}", "train", path=path)
    assert params.crawl.synthetic.total_images == 190
    assert params.train.lr == 0.001 and params.train.epochs == [20, 50]  # a declared section: all its keys
    with pytest.raises(ParamError, match="this stage reads crawl.bing but does not declare it"):
        params.crawl.bing
    with pytest.raises(ParamError, match="this stage reads crawl.source but does not declare it"):
        params.crawl.source


def test_preprocessing_params_become_the_runtime_spec():
    spec = PreprocessSpec.from_dict(load_params(path=PROJECT_PARAMS).preprocess.model_dump())
    assert (spec.resize, spec.crop, spec.mean, spec.std) == (256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_unknown_keys_come_before_missing_ones_and_missing_ones_before_bad_values(tmp_path):
    # pydantic lists errors in field order, unknown keys last: seed is the first field
    def unknown_and_missing(raw):
        raw.pop("seed")
        raw["train"]["speed"] = 1
    with pytest.raises(ParamError) as raised:
        load_params(path=write_params(tmp_path, unknown_and_missing))
    assert str(raised.value).startswith("unknown key train.speed; ")

    def missing_after_a_bad_value(raw):  # only seed and classes have no default
        raw["seed"] = -1
        raw.pop("classes")
    with pytest.raises(ParamError) as raised:
        load_params(path=write_params(tmp_path, missing_after_a_bad_value))
    assert str(raised.value) == "missing key classes"


def test_an_unknown_key_deep_in_a_section_lists_that_sections_keys(tmp_path):
    with pytest.raises(ParamError) as raised:
        load_params(path=write_params(tmp_path, set_key("crawl.bing.filters.colour", "red")))
    assert str(raised.value) == "unknown key crawl.bing.filters.colour; allowed: type, size, license"
    with pytest.raises(ParamError) as raised:
        load_params(path=write_params(tmp_path, set_key("colour", "red")))
    assert str(raised.value) == "unknown key colour; allowed: seed, classes, crawl, split, preprocess, train, export, evaluate"


def test_params_with_non_ascii_keywords_load_whatever_the_locale(ascii_locale):
    assert load_params(path=PROJECT_PARAMS).classes[1].keyword == "ヨシキリ"


# pydantic errors no params.yaml value gives today (the model rejects it earlier, or no field has
# that constraint), built as pydantic builds them: they still become one line naming the key
@pytest.mark.parametrize("error, message", [
    ({"type": "finite_number", "loc": ("train", "lr"), "input": float("inf")},
     "train.lr: input should be a finite number, got inf"),
    ({"type": "string_pattern_mismatch", "loc": ("classes", 0, "name"), "input": "a b", "ctx": {"pattern": "^\\w+$"}},
     "classes[0].name has the wrong form, got 'a b'"),
    ({"type": "model_type", "loc": (), "input": 3, "ctx": {"class_name": "Params"}},
     "params.yaml must be a mapping, got 3"),
])
def test_any_other_pydantic_error_is_one_line_naming_the_key(error, message):
    assert error_message(ValidationError.from_exception_data("Params", [error])) == message
