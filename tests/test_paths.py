"""One home for paths: what stages/shared/paths.py names is what dvc.yaml declares, stage by stage.

Each stage's data deps and outs in dvc.yaml (code deps: tests/test_dvc_graph.py) must be exactly
the paths the stage's module takes from paths.py, for every setting of train.epochs, so a path
renamed in one place and not the other fails here, not in the next `dvc repro`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dvc.repo import Repo

from birds_onnx import deploy
from helpers.project import ROOT
from stages.shared import paths as p


def expected(stage: str, n: int | None) -> tuple[set[Path], set[Path]]:
    """(data deps, outs) of `stage` (of setting `n` for the per-setting ones), from paths.py."""
    data = {p.RAW_DIR, p.SPLIT_DIR}
    models = {p.model_path(n, fmt) for fmt in p.MODEL_FILES} if n else set()
    return {
        "crawl": (set(), {p.RAW_DIR, p.CRAWL_DIR}),
        "split": ({p.RAW_DIR}, {p.SPLIT_DIR}),
        "baseline": (data, {p.BASELINE_FILE}),
        "train": (data, {p.model_path(n, "pth"), p.training_dir(n) / "plots", p.training_dir(n) / "metrics.json"}),
        "export": (data | {p.model_path(n, "pth")}, models - {p.model_path(n, "pth")} | {p.export_file(n)}),
        "machine": (set(), {p.MACHINE_FILE}),
        "evaluate": (data | models | {p.MACHINE_FILE},
                     {p.results_dir(n) / "accuracy.json", p.results_dir(n) / "speed.json", p.results_dir(n) / "confusion"}),
        "report": ({p.SETTINGS_DIR}, {p.REPORT, p.DEPLOY_FILE, p.SUMMARY_DIR, p.SPEED_CHART, p.TRAINING_CHART}),
    }[stage]


def is_code(path: str) -> bool:
    """A module, or a folder of code (a crawl source's package): tests/test_dvc_graph.py checks those."""
    return path.endswith(".py") or path.split("/")[0] in ("stages", "birds_onnx")


def declared() -> list[tuple[str, int | None, set[Path], set[Path]]]:
    with Repo(str(ROOT)) as repo:
        stages = list(repo.index.stages)
    found = []
    for stage in stages:
        name, _, setting = stage.addressing.partition("@")
        deps = {Path(str(d.def_path)) for d in stage.deps if not hasattr(d, "params") and not is_code(str(d.def_path))}
        found.append((name, int(setting) if setting else None, deps, {Path(str(o.def_path)) for o in stage.outs}))
    return found


@pytest.mark.parametrize("stage, n, deps, outs", declared(), ids=lambda v: v if isinstance(v, str) else "")
def test_dvc_yaml_declares_the_paths_the_stage_uses(stage, n, deps, outs):
    assert (deps, outs) == expected(stage, n)


def test_every_setting_writes_under_the_folder_the_report_depends_on():
    """The report reads the curves and results of each setting through one dep (DVC cannot loop
    over settings in deps), so everything per setting it reads must be under that folder."""
    for read in (p.training_figure(20, "lr"), p.results_dir(20) / "accuracy.json", p.export_file(20)):
        assert p.SETTINGS_DIR in read.parents
    assert not any(p.SETTINGS_DIR in out.parents for out in expected("report", None)[1])  # else a cycle


def test_the_predictor_reads_the_file_the_report_writes():
    # birds_onnx is installed without stages/, so it names the file itself
    assert deploy.DEPLOY_FILE == p.DEPLOY_FILE
