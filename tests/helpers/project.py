"""The tiny profile of the pipeline, commands run as a user would, and throwaway git+DVC projects."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from stages.tools.profiles import tiny

ROOT = Path(__file__).resolve().parents[2]


def tiny_params() -> dict:
    """params.yaml shrunk to seconds (stages/tools/profiles.py): 3 classes, 8 small images each, 64 px crops, epochs 1 and 2, one thread."""
    return tiny(yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")))


def params_file(folder: Path, params: dict) -> Path:
    """Write `params` as folder/params.yaml (UTF-8, keys in their order) and return its path."""
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command as a user would, with the venv's bin first on PATH (DVC stages call `python`)."""
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def make_project(dest: Path, params: dict) -> Path:
    """A fresh git + DVC repository holding this project's pipeline and the given params."""
    dest.mkdir(parents=True, exist_ok=True)
    for package in ("birds_onnx", "stages"):
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", dest)
    params_file(dest, params)
    run(["git", "init", "-q"], dest)
    run(["dvc", "init", "-q"], dest)
    shutil.copy(ROOT / ".dvcignore", dest)  # as here: a crawl source's folder dep leaves out __pycache__
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "pipeline"], dest)
    return dest


def copy_project(src: Path, dest: Path) -> None:
    """Copy a folder, its model weights (.pth, .onnx) hard-linked: the tests only read them, and
    the stages write a model file whole under a new name, never into an existing one."""
    def link_weights(s: str, d: str) -> None:
        if s.endswith((".pth", ".onnx")):
            os.link(s, d)
        else:
            shutil.copy2(s, d)

    shutil.copytree(src, dest, dirs_exist_ok=True, copy_function=link_weights)
