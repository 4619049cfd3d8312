"""The Makefile works where a user puts the checkout, spaces in its path included."""

import os
import shutil
import sys

from helpers.project import ROOT, make_project, run, tiny_params


def test_make_repro_runs_in_a_path_with_spaces(tmp_path):
    project = make_project(tmp_path / "my birds" / "project two", tiny_params())
    shutil.copy(ROOT / "Makefile", project)
    # this test's virtual environment stands in for the one `make setup` builds, already set up:
    # its requirements are older than its stamp, so make installs nothing
    (project / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    assert (project / ".venv/.installed").is_file(), "run the tests from the venv that `make setup` made"
    for name in ("requirements.txt", "requirements.lock", "pyproject.toml"):
        shutil.copy(ROOT / name, project)
        os.utime(project / name, (0, 0))

    result = run(["make", "repro", "ARGS=split"], project)
    assert "split: 15 train, 6 test" in result.stdout and "Running stage 'train" not in result.stdout  # ARGS passed on
    assert (project / "data/split/train.csv").is_file()


def test_make_setup_builds_the_venv_in_a_path_with_spaces(tmp_path):
    """The real set-up recipe (venv, pip, the editable runtime package) on empty requirements
    files, so that it runs in seconds: what is under test is the recipe's quoting."""
    project = tmp_path / "my birds" / "checkout"
    shutil.copytree(ROOT / "birds_onnx", project / "birds_onnx", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Makefile", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project)
    for name in ("requirements.txt", "requirements.lock"):
        (project / name).write_text("# nothing: the runtime package's own needs are not installed either\n")
    run(["make", "setup", f"PYTHON={sys.executable}"], project)
    assert (project / ".venv/bin/birds-predict").is_file() and (project / ".venv/.installed").is_file()
