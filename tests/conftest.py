"""Shared test helpers: a tiny profile of the pipeline and a throwaway git+DVC project."""

from __future__ import annotations

import gc
import io
import locale
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from fake_bing import FakeBing
from stages.tools.profiles import tiny

ROOT = Path(__file__).resolve().parents[1]
# test-only decoders that hang, crash or raise, loaded into the crawl's workers through PLUGIN_ENV
NASTY_DECODERS = Path(__file__).with_name("nasty_decoders.py")

# `make mutate`: while mutmut records which test reaches which function ("stats"), it reads its
# settings from the working directory, and processes started by the code under test (the crawl's
# pools, the training ranks) run in a test's temporary folder, where it cannot. Only this
# process's hits count, so the mode stays in this process (mutmut's process-local copy of it,
# which outlives the environment variable: its answer to tests that clear the environment) and
# those processes, which inherit the environment, run the plain code. tests/test_mutate.py pins
# that behaviour of mutmut's.
STATS_PASS = os.environ.get("MUTANT_UNDER_TEST") == "stats"
if STATS_PASS:
    from mutmut.mutation.trampoline import set_mutant_under_test

    set_mutant_under_test("stats")
    del os.environ["MUTANT_UNDER_TEST"]

# mutmut ends a mutant's tests when they pass a limit of CPU time, or of wall time reckoned from
# its tests' own run times plus a constant (6 minutes for a crawl module's mutant). A mutant that
# leaves the crawl waiting on a hung decoder (its per-file timeout dropped) or a crawl that never
# ends uses no CPU and waits out the whole limit. So each test of a mutant (its setup, call and
# teardown) gets this much wall time, then the mutant's tests end as mutmut's own limit ends them
# (SIGXCPU: counted as a timeout, i.e. caught), their worker processes first. The slowest tests a
# mutant runs take about 4 s (the crawl of the nasty files; the export's fixture for an export
# mutant), so the limit leaves room for a busy machine twice as slow.
MUTANT_TEST_WALL_LIMIT_S = 60


def mutant_under_test() -> str:
    """The mutant whose tests this process runs under `make mutate` (stages.split.x_spread__mutmut_3),
    or "" (no mutmut, or one of its own passes: "stats", "fail", ...)."""
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    return mutant if "__mutmut_" in mutant else ""


def end_as_a_timeout() -> None:
    import psutil

    print(f"a test of this mutant still running after {MUTANT_TEST_WALL_LIMIT_S} s: ended as a timeout", file=sys.stderr, flush=True)
    for child in psutil.Process().children(recursive=True):
        child.kill()
    os.kill(os.getpid(), signal.SIGXCPU)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if not mutant_under_test():
        return (yield)
    timer = threading.Timer(MUTANT_TEST_WALL_LIMIT_S, end_as_a_timeout)
    timer.daemon = True
    timer.start()
    try:
        return (yield)
    finally:
        timer.cancel()


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


def copy_project(src: Path, dest: Path) -> None:
    """Copy a folder, its model weights (.pth, .onnx) hard-linked: the tests only read them, and
    the stages write a model file whole under a new name, never into an existing one."""
    def link_weights(s: str, d: str) -> None:
        if s.endswith((".pth", ".onnx")):
            os.link(s, d)
        else:
            shutil.copy2(s, d)

    shutil.copytree(src, dest, dirs_exist_ok=True, copy_function=link_weights)


# `make test` runs the modules in parallel (pytest-xdist: `-n auto --dist loadfile` in
# pyproject.toml), each module whole on one worker, so its shared pipeline is built once.
# Much of a tiny pipeline is one busy core (starting torch, DVC, torch.export), so two workers
# on two cores finish sooner than one. But each worker needs its own disk for the pipelines it
# holds at once: where that disk is short there are fewer workers, down to one.
DISK_PER_WORKER = 2 * 2**30


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: the hook exists where xdist is installed
def pytest_xdist_auto_num_workers(config) -> int | None:
    """`-n auto`: one worker per core this process may use, as many as the free disk allows.
    (PYTEST_XDIST_AUTO_NUM_WORKERS, if set, is left to pytest-xdist: it is the user's choice.)"""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return max(1, min(usable_cores(), temporary_disk_free(config) // DISK_PER_WORKER))


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pytest_collection_modifyitems(config, items) -> None:
    """The modules holding slow tests first: a long module handed to a worker last would run
    alone at the end while the other workers idle (pyproject.toml keeps xdist to this order).
    Under `make mutate`, a mutant's own tests only (mutant_tests)."""
    if mutant := mutant_under_test():
        mutant_tests(config, items, mutant)
        return
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)  # stable: file order kept


def pytest_collection_finish(session) -> None:
    """Under `make mutate`: mutmut's fork server collects the tests once (importing torch, onnx
    and the rest, about 900 MB), then forks a process per mutant. Python's garbage collector
    would walk all of those objects in each mutant's full collections and copy their memory
    pages (0.5 s of a trivial mutant's 0.65): frozen, it leaves them alone. mutmut freezes
    only what it had before the collection."""
    if "mutmut.__main__" in sys.modules:
        gc.freeze()


def temporary_disk_free(config) -> int:
    """Free bytes where pytest puts temporary folders."""
    basetemp = config.option.basetemp  # --basetemp: a folder pytest creates
    return shutil.disk_usage(Path(basetemp).resolve().parent if basetemp else tempfile.gettempdir()).free


def pytest_report_header(config) -> str:
    return (f"free disk for temporary files: {temporary_disk_free(config) / 2**30:.1f} GiB "
            f"(one test worker starts per {DISK_PER_WORKER / 2**30:.0f} GiB, up to one per core)")


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


# Under `make mutate` every mutant runs its tests in a fresh process, where building the tiny
# models (20 s) or running the export stage (8 s) would dwarf the tests. The unmutated
# code builds them once per run, in the passes mutmut makes before any mutant (stats, clean
# tests), into this folder, and mutant runs copy them: a mutant is judged by the tests that run
# its code in its own process. The export stage's output is the exception: rebuilt for each of
# the export module's mutants, since the checks of the exported files are what catches those.
# mutmut credits what a fixture's build reaches to the first test that asked for it only, so in
# its stats pass every test using such a fixture builds it once more (pytest_runtest_call).
MUTATION_CACHE = ROOT / ".mutation_cache"
REBUILT_FOR_MUTANTS_OF = {"exported": "stages.export."}  # fixture name -> the module whose mutants rebuild it
BUILDS: dict[str, object] = {}  # fixture name -> its build, run again for each test using it in the stats pass


def built_for_every_test(name: str, dest: Path, build):
    """build(dest) for the module- or session-scoped fixture `name`, whose build runs the code under
    test: in mutmut's stats pass each test using the fixture builds it once more (see above)."""
    BUILDS[name] = build
    return build(dest)


def built_once_per_mutation_run(name: str, dest: Path, build) -> None:
    """build(dest), or under mutmut a copy of the unmutated code's build (see above). `name` is
    the fixture's name."""
    mutant = mutant_under_test()
    cached = MUTATION_CACHE / name
    rebuilt_for_mutants_of = REBUILT_FOR_MUTANTS_OF.get(name, "")
    if mutant and cached.is_dir() and not (rebuilt_for_mutants_of and mutant.startswith(rebuilt_for_mutants_of)):
        shutil.copytree(cached, dest, dirs_exist_ok=True)
        return
    if rebuilt_for_mutants_of:
        BUILDS[name] = build
    build(dest)
    if "mutmut" in sys.modules and not mutant:
        shutil.rmtree(cached, ignore_errors=True)
        shutil.copytree(dest, cached)


def mutant_tests(config, items, mutant: str) -> None:
    """Of the tests mutmut runs for a mutant (every test that reached the mutated function), its
    module's own unit tests ([tool.mutate.unit_tests] in pyproject.toml; all of them for a module
    not listed), those that need no fixture rebuilt for this mutant first, so that a mutant the
    tests kill stops (-x) after the fewest seconds. None left: pytest's "no tests ran", which
    mutmut counts as "no tests"."""
    from stages.tools.mutate import is_in, mutate_config, unit_tests_of

    units = unit_tests_of(mutant, mutate_config(ROOT / "pyproject.toml"))
    if units is not None:
        kept = [item for item in items if any(is_in(item.nodeid, unit) for unit in units)]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept

    def rebuilds(item) -> bool:
        return any(mutant.startswith(module) for f, module in REBUILT_FOR_MUTANTS_OF.items() if f in item.fixturenames)

    items.sort(key=rebuilds)


def pytest_runtest_call(item) -> None:
    """In mutmut's stats pass: each test using a fixture whose build runs the code under test
    builds it once more, so that mutmut credits what the build reaches to the test."""
    if STATS_PASS:
        for name, build in BUILDS.items():
            if name in item.fixturenames:  # what the build prints is not the test's output
                with tempfile.TemporaryDirectory() as folder, redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                    build(Path(folder))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """An untrained 3-class ResNet50 at 64 px as model.pth, model.onnx and model.int8.onnx."""
    folder = tmp_path_factory.mktemp("models")
    built_once_per_mutation_run("tiny_models", folder, build_tiny_models)
    return {"pth": folder / "model.pth", "onnx": folder / "model.onnx", "onnx-int8": folder / "model.int8.onnx"}


def build_tiny_models(folder: Path) -> None:
    import torch

    from stages.export import export_onnx, metadata, quantize_int8
    from stages.shared.model import build_model, save_checkpoint
    from birds_onnx.preprocess import PreprocessSpec, preprocess_batch

    spec = PreprocessSpec(resize=72, crop=64)
    torch.manual_seed(0)
    model = build_model(len(TINY_CLASSES)).eval()
    save_checkpoint(folder / "model.pth", model, TINY_CLASSES, spec, epochs=1)
    export_onnx(model, TINY_CLASSES, spec, opset=18, dest=folder / "model.onnx")
    calibration = [photo(folder / f"calibration_{i}.jpg", (80 + 10 * i, 90), seed=i) for i in range(4)]
    quantize_int8(folder / "model.onnx", preprocess_batch(calibration, spec), "minmax", metadata(TINY_CLASSES, spec),
                  folder / "model.int8.onnx")


# The export and evaluate stages' tests (tests/test_stage_mains.py runs their main();
# tests/test_model_export.py checks the files export writes) run them on a smaller ResNet than
# the pipeline's: ResNet50's blocks, one per stage where ResNet50 has 3, 4, 6 and 3. The exporter
# and the quantiser meet the same operators in a quarter of the nodes: exporting and quantising
# it take 8 s where ResNet50 at the same 64 px takes 19 (and under `make mutate` each of export's
# mutants runs the stage again). The stages build their network with stages.shared.model.resnet50: while
# these tests run, it builds this one.
def stage_network(weights=None):
    from torchvision.models.resnet import Bottleneck, ResNet

    return ResNet(Bottleneck, [1, 1, 1, 1])


@contextmanager
def stages_on_the_stage_network() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("stages.shared.model.resnet50", stage_network)
        yield


@pytest.fixture
def on_the_stage_network() -> Iterator[None]:
    """For a test that loads the stage project's model.pth (TorchClassifier, evaluate)."""
    with stages_on_the_stage_network():
        yield


@pytest.fixture(scope="session")
def stage_project(tmp_path_factory) -> Path:
    """A project holding a split (bright training images, dark test images: calibrating on the
    wrong ones shows), an untrained 3-class stage network at 64 px as models/e1/model.pth, and
    what evaluate reads besides."""
    import json

    import torch

    from stages.shared.splits import Example, write_split
    from stages.shared.model import build_model, save_checkpoint
    from stages.shared.paths import TRAINING_FIGURES
    from birds_onnx.preprocess import PreprocessSpec

    root = tmp_path_factory.mktemp("stages")
    images = root / "data/raw"
    images.mkdir(parents=True)
    train, test = [], []
    for c, label in enumerate(TINY_CLASSES):
        for i in range(4):
            path = photo(images / f"{label}_{i}.jpg", (80 + 8 * i, 72), seed=10 * c + i)
            (train if i < 3 else test).append(Example(path.relative_to(root), label))
    for e in test:  # darken the test images
        (root / e.path).write_bytes(_darkened(root / e.path))
    params = tiny_params()
    params["export"]["int8"]["calibration_images"] = 6
    params["evaluate"]["formats"] = ["pth", "onnx", "onnx-int8"]
    params_file(root, params)
    write_split(root / "data/split/train.csv", train)
    write_split(root / "data/split/test.csv", test)
    torch.manual_seed(0)
    with stages_on_the_stage_network():
        model = build_model(len(TINY_CLASSES)).eval()
    save_checkpoint(root / "models/e1/model.pth", model, TINY_CLASSES, PreprocessSpec(resize=72, crop=64), epochs=1)
    (root / "metrics").mkdir()
    (root / "metrics/machine.json").write_text(json.dumps({"cpu": "test CPU", "logical_cpus": 2, "id": "test"}))
    history = root / "metrics/epochs/e1/train/plots/metrics"
    history.mkdir(parents=True)
    for figure in TRAINING_FIGURES:
        (history / f"{figure}.tsv").write_text(f"step\t{figure}\n1\t0.5\n")
    return root


def _darkened(path: Path) -> bytes:
    from io import BytesIO

    with Image.open(path) as img:
        out = BytesIO()
        Image.fromarray((np.asarray(img) // 4).astype(np.uint8)).save(out, "JPEG", quality=95)
        return out.getvalue()


@pytest.fixture(scope="session")
def exported(stage_project, tmp_path_factory) -> Path:
    """A copy of the project after `python -m stages.export --epochs 1`, run in this process."""
    from stages import export

    def run_export(root: Path) -> None:
        copy_project(stage_project, root)
        with pytest.MonkeyPatch.context() as mp, stages_on_the_stage_network():
            mp.chdir(root)
            mp.setattr("sys.argv", ["export", "--epochs", "1"])
            export.main()

    root = tmp_path_factory.mktemp("exported")
    built_once_per_mutation_run("exported", root, run_export)
    return root


@pytest.fixture(scope="session")
def converted(exported, tmp_path_factory) -> Path:
    """A copy of the project after the export: evaluate's inputs (its tests write into it, and
    `exported` stays as the export left it)."""
    root = tmp_path_factory.mktemp("converted")
    copy_project(exported, root)
    return root
