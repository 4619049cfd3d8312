"""The real `dvc repro` on the tiny profile, in a throwaway git+DVC repository."""

import json

import pytest

from conftest import run

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
        formats = {"pth", "onnx", "onnx-int8"}
        assert set(accuracy) == set(speed) - {"threads", "batch_size", "required_img_per_s"} == formats
        assert set(export) == formats - {"pth"}
        assert accuracy["onnx"]["agreement_with_pth"] == 1.0
        assert set(accuracy["pth"]["recall"]) == {"myna", "reed_warbler", "sunbird"}
        assert accuracy["onnx-int8"]["size_mb"] < 0.3 * accuracy["onnx"]["size_mb"]
        assert speed["onnx-int8"]["article_img_per_s"] > 0
    report = (tiny_project / "metrics/report.md").read_text()
    assert all(f"| {fmt} |" in report for fmt in formats)

    status = run(["dvc", "status"], tiny_project)
    assert "up to date" in status.stdout, status.stdout
    again = run(["dvc", "repro"], tiny_project)
    assert "Data and pipelines are up to date" in again.stdout, again.stdout

    bench = run(["python", "-m", "stages.bench", "--warmup", "0", "--runs", "2", "--rounds", "1"], tiny_project)
    assert "models: the pipeline's models/e2/" in bench.stdout

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], tiny_project).stdout)
    files = next(iter(shown.values()))["data"]
    assert {"metrics/e1/accuracy.json", "metrics/e2/accuracy.json"} <= set(files)
