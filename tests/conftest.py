"""The suite's fixtures. What the tests share besides is in tests/helpers/ (helpers/__init__.py
lists it); how the suite runs (workers, order) and `make mutate`'s hooks are plugins there."""

from __future__ import annotations

import locale
import shutil
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

pytest.register_assert_rewrite("helpers")  # their asserts report as the tests' own do: before they are imported

from helpers.fake_bing import FakeBing  # noqa: E402
from helpers.models import build_stage_project, build_tiny_models, export_stage_project, stages_on_the_stage_network  # noqa: E402
from helpers.mutation import built_once_per_mutation_run  # noqa: E402
from helpers.project import copy_project, make_project, tiny_params  # noqa: E402

pytest_plugins = ["helpers.mutation", "helpers.ordering"]  # `make mutate`'s hooks; the worker count and the modules' order


@pytest.fixture
def tiny_project(tmp_path) -> Path:
    return make_project(tmp_path / "project", tiny_params())


# Disk: every copy of the ResNet50 weights is about 100 MB, and a tiny pipeline holds several
# twice over (DVC's cache and the workspace). Kept to the session's end, as pytest keeps every
# temporary folder by default, they added up to 4 GB and filled a CI machine's disk. So each
# test's tmp_path goes when the test passes (tmp_path_retention_policy in pyproject.toml), a
# module's shared folder when the module's tests all passed, and copies of a model are links.
@pytest.fixture(scope="module")
def module_tmp_path(request, tmp_path_factory) -> Iterator[Path]:
    """A temporary folder for a test module's shared fixtures, removed after the module's last
    test unless one of its tests failed (kept, like a failed test's tmp_path, to be looked at)."""
    folder = tmp_path_factory.mktemp(request.module.__name__)
    failed_before = request.session.testsfailed
    yield folder
    if request.session.testsfailed == failed_before:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def ascii_locale():
    """Python's default text encoding made the C locale's ASCII, as on a machine without a UTF-8
    locale: a file read or written without an explicit encoding breaks on non-ASCII text. (Where
    Python runs in UTF-8 mode its default stays UTF-8, and this changes nothing.)"""
    saved = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    yield
    locale.setlocale(locale.LC_CTYPE, saved)


@pytest.fixture
def fake_bing():
    """A fake Bing image search on 127.0.0.1 (tests/helpers/fake_bing.py); add results with .add()."""
    server = FakeBing()
    yield server
    server.close()


# Built once per session (under `make mutate`, once per mutation run: helpers/mutation.py).
@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """An untrained 3-class ResNet50 at 64 px as model.pth, model.onnx and model.int8.onnx."""
    folder = tmp_path_factory.mktemp("models")
    built_once_per_mutation_run("tiny_models", folder, build_tiny_models)
    return {"pth": folder / "model.pth", "onnx": folder / "model.onnx", "onnx-int8": folder / "model.int8.onnx"}


@pytest.fixture
def on_the_stage_network() -> Iterator[None]:
    """For a test that loads the stage project's model.pth (TorchClassifier, evaluate): the
    stages build the small stage network of helpers/models.py."""
    with stages_on_the_stage_network():
        yield


@pytest.fixture(scope="session")
def stage_project(tmp_path_factory) -> Path:
    """A project holding a split (bright training images, dark test images), an untrained 3-class
    stage network at 64 px as models/e1/model.pth, and what evaluate reads besides."""
    root = tmp_path_factory.mktemp("stages")
    build_stage_project(root)
    return root


@pytest.fixture(scope="session")
def exported(stage_project, tmp_path_factory) -> Path:
    """A copy of the project after `python -m stages.export --epochs 1`, run in this process."""
    root = tmp_path_factory.mktemp("exported")
    built_once_per_mutation_run("exported", root, partial(export_stage_project, stage_project))
    return root


@pytest.fixture(scope="session")
def converted(exported, tmp_path_factory) -> Path:
    """A copy of the project after the export: evaluate's inputs (its tests write into it, and
    `exported` stays as the export left it)."""
    root = tmp_path_factory.mktemp("converted")
    copy_project(exported, root)
    return root
