"""`birds-predict --runtime auto`: the model file and runtime that the report stage recommends
for the machine that timed them (metrics/deploy.json), found from the model's path."""

import json
import shutil

import pytest

from birds_onnx import predict
from birds_onnx.deploy import NoRecommendation, recommended
from birds_onnx.predict import main
from helpers.images import photo

LINE = "openvino-int8: 3.41x pth, agrees on 45/45, 28.4 img/s"


@pytest.fixture
def project(tmp_path, tiny_models):
    """A pipeline's checkout as the report leaves it: the models of 20 epochs, and metrics/deploy.json
    recommending the int8 file run by OpenVINO for 20 epochs and nothing runnable for 50."""
    root = tmp_path / "project"
    (root / "models/e20").mkdir(parents=True)
    for fmt in ("onnx", "onnx-int8"):
        shutil.copy(tiny_models[fmt], root / "models/e20" / tiny_models[fmt].name)
    (root / "metrics").mkdir()
    (root / "metrics/deploy.json").write_text(json.dumps({
        "20": {"folder": "models/e20", "format": "openvino-int8", "model": "models/e20/model.int8.onnx",
               "runtime": "openvino", "line": LINE},
        "50": {"folder": "models/e50", "format": None, "model": None, "runtime": None,
               "line": "none: every format is ruled out: pth 2.00 img/s < 5"},
    }))
    return root


@pytest.fixture
def loads(monkeypatch):
    """The (runtime, model file) birds-predict loads, in order; the real loading goes on."""
    loaded, real = [], predict.load_model
    monkeypatch.setattr(predict, "load_model", lambda runtime, path, threads, providers: loaded.append((runtime, path)) or real(runtime, path, threads, providers))
    return loaded


def test_a_settings_folder_or_the_recommended_file_runs_it_with_its_runtime(project, loads, tmp_path, monkeypatch, capsys):
    image = photo(tmp_path / "bird.jpg", (90, 80))
    recommended_file = str(project / "models/e20/model.int8.onnx")
    assert main(["--runtime", "auto", str(project / "models/e20"), str(image), "--format", "csv"]) == 0
    monkeypatch.chdir(project / "models")  # a relative path, from below the project's root
    assert main(["--runtime", "auto", "e20/model.int8.onnx", str(image), "--format", "csv"]) == 0
    assert loads == [("openvino", recommended_file)] * 2
    rows = capsys.readouterr().out.splitlines()
    assert rows[1] == rows[3] and rows[1].startswith(f"{image},")


def test_another_file_of_the_setting_is_refused_naming_what_is_recommended(project, loads, tmp_path, capsys):
    image = photo(tmp_path / "bird.jpg", (90, 80))
    assert main(["--runtime", "auto", str(project / "models/e20/model.onnx"), str(image)]) == 2
    assert capsys.readouterr().err == (
        f"birds-predict: --runtime auto: {project / 'metrics/deploy.json'} recommends no runtime for "
        f"{project / 'models/e20/model.onnx'} (it recommends: models/e20/model.int8.onnx with openvino); "
        f"pass one of those, a setting's folder (models/eN), or --runtime onnxruntime|openvino\n"
    )
    assert loads == []


def test_a_setting_with_nothing_to_run_says_why(project):
    with pytest.raises(NoRecommendation, match=r"^--runtime auto: for 50 epochs .*deploy.json recommends none: every format "
                                               r"is ruled out: pth 2.00 img/s < 5$"):
        recommended(str(project / "models/e50"))


def test_no_recommendation_above_the_model_is_one_line(tmp_path, tiny_models, capsys):
    image = photo(tmp_path / "bird.jpg", (90, 80))
    assert main(["--runtime", "auto", str(tiny_models["onnx"]), str(image)]) == 2
    assert capsys.readouterr().err == (f"birds-predict: --runtime auto: no metrics/deploy.json above {tiny_models['onnx']} "
                                       f"(the report stage writes it: run `dvc repro`)\n")
