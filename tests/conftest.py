"""Shared test helpers: a tiny profile of the pipeline and a throwaway git+DVC project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from fake_bing import FakeBing
from stages.tools.profiles import tiny

ROOT = Path(__file__).resolve().parents[1]

# `make mutate`: while mutmut records which test reaches which function ("stats"), it reads its
# settings from the working directory, and processes started by the code under test (the crawl's
# pools) run in a test's temporary folder, where it cannot. Only this process's hits count, so
# the mode stays in this process (mutmut's process-local copy of it) and those workers, which
# inherit the environment, run the plain code.
if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    import mutmut.mutation.trampoline

    mutmut.mutation.trampoline._mutant_under_test = os.environ.pop("MUTANT_UNDER_TEST")


def tiny_params() -> dict:
    """params.yaml shrunk to seconds (stages/tools/profiles.py): 3 classes, 8 small images each, 64 px crops, epochs 1 and 2."""
    return tiny(yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8")))


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
    (dest / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
    run(["git", "init", "-q"], dest)
    run(["dvc", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "pipeline"], dest)
    return dest


@pytest.fixture
def tiny_project(tmp_path) -> Path:
    return make_project(tmp_path / "project", tiny_params())


@pytest.fixture
def fake_bing():
    """A fake Bing image search on 127.0.0.1 (tests/fake_bing.py); add results with .add()."""
    server = FakeBing()
    yield server
    server.close()


# A small model shared by the model, export, predictor and benchmark tests: exporting and
# quantising ResNet50 takes seconds, so it is done once per session.
TINY_CLASSES = ["myna", "crow", "gull"]


def photo(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """A JPEG with detail everywhere (gradients and noise), so that resampling differences show."""
    w, h = size
    rng = np.random.default_rng(seed)
    pixels = np.linspace(0, 200, w)[None, :, None] + np.linspace(0, 50, h)[:, None, None] + rng.integers(0, 6, (h, w, 3))
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=95)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """An untrained 3-class ResNet50 at 64 px as model.pth, model.onnx and model.int8.onnx."""
    import torch

    from stages.export import export_onnx, metadata, quantize_int8
    from stages.model import build_model, save_checkpoint
    from birds_onnx.preprocess import PreprocessSpec, preprocess_batch

    folder = tmp_path_factory.mktemp("models")
    spec = PreprocessSpec(resize=72, crop=64)
    torch.manual_seed(0)
    model = build_model(len(TINY_CLASSES)).eval()
    paths = {"pth": folder / "model.pth", "onnx": folder / "model.onnx", "onnx-int8": folder / "model.int8.onnx"}
    save_checkpoint(paths["pth"], model, TINY_CLASSES, spec, epochs=1)
    export_onnx(model, TINY_CLASSES, spec, opset=18, dest=paths["onnx"])
    calibration = [photo(folder / f"calibration_{i}.jpg", (80 + 10 * i, 90), seed=i) for i in range(4)]
    quantize_int8(paths["onnx"], preprocess_batch(calibration, spec), "minmax", metadata(TINY_CLASSES, spec), paths["onnx-int8"])
    return paths
