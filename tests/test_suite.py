"""How `make test` runs the suite: in parallel workers, as many as the cores and the disk allow,
the modules with slow tests handed out first (tests/helpers/ordering.py); which tests a mutant
runs under `make mutate` (tests/helpers/mutation.py); and that test modules share fixtures and
helpers only, never each other's code."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

from helpers import mutation, ordering
from helpers.code import imported_modules

TESTS = Path(__file__).parent


def test_one_worker_per_core_or_fewer_where_the_disk_is_short(monkeypatch, pytestconfig):
    cores = ordering.usable_cores()
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    for free_gib, workers in ((1000, cores), (4.5, min(2, cores)), (3, 1), (0.001, 1)):
        monkeypatch.setattr(ordering, "temporary_disk_free", lambda config: free_gib * 2**30)
        assert ordering.pytest_xdist_auto_num_workers(pytestconfig) == workers, free_gib
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "5")  # the user's choice: pytest-xdist reads it
    assert ordering.pytest_xdist_auto_num_workers(pytestconfig) is None


def test_modules_holding_slow_tests_come_first_each_in_its_own_order():
    def item(module: str, name: str, slow: bool = False):
        return SimpleNamespace(module=SimpleNamespace(__name__=module), name=name,
                               get_closest_marker=lambda marker: marker == "slow" and slow or None)

    items = [item("test_a", "a1"), item("test_b", "b1"), item("test_b", "b2", slow=True), item("test_c", "c1"),
             item("test_d", "d1", slow=True), item("test_d", "d2")]
    ordering.pytest_collection_modifyitems(None, items)
    assert [i.name for i in items] == ["b1", "b2", "d1", "d2", "a1", "c1"]


def test_a_mutant_runs_its_modules_unit_tests_those_rebuilding_a_fixture_for_it_last():
    def item(nodeid: str, *fixtures: str):
        return SimpleNamespace(nodeid=nodeid, fixturenames=list(fixtures))

    deselected = []
    config = SimpleNamespace(hook=SimpleNamespace(pytest_deselected=lambda items: deselected.extend(items)))
    tests = [item("tests/test_model_export.py::test_reads_export", "exported"), item("tests/test_pipeline.py::test_dvc_repro"),
             item("tests/test_stage_mains.py::test_main"), item("tests/test_model_export.py::test_round_trip", "tmp_path")]
    items = list(tests)
    mutation.mutant_tests(config, items, "stages.export.x_main__mutmut_7")  # pyproject.toml: test_model_export, test_stage_mains
    assert [i.nodeid for i in items] == ["tests/test_stage_mains.py::test_main", "tests/test_model_export.py::test_round_trip",
                                         "tests/test_model_export.py::test_reads_export"]  # export's mutant: rebuilt last
    assert [i.nodeid for i in deselected] == ["tests/test_pipeline.py::test_dvc_repro"]
    items = list(tests)
    mutation.mutant_tests(config, items, "stages.report.x_table__mutmut_7")
    assert items == []  # none of report's unit tests: mutmut counts the mutant as "no tests"
    items = [item("tests/test_model_export.py::test_reads_export", "exported"), item("tests/test_x.py::test_y")]
    mutation.mutant_tests(config, items, "stages.shared.paths.x_model_dir__mutmut_1")  # a module naming no unit tests keeps them all
    assert [i.nodeid for i in items] == ["tests/test_model_export.py::test_reads_export", "tests/test_x.py::test_y"]


def test_only_a_mutants_own_process_counts_as_one_under_mutation_testing(monkeypatch):
    for mode, mutant in (("stats", ""), ("fail", ""), ("list_all_tests", ""), ("stages.split.x_spread__mutmut_3", "stages.split.x_spread__mutmut_3")):
        monkeypatch.setenv("MUTANT_UNDER_TEST", mode)
        assert mutation.mutant_under_test() == mutant
    monkeypatch.delenv("MUTANT_UNDER_TEST")
    assert mutation.mutant_under_test() == ""


def test_only_mutmuts_own_runs_keep_a_build_for_the_mutants(tmp_path, monkeypatch):
    """A build is copied to .mutation_cache under `mutmut run` only, not in a plain run where a
    test module imported a part of mutmut (tests/test_mutate.py: in a random order it came before
    a fixture's build and left a copy of the export in the checkout)."""
    def build(dest: Path) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "built").write_text("x")

    monkeypatch.setattr(mutation, "MUTATION_CACHE", tmp_path / "cache")
    monkeypatch.delenv("MUTANT_UNDER_TEST", raising=False)
    monkeypatch.setitem(sys.modules, "mutmut", ModuleType("mutmut"))
    monkeypatch.delitem(sys.modules, "mutmut.__main__", raising=False)
    mutation.built_once_per_mutation_run("tiny_models", tmp_path / "plain", build)
    assert (tmp_path / "plain/built").is_file() and not (tmp_path / "cache").exists()
    monkeypatch.setitem(sys.modules, "mutmut.__main__", ModuleType("mutmut.__main__"))  # `mutmut run`, its clean pass
    mutation.built_once_per_mutation_run("tiny_models", tmp_path / "clean", build)
    assert (tmp_path / "cache/tiny_models/built").read_text() == "x"


def test_no_test_module_imports_conftest_or_another_test_module():
    """Each module runs alone and in any order: what tests share is a fixture (conftest.py) or
    a helper (helpers/), never another test module's code, which would run its module's
    collection-time code and tie the two together."""
    files = sorted(TESTS.rglob("*.py"))
    assert len(files) > 40 and (TESTS / "helpers/fake_bing.py") in files  # the whole suite was read
    offending = {path.relative_to(TESTS).as_posix(): sorted(name for name in imported_modules(path)
                                                              if name == "conftest" or name.startswith("test_"))
                 for path in files}
    assert {path: names for path, names in offending.items() if names} == {}


def test_the_import_check_sees_imports_at_any_depth(tmp_path):
    (tmp_path / "test_x.py").write_text("import os\nfrom test_y import f\ndef g():\n    import conftest\n    from . import z\n")
    assert imported_modules(tmp_path / "test_x.py") == {"os", "test_y", "conftest"}
