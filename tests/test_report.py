"""The report: one row per format and setting with speed-ups and the requirement, the headline
files for `dvc metrics show`, and the charts, for any number of settings."""

import json

import pytest
from PIL import Image

from stages.errors import PipelineError
from stages.report import load_results, plot_speeds, plot_training, render_markdown, write_summary
from stages.results import results_dir

MACHINE = {"cpu": "Test CPU", "logical_cpus": 2, "id": "abc123"}


def write_results(root, epochs: int, img_per_s: dict[str, float], machine: dict = MACHINE) -> None:
    """What evaluate@epochs writes under metrics/evaluate/e<epochs>/."""
    accuracy = {f: {"accuracy": 0.9 - i / 10, "agreement_with_pth": 1.0, "recall": {"myna": 1.0, "crow": 0.5},
                    "size_mb": 94.0} for i, f in enumerate(img_per_s)}
    speed = {"threads": 2, "batch_size": 8, "required_img_per_s": 5.0, "measured_on": machine}
    for fmt, rate in img_per_s.items():
        speed[fmt] = {
            "article_img_per_s": rate, "img_per_s_batch1": 2 * rate, "img_per_s_batch8": 3 * rate,
            "streaming_img_per_s": 2.7 * rate,
            "latency_ms_median": 1000 / (2 * rate), "latency_ms_p90": 1100 / (2 * rate),
            "meets_requirement": rate >= 5.0,
        }
    folder = root / results_dir(epochs)
    folder.mkdir(parents=True)
    (folder / "accuracy.json").write_text(json.dumps(accuracy))
    (folder / "speed.json").write_text(json.dumps(speed))
    rows = "".join(f"{e},{2 / e},{e / epochs},{e / (2 * epochs)},0.001\n" for e in range(1, epochs + 1))
    (folder / "training.csv").write_text("epoch,train_loss,train_acc,test_acc,lr\n" + rows)


RATES = {"pth": 4.0, "onnx": 8.0, "onnx-int8": 24.0}


def test_report_has_a_row_per_format_with_speed_up_and_requirement(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_results(tmp_path, 20, RATES)
    write_results(tmp_path, 50, {"pth": 5.0, "onnx": 10.0, "onnx-int8": 40.0})
    markdown = render_markdown(load_results([20, 50]))
    rows = [line.split(" | ") for line in markdown.splitlines() if line.startswith("| pth") or line.startswith("| onnx")]
    assert [r[0] for r in rows] == ["| pth", "| onnx", "| onnx-int8"] * 2
    header = next(line for line in markdown.splitlines() if line.startswith("| format")).split(" | ")
    speed_up, meets = header.index("speed-up vs pth"), header.index(">= 5 img/s |")
    assert [r[speed_up] for r in rows] == ["1.00x", "2.00x", "6.00x", "1.00x", "2.00x", "8.00x"]
    assert [r[meets] for r in rows] == ["no |", "yes |", "yes |", "yes |", "yes |", "yes |"]
    assert markdown.count("## Trained for") == 2
    assert "| crow | 0.50 | 0.50 | 0.50 |" in markdown  # recall per class and format
    assert "Timings measured on: Test CPU, 2 logical CPUs (machine abc123)" in markdown


@pytest.mark.parametrize("settings", [[7], [3, 1, 2]])
def test_any_number_of_settings_in_their_order(tmp_path, monkeypatch, settings):
    monkeypatch.chdir(tmp_path)
    for e in settings:
        write_results(tmp_path, e, RATES)
    results = load_results(settings)
    markdown = render_markdown(results)
    assert [line for line in markdown.splitlines() if line.startswith("## ")] == [f"## Trained for {e} epochs" for e in settings]
    write_summary(results, tmp_path / "summary")
    files = sorted(p.relative_to(tmp_path / "summary").as_posix() for p in (tmp_path / "summary").rglob("*.json"))
    assert files == sorted(f"{n}/{fmt}.json" for n in range(1, len(settings) + 1) for fmt in RATES)
    for n, e in enumerate(settings, 1):
        row = json.loads((tmp_path / f"summary/{n}/onnx-int8.json").read_text())
        assert row == {"epochs": e, "accuracy": 0.7, "agreement": 1.0, "img_s": 24.0,
                       "model_img_s": 48.0, "stream_img_s": 2.7 * 24.0}
    plot_training(results, tmp_path / "training.png")
    plot_speeds(results, tmp_path / "speed.png")
    for chart in ("training.png", "speed.png"):
        with Image.open(tmp_path / chart) as image:
            assert image.format == "PNG" and image.width > image.height


def test_summary_folder_is_replaced_whole(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for e in (1, 2):
        write_results(tmp_path, e, RATES)
    write_summary(load_results([1, 2]), tmp_path / "summary")
    write_summary(load_results([2]), tmp_path / "summary")  # a setting left train.epochs
    assert sorted(p.name for p in (tmp_path / "summary").iterdir()) == ["1"]
    assert json.loads((tmp_path / "summary/1/pth.json").read_text())["epochs"] == 2


def test_timings_from_two_machines_are_said_plainly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_results(tmp_path, 1, RATES)
    write_results(tmp_path, 2, RATES, machine={**MACHINE, "id": "other"})
    assert "more than one machine" in render_markdown(load_results([1, 2]))


def test_missing_setting_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_results(tmp_path, 1, RATES)
    with pytest.raises(PipelineError, match="e9/accuracy.json not found: run evaluate for 9 epochs first"):
        load_results([1, 9])
