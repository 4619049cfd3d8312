"""`make mutate`: mutation testing of the core logic, and its score per module.

Runs `mutmut run` (settings: [tool.mutmut] in pyproject.toml: which modules, which tests, and
the lines left alone), each mutant against only its module's unit tests ([tool.mutate.unit_tests]:
mutmut itself would run every selected test that reaches the mutated function, and the crawl and
stage tests reach nearly everything), then reads mutmut's results (mutants/<module>.meta) and
prints per module how many of its mutants the tests killed, and every mutant that survived with
its diff.
Survivors that [[tool.mutate.equivalent]] in pyproject.toml names (equivalent mutants: changes
that cannot alter what the code does) are listed apart with their reason and left out of the
score. Exit status 1 when a module scores under the goal.

    python -m stages.tools.mutate                    # mutmut run, then the table
    python -m stages.tools.mutate "stages.report*"   # (re)run these mutants only, then the table
    python -m stages.tools.mutate --report           # the table of the last run only
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

GOAL = 0.85  # share of mutants killed, per module
MUTANTS = Path("mutants")


def status_by_exit_code(code: int | None) -> str:
    from mutmut.stats import status_by_exit_code as statuses  # mutmut's own reading of its exit codes

    return statuses[code]


def module_results(mutants: Path = MUTANTS) -> dict[str, dict[str, str]]:
    """{module path: {mutant name: status}} from every .meta file of the last run."""
    results = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        codes = json.loads(meta.read_text(encoding="utf-8")).get("exit_code_by_key", {})
        if codes:
            results[str(meta.relative_to(mutants))[: -len(".meta")]] = {
                name: status_by_exit_code(code) for name, code in codes.items()
            }
    return results


def score(statuses: Counter) -> float:
    """Killed share of the mutants that ran, equivalent ones left out; a mutant that hangs the
    tests counts as caught."""
    ran = sum(statuses.values()) - statuses["skipped"] - statuses["not checked"] - statuses["equivalent"]
    return (statuses["killed"] + statuses["timeout"]) / ran if ran else 0.0


def equivalent_mutants(pyproject: Path = Path("pyproject.toml")) -> list[dict]:
    """[[tool.mutate.equivalent]]: the mutated function, a regex its changed line matches, why."""
    return mutate_config(pyproject).get("equivalent", [])


def mutate_config(pyproject: Path = Path("pyproject.toml")) -> dict:
    """[tool.mutate] of pyproject.toml."""
    return tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("mutate", {})


def choose_tests(tests_by_function: dict[str, set[str]], config: dict) -> None:
    """mutmut's map {function: tests that reached it}, in place, narrowed to each module's unit
    tests ([tool.mutate.unit_tests]; a module not listed keeps every test that reached it, a
    function no unit test reaches is left with none: its mutants count as "no tests")."""
    unit_tests = config.get("unit_tests", {})
    for function, tests in tests_by_function.items():
        module = function.rsplit(".", 1)[0]  # stages.split.x_spread, stages.sources.bing.xǁTaskQueueǁput
        if module in unit_tests:
            tests.intersection_update({test for test in tests if any(is_in(test, unit) for unit in unit_tests[module])})


def is_in(test: str, unit: str) -> bool:
    """Whether a test id is the unit named (a file, a test, a parametrised test) or inside it."""
    return test.startswith(unit) and test[len(unit):][:1] in ("", ":", "[")


def changed_lines(name: str, module: str) -> list[str]:
    """The removed and added lines of a mutant's diff, what `mutmut show NAME` prints."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    diff = get_diff_for_mutant(name, path=module)
    return [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def why_equivalent(name: str, changed: list[str], equivalents: list[dict]) -> str | None:
    """The reason of the first rule naming this mutant's function whose regex matches a line the
    mutant adds, or, for a mutant that only removes lines (an argument dropped), one it removes."""
    added = [line[1:] for line in changed if line.startswith("+")]
    lines = added or [line[1:] for line in changed if line.startswith("-")]
    for rule in equivalents:
        if name.startswith(rule["function"] + "__mutmut_") and any(re.search(rule["changed"], line) for line in lines):
            return rule["why"]
    return None


def print_table(results: dict[str, dict[str, str]], equivalents: list[dict]) -> bool:
    """The score per module, the equivalent mutants, then the survivors with their diffs. True
    when every module meets the goal. Mutants of an interrupted run that never ran are counted
    apart ("not run")."""
    survivors, equivalent = [], []
    for module, statuses in results.items():
        for name, status in statuses.items():
            if status in ("survived", "no tests", "suspicious"):
                changed = changed_lines(name, module)
                why = why_equivalent(name, changed, equivalents) if status == "survived" else None
                if why:
                    statuses[name] = "equivalent"
                    equivalent.append((name, why))
                else:
                    survivors.append((name, status, changed))
    print(f"{'module':<30} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8} {'equiv.':>6} {'not run':>7} {'score':>6}")
    ok = True
    for module, statuses in results.items():
        counts = Counter(statuses.values())
        share = score(counts)
        ok &= share >= GOAL and not counts["not checked"]
        print(f"{module:<30} {len(statuses):>7} {counts['killed'] + counts['timeout']:>6} {counts['survived']:>8} "
              f"{counts['no tests']:>8} {counts['equivalent']:>6} {counts['not checked']:>7} {share:>6.0%}"
              f"{'' if share >= GOAL else '  < goal ' + format(GOAL, '.0%')}")
    if equivalent:
        print("\nEquivalent mutants ([[tool.mutate.equivalent]] in pyproject.toml):")
        for name, why in equivalent:
            print(f"    {name}: {why}")
    for name, status, changed in survivors:
        print(f"\n{name} ({status}):\n    " + "\n    ".join(changed))
    return ok


# mutmut started from `-c` rather than from its command file: worker processes that the code under
# test starts (the crawl's pools) would run that file again, and with it mutmut's settings lookup
# in the tests' temporary folders, where it fails. Its map of which tests reach which function is
# narrowed to the unit tests once collected or loaded from an earlier run, before any mutant runs;
# the file keeps mutmut's own map. This tool is loaded from its path, not as `stages.tools`:
# importing `stages` here would shadow the mutated copy mutmut puts first on sys.path.
# The fork server's objects are frozen once its warm-up has imported the tests (torch, onnx:
# about 900 MB): mutmut freezes only the objects it had before, so every mutant's process
# walked the rest in each full garbage collection, copying their pages on write (0.5 s of a
# trivial mutant's 0.65).
RUN_MUTMUT = """
import gc, importlib.util, sys
spec = importlib.util.spec_from_file_location("mutate_tool", sys.argv.pop(1))
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
import mutmut.__main__ as mutmut
from mutmut.runners.harness import PytestRunner
warm_up = PytestRunner.warm_up
def warm_up_then_freeze(self):
    warm_up(self)
    gc.freeze()
PytestRunner.warm_up = warm_up_then_freeze
collect_or_load_stats = mutmut.collect_or_load_stats
def collect_then_choose_tests(*args, **kwargs):
    collect_or_load_stats(*args, **kwargs)
    tool.choose_tests(mutmut.state().tests_by_mangled_function_name, tool.mutate_config())
mutmut.collect_or_load_stats = collect_then_choose_tests
sys.exit(mutmut.cli())
"""


def run_mutmut(patterns: list[str]) -> None:
    """`mutmut run [patterns]`. Without patterns mutmut skips the mutants an earlier run judged;
    named ones it runs again."""
    subprocess.run([sys.executable, "-c", RUN_MUTMUT, __file__, "run", *patterns], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mutants", nargs="*", help="mutant names or patterns (`stages.report*`): run only these")
    parser.add_argument("--report", action="store_true", help="only print the results of the last run")
    args = parser.parse_args()
    if not args.report:
        run_mutmut(args.mutants)
    results = module_results()
    if not results:
        print("mutate: no results under mutants/: run without --report first", file=sys.stderr)
        return 2
    return 0 if print_table(results, equivalent_mutants()) else 1


if __name__ == "__main__":
    sys.exit(main())
