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
        accuracy = json.loads((tiny_project / f"metrics/e{epochs}/accuracy.json").read_text())
        speed = json.loads((tiny_project / f"metrics/e{epochs}/speed.json").read_text())
        assert set(accuracy) == set(speed) - {"threads", "required_img_per_s"} == {"pth", "onnx"}
        assert accuracy["onnx"]["agreement_with_pth"] == 1.0
        assert set(accuracy["pth"]["recall"]) == {"myna", "reed_warbler", "sunbird"}
        assert speed["onnx"]["article_img_per_s"] > 0
    assert "| onnx |" in (tiny_project / "metrics/report.md").read_text()

    status = run(["dvc", "status"], tiny_project)
    assert "up to date" in status.stdout, status.stdout
    again = run(["dvc", "repro"], tiny_project)
    assert "Data and pipelines are up to date" in again.stdout, again.stdout

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
        for fmt in ("pth", "onnx"):
            [confusion] = plots["data"][f"metrics/e{epochs}/confusion/{fmt}.csv"]
            assert len(confusion["content"]["data"]["values"]) == 6  # the tiny profile's test images
