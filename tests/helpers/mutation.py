"""`make mutate` (mutmut; stages/tools/mutate.py runs it): a plugin, named in `pytest_plugins` of
tests/conftest.py, and the builds the fixtures share with mutmut's passes."""

from __future__ import annotations

import gc
import io
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from helpers.project import ROOT

# While mutmut records which test reaches which function ("stats"), it reads its settings from
# the working directory, and processes started by the code under test (the crawl's pools, the
# training ranks) run in a test's temporary folder, where it cannot. Only this process's hits
# count, so the mode stays in this process (mutmut's process-local copy of it, which outlives
# the environment variable: its answer to tests that clear the environment) and those
# processes, which inherit the environment, run the plain code. tests/test_mutate.py pins that
# behaviour of mutmut's.
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


def under_mutmut() -> bool:
    """Whether mutmut runs these tests (`mutmut run`, in its process or one forked from it); not
    whether some module imported a part of mutmut (tests/test_mutate.py does)."""
    return "mutmut.__main__" in sys.modules


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


def pytest_collection_modifyitems(config, items) -> None:
    """Under `make mutate`, a mutant's own tests only (mutant_tests)."""
    if mutant := mutant_under_test():
        mutant_tests(config, items, mutant)


def pytest_collection_finish(session) -> None:
    """mutmut's fork server collects the tests once (importing torch, onnx and the rest, about
    900 MB), then forks a process per mutant. Python's garbage collector would walk all of those
    objects in each mutant's full collections and copy their memory pages (0.5 s of a trivial
    mutant's 0.65): frozen, it leaves them alone. mutmut freezes only what it had before the
    collection."""
    if under_mutmut():
        gc.freeze()


# Every mutant runs its tests in a fresh process, where building the tiny models (20 s) or
# running the export stage (8 s) would dwarf the tests. The unmutated code builds them once per
# run, in the passes mutmut makes before any mutant (stats, clean tests), into this folder, and
# mutant runs copy them: a mutant is judged by the tests that run its code in its own process.
# The export stage's output is the exception: rebuilt for each of the export module's mutants,
# since the checks of the exported files are what catches those. mutmut credits what a
# fixture's build reaches to the first test that asked for it only, so in its stats pass every
# test using such a fixture builds it once more (pytest_runtest_call).
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
    if under_mutmut() and not mutant:
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
