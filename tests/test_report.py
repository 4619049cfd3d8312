"""The report: one row per format and setting with speed-ups and the requirement, and a chart."""

import json

from PIL import Image

from stages.report import load_results, plot_speeds, render_markdown


def results_for(epochs: int, img_per_s: dict[str, float]) -> tuple[dict, dict]:
    accuracy = {f: {"accuracy": 0.9, "agreement_with_pth": 1.0, "recall": {}, "size_mb": 94.0} for f in img_per_s}
    speed = {"threads": 2, "batch_size": 8, "required_img_per_s": 5.0}
    for fmt, rate in img_per_s.items():
        speed[fmt] = {
            "article_img_per_s": rate, "img_per_s_batch1": 2 * rate, "img_per_s_batch8": 3 * rate,
            "streaming_img_per_s": 2.7 * rate,
            "latency_ms_median": 1000 / (2 * rate), "latency_ms_p90": 1100 / (2 * rate),
            "meets_requirement": rate >= 5.0,
        }
    return accuracy, speed


def test_report_has_a_row_per_format_with_speed_up_and_requirement(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for epochs, rates in ((20, {"pth": 4.0, "onnx": 8.0, "onnx-int8": 24.0}), (50, {"pth": 5.0, "onnx": 10.0, "onnx-int8": 40.0})):
        accuracy, speed = results_for(epochs, rates)
        (tmp_path / f"metrics/e{epochs}").mkdir(parents=True)
        (tmp_path / f"metrics/e{epochs}/accuracy.json").write_text(json.dumps(accuracy))
        (tmp_path / f"metrics/e{epochs}/speed.json").write_text(json.dumps(speed))
    markdown = render_markdown(load_results([20, 50]))
    rows = [line.split(" | ") for line in markdown.splitlines() if line.startswith("| pth") or line.startswith("| onnx")]
    assert [r[0] for r in rows] == ["| pth", "| onnx", "| onnx-int8"] * 2
    header = next(line for line in markdown.splitlines() if line.startswith("| format")).split(" | ")
    speed_up, meets = header.index("speed-up vs pth"), header.index(">= 5 img/s |")
    assert [r[speed_up] for r in rows] == ["1.00x", "2.00x", "6.00x", "1.00x", "2.00x", "8.00x"]
    assert [r[meets] for r in rows] == ["no |", "yes |", "yes |", "yes |", "yes |", "yes |"]
    assert markdown.count("## Trained for") == 2


def test_chart_is_a_png(tmp_path):
    results = {20: results_for(20, {"pth": 4.0, "onnx": 8.0, "onnx-int8": 24.0})}
    plot_speeds(results, tmp_path / "speed.png")
    with Image.open(tmp_path / "speed.png") as chart:
        assert chart.format == "PNG" and chart.width > chart.height
