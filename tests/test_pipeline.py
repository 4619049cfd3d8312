"""The real `dvc repro` on the tiny profile, in a throwaway git+DVC repository."""

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from helpers.fake_bing import Served
from helpers.images import encode, picture
from helpers.project import make_project, run, tiny_params

pytestmark = pytest.mark.slow


FORMATS = {"pth", "onnx", "onnx-int8", "openvino", "openvino-int8"}


@pytest.fixture(scope="module")
def project(module_tmp_path):
    """One tiny pipeline of three settings, run and its results committed, shared by the tests
    below (each whole pipeline costs a minute or more). Each test runs alone and in any order:
    each leaves the pipeline up to date, and the experiments run in a clone of it."""
    params = tiny_params()
    params["train"]["epochs"] = [1, 2, 3]  # any number of settings: nothing in dvc.yaml names them
    project = make_project(module_tmp_path / "project", params)
    run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)  # dvc.lock and the metrics (cache: false)
    run(["git", "commit", "-q", "-m", "results"], project)
    return project


def evaluated(project: Path, epochs: int, fmt: str) -> dict:
    """A format's headline as the report stage must write it (metrics/summary/<n>/<format>.json,
    `deploy` aside): the figures evaluate wrote for the setting of `epochs`."""
    results = project / f"metrics/epochs/e{epochs}/evaluate"
    accuracy = json.loads((results / "accuracy.json").read_text())[fmt]
    speed = json.loads((results / "speed.json").read_text())[fmt]
    return {"epochs": epochs, "accuracy": accuracy["accuracy"], "agreement": accuracy["agreement_with_pth"],
            "img_s": speed["article_img_per_s"], "model_img_s": speed["img_per_s_batch1"],
            "stream_img_s": speed["streaming_img_per_s"]}


def share_right(confusion: Path) -> float:
    """The share of the rows of evaluate's confusion csv (one per test image) predicted right."""
    rows = list(csv.DictReader(confusion.open(encoding="utf-8")))
    return round(sum(r["actual"] == r["predicted"] for r in rows) / len(rows), 6)


def test_timings_come_from_the_machine_that_ran_the_pipeline(project):
    # the results as committed from another machine: the same models, another machine.json
    reference = json.loads((project / "metrics/machine.json").read_text()) | {"cpu": "Reference CPU", "id": "reference"}
    (project / "metrics/machine.json").write_text(json.dumps(reference))
    run(["dvc", "commit", "--force", "machine", "evaluate@1"], project)
    assert "up to date" in run(["dvc", "status", "evaluate@1"], project).stdout

    # what `make repro` does on this machine: the machine stage first, then the pipeline
    run(["dvc", "repro", "--force", "--single-item", "machine"], project)
    repro = run(["dvc", "repro", "evaluate@1"], project)
    assert "Running stage 'evaluate@1'" in repro.stdout
    speed = json.loads((project / "metrics/epochs/e1/evaluate/speed.json").read_text())
    assert speed["measured_on"]["id"] != "reference"
    assert "Stage 'train@1' didn't change" in repro.stdout  # only the timings are measured again

    # and on the same machine, the forced machine stage changes nothing
    run(["dvc", "repro", "--force", "--single-item", "machine"], project)
    again = run(["dvc", "repro", "evaluate@1"], project)
    assert "Data and pipelines are up to date" in again.stdout, again.stdout
    run(["dvc", "repro"], project)  # the report of the new evaluate@1


def test_dvc_repro_end_to_end_with_three_settings(project):
    for epochs in (1, 2, 3):
        assert (project / f"models/e{epochs}/model.pth").is_file()
        assert (project / f"models/e{epochs}/model.onnx").is_file()
        assert (project / f"models/e{epochs}/model.int8.onnx").is_file()
        results = project / f"metrics/epochs/e{epochs}/evaluate"
        accuracy = json.loads((results / "accuracy.json").read_text())
        speed = json.loads((results / "speed.json").read_text())
        export = json.loads((project / f"metrics/epochs/e{epochs}/export.json").read_text())
        assert set(accuracy) == set(speed) - {"threads", "batch_size", "required_img_per_s", "measured_on"} == FORMATS
        assert set(export) == {"onnx", "onnx-int8"}
        calibration = export["onnx-int8"]["calibration"]  # tried in turn on the 9 training images not calibrated on
        assert calibration["method"] in calibration["agreement_with_fp32"] and calibration["held_out_images"] == 9
        assert accuracy["onnx"]["agreement_with_pth"] == 1.0
        ran_in = {fmt: a["precision"] for fmt, a in accuracy.items()}
        assert ran_in == {"pth": "fp32", "onnx": "fp32", "onnx-int8": "int8", "openvino": ran_in["openvino"], "openvino-int8": "int8"}
        assert ran_in["openvino"] in ("fp32", "bf16")  # bf16 only on a CPU that computes it natively
        assert {fmt: a["provider"] for fmt, a in accuracy.items()} == {
            "pth": "torch CPU", "onnx": "CPUExecutionProvider", "onnx-int8": "CPUExecutionProvider",
            "openvino": "OpenVINO CPU", "openvino-int8": "OpenVINO CPU"}
        if ran_in["openvino"] == "fp32":
            assert accuracy["openvino"]["agreement_with_pth"] == 1.0
        assert set(accuracy["pth"]["recall"]) == {"myna", "reed_warbler", "sunbird"}
        assert accuracy["onnx-int8"]["size_mb"] < 0.3 * accuracy["onnx"]["size_mb"]
        for fmt in FORMATS:  # evaluate's accuracy is its own predictions' (a row per test image)
            assert accuracy[fmt]["accuracy"] == share_right(results / f"confusion/{fmt}.csv"), fmt
        assert speed["measured_on"]["id"] == json.loads((project / "metrics/machine.json").read_text())["id"]
        history = list(csv.DictReader((project / f"metrics/epochs/e{epochs}/train/plots/metrics/test_acc.tsv").open(), delimiter="\t"))
        assert [int(r["step"]) for r in history] == list(range(1, epochs + 1))
    report = (project / "metrics/report.md").read_text()
    assert [line for line in report.splitlines() if line.startswith("## ")] == [f"## Trained for {e} epochs" for e in (1, 2, 3)]
    for epochs, section in zip((1, 2, 3), report.split("## Trained for ")[1:]):
        for fmt in FORMATS:  # each setting's table row: evaluate's figures of that setting
            figures = evaluated(project, epochs, fmt)
            row = f"| {fmt} | {figures['accuracy']:.3f} | {figures['agreement']:.1%} | {figures['img_s']:.2f} |"
            assert row in section, (row, section)

    status = run(["dvc", "status"], project)
    assert "up to date" in status.stdout, status.stdout
    again = run(["dvc", "repro"], project)
    assert "Data and pipelines are up to date" in again.stdout, again.stdout

    bench = run(["python", "-m", "stages.tools.bench", "--warmup", "0", "--runs", "2", "--rounds", "1", "--folder-images", "3"], project)
    assert "models: the pipeline's models/e3/" in bench.stdout

    # the default `dvc metrics show`: the headline only, one row per setting and format, in a terminal's width
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    files = next(iter(shown.values()))["data"]
    assert set(files) == {f"metrics/summary/{n}/{fmt}.json" for n in (1, 2, 3) for fmt in FORMATS}
    for n, epochs in enumerate((1, 2, 3), 1):
        for fmt in FORMATS:  # the headline is what evaluate measured for that setting
            headline = files[f"metrics/summary/{n}/{fmt}.json"]["data"]
            assert {k: v for k, v in headline.items() if k != "deploy"} == evaluated(project, epochs, fmt), (n, fmt)
    # the format to deploy: flagged in the headline, named at the head of the report and in
    # metrics/deploy.json, and run by `birds-predict --runtime auto` (or refused with why: pth or none)
    deploy = json.loads((project / "metrics/deploy.json").read_text())
    image = next((project / "data/raw").rglob("*.jpg"))
    for n, epochs in enumerate((1, 2, 3), 1):
        chosen = deploy[str(epochs)]
        flagged = [fmt for fmt in sorted(FORMATS) if files[f"metrics/summary/{n}/{fmt}.json"]["data"]["deploy"]]
        assert flagged == ([chosen["format"]] if chosen["format"] else [])
        assert f"Deploy on this machine ({epochs} epochs): {chosen['line']}" in report
        predicted = run(["birds-predict", "--runtime", "auto", f"models/e{epochs}", str(image)], project, check=False)
        assert predicted.returncode == (0 if chosen["model"] else 2), predicted.stderr
    table = run(["dvc", "metrics", "show"], project).stdout
    print(table)
    assert max(len(line) for line in table.splitlines()) <= 120
    # the details are an explicit target away
    detail = json.loads(run(["dvc", "metrics", "show", "--json", "metrics/epochs/e1/export.json"], project).stdout)
    assert "onnx-int8" in next(iter(detail.values()))["data"]["metrics/epochs/e1/export.json"]["data"]

    # plots: a confusion matrix per setting and format, every setting's training curves and the speeds as images
    plots = json.loads(run(["dvc", "plots", "show", "--json"], project).stdout)
    assert not plots.get("errors"), plots["errors"]
    for epochs in (1, 2, 3):
        for fmt in FORMATS:
            [confusion] = plots["data"][f"metrics/epochs/e{epochs}/evaluate/confusion/{fmt}.csv"]
            assert len(confusion["content"]["data"]["values"]) == 6  # the tiny profile's test images
    assert {"metrics/training.png", "metrics/speed.png"} <= set(plots["data"])


def test_one_setting_and_dvc_metrics_diff_between_settings(project, tmp_path):
    # the experiments change the workspace: they run in a clone of the committed results, on the same DVC cache
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    run(["dvc", "cache", "dir", "--local", str(project / ".dvc/cache")], clone)
    run(["dvc", "checkout"], clone)

    # README's command: one experiment per setting, then `dvc metrics diff` between them
    run(["dvc", "exp", "run", "-n", "e1", "-S", "train.epochs=[1]"], clone)
    assert (clone / "metrics/report.md").read_text().count("## Trained for") == 1
    assert sorted(p.name for p in (clone / "metrics/summary").iterdir()) == ["1"]
    old = {fmt: evaluated(clone, 1, fmt) for fmt in FORMATS}  # what evaluate wrote in experiment e1
    run(["dvc", "exp", "run", "-n", "e2", "-S", "train.epochs=[2]"], clone)
    new = {fmt: evaluated(clone, 2, fmt) for fmt in FORMATS}
    diff = json.loads(run(["dvc", "metrics", "diff", "e1", "e2", "--all", "--json"], clone).stdout)
    print(run(["dvc", "metrics", "diff", "e1", "e2", "--all"], clone).stdout)
    assert set(diff) == {f"metrics/summary/1/{fmt}.json" for fmt in FORMATS}
    for fmt in FORMATS:
        figures = diff[f"metrics/summary/1/{fmt}.json"]
        assert figures["epochs"] == {"old": 1, "new": 2, "diff": 1}
        for key in ("accuracy", "agreement", "img_s", "model_img_s", "stream_img_s"):
            assert figures[key]["diff"] == pytest.approx(figures[key]["new"] - figures[key]["old"], abs=1e-4)
        # each side is the headline of its experiment: evaluate's figures of 1 and of 2 epochs
        assert {key: figures[key]["old"] for key in figures if key != "deploy"} == old[fmt], fmt
        assert {key: figures[key]["new"] for key in figures if key != "deploy"} == new[fmt], fmt


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

    # crawl and split: what follows the split is the same for any source (the tests above)
    repro = run(["dvc", "repro", "split"], project)

    print(repro.stdout)  # the crawl summary, for `pytest -s`
    raw = project / "data/raw"
    rows = list(csv.DictReader((project / "data/crawl/manifest.csv").open(encoding="utf-8")))
    assert Counter(r["class"] for r in rows) == {"myna": 8, "reed_warbler": 9, "sunbird": 9}
    assert all(hashlib.sha256((raw / r["path"]).read_bytes()).hexdigest() == r["sha256"] for r in rows)
    assert all(r["source"] == "bing" and r["url"].startswith(fake_bing.base) for r in rows)
    rejects = list(csv.DictReader((project / "data/crawl/rejects.csv").open(encoding="utf-8")))
    assert Counter(r["reason"] for r in rejects) == {"fetch_failed": 1, "not_an_image": 1, "in_several_classes": 2}
    train = (project / "data/split/train.csv").read_text(encoding="utf-8").splitlines()
    assert len(train) == 1 + params["split"]["train"]
    assert "up to date" in run(["dvc", "status", "split"], project).stdout
