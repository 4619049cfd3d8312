"""The real `dvc repro` on the tiny profile, in a throwaway git+DVC repository."""

import csv
import hashlib
import json
from collections import Counter

import pytest

from conftest import make_project, run, tiny_params
from fake_bing import Served, encode, picture

pytestmark = pytest.mark.slow


def test_dvc_repro_end_to_end(tiny_project):
    run(["dvc", "repro"], tiny_project)

    for epochs in (1, 2):
        assert (tiny_project / f"models/e{epochs}/model.pth").is_file()
        assert (tiny_project / f"models/e{epochs}/model.onnx").is_file()
        assert (tiny_project / f"models/e{epochs}/model.int8.onnx").is_file()
        accuracy = json.loads((tiny_project / f"metrics/e{epochs}/accuracy.json").read_text())
        speed = json.loads((tiny_project / f"metrics/e{epochs}/speed.json").read_text())
        export = json.loads((tiny_project / f"metrics/e{epochs}/export.json").read_text())
        formats = {"pth", "onnx", "onnx-int8", "openvino", "openvino-int8"}
        assert set(accuracy) == set(speed) - {"threads", "batch_size", "required_img_per_s"} == formats
        assert set(export) == {"onnx", "onnx-int8"}
        assert accuracy["onnx"]["agreement_with_pth"] == 1.0
        ran_in = {fmt: a["precision"] for fmt, a in accuracy.items()}
        assert ran_in == {"pth": "fp32", "onnx": "fp32", "onnx-int8": "int8", "openvino": ran_in["openvino"], "openvino-int8": "int8"}
        assert ran_in["openvino"] in ("fp32", "bf16")  # bf16 only on a CPU that computes it natively
        if ran_in["openvino"] == "fp32":
            assert accuracy["openvino"]["agreement_with_pth"] == 1.0
        assert set(accuracy["pth"]["recall"]) == {"myna", "reed_warbler", "sunbird"}
        assert accuracy["onnx-int8"]["size_mb"] < 0.3 * accuracy["onnx"]["size_mb"]
        assert speed["onnx-int8"]["article_img_per_s"] > 0
    report = (tiny_project / "metrics/report.md").read_text()
    assert all(f"| {fmt} |" in report for fmt in formats)

    status = run(["dvc", "status"], tiny_project)
    assert "up to date" in status.stdout, status.stdout
    again = run(["dvc", "repro"], tiny_project)
    assert "Data and pipelines are up to date" in again.stdout, again.stdout

    bench = run(["python", "-m", "stages.tools.bench", "--warmup", "0", "--runs", "2", "--rounds", "1"], tiny_project)
    assert "models: the pipeline's models/e2/" in bench.stdout

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], tiny_project).stdout)
    files = next(iter(shown.values()))["data"]
    assert {"metrics/e1/accuracy.json", "metrics/e2/accuracy.json"} <= set(files)

    # training curves of both settings on one chart each, and a confusion matrix per format
    plots = json.loads(run(["dvc", "plots", "show", "--json"], tiny_project).stdout)
    assert not plots.get("errors"), plots["errors"]
    for chart, metrics in {"training loss": ["train_loss"], "accuracy": ["train_acc", "test_acc"], "learning rate": ["lr"]}.items():
        [rendered] = plots["data"][chart]
        points = rendered["content"]["data"]["values"]
        for epochs in (1, 2):
            for metric in metrics:
                steps = [p["step"] for p in points if p.get(metric) is not None and f"e{epochs}/" in str(p)]
                assert steps == [str(s) for s in range(1, epochs + 1)], (chart, epochs, metric, steps)
    for epochs in (1, 2):
        for fmt in formats:
            [confusion] = plots["data"][f"metrics/e{epochs}/confusion/{fmt}.csv"]
            assert len(confusion["content"]["data"]["values"]) == 6  # the tiny profile's test images


def test_dvc_repro_with_the_bing_source_against_a_fake_server(tmp_path, fake_bing):
    params = tiny_params()
    params["crawl"].update(source="bing", bing={"max_num": 12, "endpoint": fake_bing.endpoint, "retries": 1})
    keywords = [c["keyword"] for c in params["classes"]]
    for k, (c, keyword) in enumerate(zip(params["classes"], keywords)):
        for i in range(9):
            fake_bing.add(keyword, f"{c['slug']}{i}.jpg", Served(encode(picture(10 * k + i, (96, 72)))))
    fake_bing.add(keywords[0], "gone.jpg", Served(status=404))
    fake_bing.add(keywords[1], "page.jpg", Served(b"<!DOCTYPE html><html><body>Sign in</body></html>", "text/html"))
    fake_bing.add(keywords[2], "myna0.jpg")  # the first myna image is a sunbird result too
    project = make_project(tmp_path / "project", params)

    repro = run(["dvc", "repro"], project)

    print(repro.stdout)  # the crawl summary, for `pytest -s`
    raw = project / "data/raw"
    rows = list(csv.DictReader((raw / "manifest.csv").open(encoding="utf-8")))
    assert Counter(r["class"] for r in rows) == {"myna": 8, "reed_warbler": 9, "sunbird": 9}
    assert all(hashlib.sha256((raw / r["path"]).read_bytes()).hexdigest() == r["sha256"] for r in rows)
    assert all(r["source"] == "bing" and r["url"].startswith(fake_bing.base) for r in rows)
    rejects = list(csv.DictReader((raw / "rejects.csv").open(encoding="utf-8")))
    assert Counter(r["reason"] for r in rejects) == {"fetch_failed": 1, "not_an_image": 1, "in_several_classes": 2}
    assert "| onnx |" in (project / "metrics/report.md").read_text()
    assert "up to date" in run(["dvc", "status"], project).stdout
