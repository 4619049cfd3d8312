"""`make mutate`'s use of mutmut: its results as `mutmut results` prints them, each mutant's own
unit tests, and the behaviour of mutmut's that tests/helpers/mutation.py relies on (pinned here, so that
a mutmut release that changes it fails this test rather than the mutation run silently)."""

import subprocess
import sys
import textwrap
from collections import Counter

import tomllib

from helpers.project import ROOT
from stages.tools.mutate import is_in, module_of, module_results, mutate_config, score, unit_tests_of

RESULTS = """\
    stages.split.x_spread__mutmut_1: killed
    stages.split.x_spread__mutmut_2: survived
    stages.sources.bing.xǁTaskQueueǁput__mutmut_7: timeout
    stages.export.x_export_onnx__mutmut_3: no tests
    stages.export.x_export_onnx__mutmut_4: not checked
"""


def test_results_are_read_per_module_as_mutmut_prints_them():
    assert module_results(RESULTS) == {
        "stages.split": {"stages.split.x_spread__mutmut_1": "killed", "stages.split.x_spread__mutmut_2": "survived"},
        "stages.sources.bing": {"stages.sources.bing.xǁTaskQueueǁput__mutmut_7": "timeout"},
        "stages.export": {"stages.export.x_export_onnx__mutmut_3": "no tests", "stages.export.x_export_onnx__mutmut_4": "not checked"},
    }
    assert module_of("stages.sources.bing.xǁTaskQueueǁput__mutmut_7") == "stages.sources.bing"


def test_the_score_counts_hung_tests_as_caught_and_leaves_out_mutants_not_run():
    assert score(Counter(killed=8, survived=1, timeout=1)) == 9 / 10
    assert score(Counter(killed=6, timeout=2, survived=1, **{"no tests": 1, "not checked": 5})) == 8 / 10
    assert score(Counter({"not checked": 3})) == 0.0


def test_a_mutant_runs_its_modules_unit_tests_only():
    config = {"unit_tests": {"stages.shared.params": ["tests/test_params.py"], "stages.sources.bing": ["tests/test_bing.py::test_c"]}}
    assert unit_tests_of("stages.shared.params.x_load_params__mutmut_2", config) == ["tests/test_params.py"]
    assert unit_tests_of("stages.other.x_f__mutmut_1", config) is None  # a module not listed keeps every test
    assert is_in("tests/test_bing.py::test_c[1]", "tests/test_bing.py::test_c")  # a parametrised case
    assert not is_in("tests/test_bing.py::test_cache", "tests/test_bing.py::test_c")
    assert is_in("tests/test_params.py::test_a", "tests/test_params.py")
    assert not is_in("tests/test_params_more.py::test_a", "tests/test_params.py")


def test_every_mutated_module_names_unit_tests_that_exist():
    mutated = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]
    config = mutate_config(ROOT / "pyproject.toml")
    # a package's code in its __init__.py is mutated as the package (stages/sources/bing/__init__.py: stages.sources.bing)
    modules = (path.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for path in mutated)
    assert sorted(config["unit_tests"]) == sorted(modules)
    for tests in config["unit_tests"].values():
        for test in tests:
            file, _, name = test.partition("::")
            assert (ROOT / file).is_file(), test
            assert not name or f"def {name}(" in (ROOT / file).read_text(), test


def test_mutmuts_process_local_mode_outlives_the_environment_variable():
    """tests/helpers/mutation.py keeps mutmut's stats pass out of the processes the code under test starts
    by taking MUTANT_UNDER_TEST out of the environment after handing it to mutmut's
    set_mutant_under_test: its trampolines must still see the mode, and child processes not."""
    script = textwrap.dedent("""
        import os, subprocess, sys
        from mutmut.mutation.trampoline import get_mutant_under_test, set_mutant_under_test
        set_mutant_under_test("stats")
        del os.environ["MUTANT_UNDER_TEST"]
        child = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('MUTANT_UNDER_TEST', ''))"],
                               capture_output=True, text=True).stdout.strip()
        print(get_mutant_under_test(), repr(child))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["stats", "''"]


def test_mutmut_reads_a_pragma_with_its_reason_as_no_mutate_on_that_line():
    """Equivalent mutants are marked `# pragma: no mutate: why` on their line."""
    from mutmut.mutation.pragma_handling import _parse_pragma_token  # noqa: PLC2701 - the parser of the documented pragma

    import libcst as cst

    for reason in ("codec names are not case-sensitive", "json.dumps writes ASCII only"):
        assert _parse_pragma_token(cst.Comment(f"# pragma: no mutate: {reason}")) == "bare"
