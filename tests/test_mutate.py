"""`make mutate`'s reading of mutmut's results: equivalent mutants named in pyproject.toml are
set apart with their reason and left out of the score."""

from collections import Counter

import tomllib

from conftest import ROOT
from stages.tools.mutate import choose_tests, equivalent_mutants, mutate_config, score, why_equivalent

RULE = {"function": "stages.split.x_check_enough", "changed": r"\[2\] \* len", "why": "equal weights share alike"}


def test_a_survivor_is_equivalent_only_for_its_function_and_its_change():
    added = ["-    quota = spread(n_test, [1] * len(counts))", "+    quota = spread(n_test, [2] * len(counts))"]
    assert why_equivalent("stages.split.x_check_enough__mutmut_9", added, [RULE]) == "equal weights share alike"
    assert why_equivalent("stages.split.x_split_examples__mutmut_9", added, [RULE]) is None  # another function
    assert why_equivalent("stages.split.x_check_enough__mutmut_8", ["-    x = [2] * len(a)", "+    x = None"], [RULE]) is None


def test_a_mutant_that_only_removes_a_line_is_matched_by_what_it_removes():
    rule = {"function": "stages.export.x_export_onnx", "changed": r"^ +dynamo=True,$", "why": "the default"}
    assert why_equivalent("stages.export.x_export_onnx__mutmut_29", ["-            dynamo=True,"], [rule]) == "the default"
    # a mutant that adds a line is matched by it alone: the line it replaced is what it changed
    assert why_equivalent("stages.export.x_export_onnx__mutmut_31", ["-            dynamo=True,", "+            dynamo=False,"], [rule]) is None


def test_equivalent_mutants_leave_the_score():
    assert score(Counter(killed=8, survived=1, equivalent=1)) == 8 / 9
    assert score(Counter(killed=6, timeout=2, survived=1, **{"no tests": 1, "not checked": 5})) == 8 / 10


def test_the_project_lists_its_equivalent_mutants_with_a_reason():
    rules = equivalent_mutants()
    # a function as mutmut names it: module.x_function, or module.xǁClassǁmethod
    assert rules and all(rule["function"].rsplit(".", 1)[1].startswith(("x_", "xǁ")) and rule["changed"] and rule["why"]
                         for rule in rules)


def test_each_function_keeps_only_its_modules_unit_tests():
    reached = {
        "stages.params.x_load_params": {"tests/test_params.py::test_a", "tests/test_crawl.py::test_b"},
        "stages.sources.bing.xǁTaskQueueǁput": {"tests/test_bing.py::test_c[1]", "tests/test_bing.py::test_cache", "tests/test_crawl.py::test_b"},
        "stages.split.x_spread": {"tests/test_split.py::test_d", "tests/test_splitting.py::test_e"},
        "stages.report.x_main": {"tests/test_pipeline.py::test_f"},
        "stages.export.x_main": {"tests/test_export.py::test_g"},
        "stages.other.x_f": {"tests/test_crawl.py::test_b"},
    }
    choose_tests(reached, {
        "unit_tests": {
            "stages.params": ["tests/test_params.py"],
            "stages.sources.bing": ["tests/test_bing.py::test_c"],
            "stages.split": ["tests/test_split.py"],
            "stages.report": ["tests/test_report.py"],
            "stages.export": ["tests/test_export.py"],
        },
    })
    assert reached == {
        "stages.params.x_load_params": {"tests/test_params.py::test_a"},
        "stages.sources.bing.xǁTaskQueueǁput": {"tests/test_bing.py::test_c[1]"},  # a parametrised case, not test_cache
        "stages.split.x_spread": {"tests/test_split.py::test_d"},
        "stages.report.x_main": set(),  # no unit test reaches it: its mutants count as "no tests"
        "stages.export.x_main": {"tests/test_export.py::test_g"},
        "stages.other.x_f": {"tests/test_crawl.py::test_b"},  # a module not listed keeps what reached it
    }


def test_every_mutated_module_names_unit_tests_that_exist():
    mutated = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]
    config = mutate_config(ROOT / "pyproject.toml")
    assert sorted(config["unit_tests"]) == sorted(path.removesuffix(".py").replace("/", ".") for path in mutated)
    for tests in config["unit_tests"].values():
        for test in tests:
            file, _, name = test.partition("::")
            assert (ROOT / file).is_file(), test
            assert not name or f"def {name}(" in (ROOT / file).read_text(), test
