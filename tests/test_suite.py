"""How `make test` runs the suite: in parallel workers, as many as the cores and the disk allow,
the modules with slow tests handed out first; and how `make mutate` orders a mutant's tests."""

from __future__ import annotations

from types import SimpleNamespace

import conftest


def test_one_worker_per_core_or_fewer_where_the_disk_is_short(monkeypatch, pytestconfig):
    cores = conftest.usable_cores()
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    for free_gib, workers in ((1000, cores), (4.5, min(2, cores)), (3, 1), (0.001, 1)):
        monkeypatch.setattr(conftest, "temporary_disk_free", lambda config: free_gib * 2**30)
        assert conftest.pytest_xdist_auto_num_workers(pytestconfig) == workers, free_gib
    monkeypatch.setenv("PYTEST_XDIST_AUTO_NUM_WORKERS", "5")  # the user's choice: pytest-xdist reads it
    assert conftest.pytest_xdist_auto_num_workers(pytestconfig) is None


def test_modules_holding_slow_tests_come_first_each_in_its_own_order():
    def item(module: str, name: str, slow: bool = False):
        return SimpleNamespace(module=SimpleNamespace(__name__=module), name=name,
                               get_closest_marker=lambda marker: marker == "slow" and slow or None)

    items = [item("test_a", "a1"), item("test_b", "b1"), item("test_b", "b2", slow=True), item("test_c", "c1"),
             item("test_d", "d1", slow=True), item("test_d", "d2")]
    conftest.pytest_collection_modifyitems(items)
    assert [i.name for i in items] == ["b1", "b2", "d1", "d2", "a1", "c1"]


def test_a_mutants_tests_run_fastest_first_and_those_rebuilding_a_fixture_for_it_last():
    def item(nodeid: str, *fixtures: str):
        return SimpleNamespace(nodeid=nodeid, fixturenames=list(fixtures))

    seconds = {"slow": 3.0, "reads_export": 0.1, "fast": 0.2, "faster": 0.05}
    items = [item("slow", "tmp_path"), item("reads_export", "exported_models", "exported"), item("fast"), item("faster")]
    conftest.mutant_tests_in_order(items, "stages.export.x_main__mutmut_7", seconds)
    assert [i.nodeid for i in items] == ["faster", "fast", "slow", "reads_export"]  # export's mutant: rebuilt last
    conftest.mutant_tests_in_order(items, "stages.report.x_table__mutmut_7", seconds)
    assert [i.nodeid for i in items] == ["faster", "reads_export", "fast", "slow"]  # a copy of the build: 0.1 s
