"""`make mutate`: mutation testing of the modules that hold logic, and its score per module.

Runs `mutmut run` (settings: [tool.mutmut] in pyproject.toml: which modules, which tests), then
reads the results with mutmut's own commands (`mutmut results --all true`, `mutmut show NAME`)
and prints per module how many of its mutants the tests killed, and every mutant that survived
with its diff. Exit status 1 when a module scores under the goal.

Equivalent mutants (changes that cannot alter what the code does) are marked where they live,
`# pragma: no mutate: why` on the line: mutmut makes no mutant there. Each mutant runs only its
module's own unit tests ([tool.mutate.unit_tests]; tests/helpers/mutation.py leaves out the others
mutmut passes it: the crawl and stage tests reach nearly every module).

    python -m stages.tools.mutate                    # mutmut run, then the table
    python -m stages.tools.mutate "stages.report*"   # (re)run these mutants only, then the table
    python -m stages.tools.mutate --report           # the table of the last run only
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

from tabulate import tabulate

GOAL = 0.90  # share of mutants killed, per module
CAUGHT = ("killed", "timeout", "caught by type check", "segfault")  # a mutant that hangs or crashes the tests is caught
NOT_RUN = ("not checked", "skipped")

# mutmut's command line, started from `-c` rather than from its command file: worker processes
# that the code under test starts (the crawl's pools) would run that file again, and with it
# mutmut's settings lookup in the tests' temporary folders, where it fails.
MUTMUT = [sys.executable, "-c", "import sys; from mutmut.__main__ import cli; sys.exit(cli())"]


def mutmut(*args: str) -> str:
    """The output of a mutmut command that reads the last run's results."""
    return subprocess.run(MUTMUT + list(args), capture_output=True, text=True, check=True).stdout


def module_of(mutant: str) -> str:
    """stages.split.x_spread__mutmut_3 -> stages.split; stages.sources.bing.xǁTaskQueueǁput__mutmut_1 -> stages.sources.bing"""
    return mutant.split("__mutmut_")[0].rsplit(".", 1)[0]


def module_results(results: str) -> dict[str, dict[str, str]]:
    """{module: {mutant name: status}} from `mutmut results --all true` ("    name: status" per mutant)."""
    by_module: dict[str, dict[str, str]] = {}
    for line in results.splitlines():
        match = re.fullmatch(r"\s+(\S+__mutmut_\d+): (.+)", line)
        if match:
            name, status = match.groups()
            by_module.setdefault(module_of(name), {})[name] = status
    return by_module


def score(statuses: Counter) -> float:
    """Caught share of the mutants that ran."""
    ran = sum(statuses.values()) - sum(statuses[s] for s in NOT_RUN)
    return sum(statuses[s] for s in CAUGHT) / ran if ran else 0.0


def mutate_config(pyproject: Path = Path("pyproject.toml")) -> dict:
    """[tool.mutate] of pyproject.toml."""
    return tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("mutate", {})


def unit_tests_of(mutant: str, config: dict) -> list[str] | None:
    """The unit tests of the mutant's module ([tool.mutate.unit_tests]), or None when it names none."""
    return config.get("unit_tests", {}).get(module_of(mutant))


def is_in(test: str, unit: str) -> bool:
    """Whether a test id is the unit named (a file, a test, a parametrised test) or inside it."""
    return test.startswith(unit) and test[len(unit):][:1] in ("", ":", "[")


def changed_lines(name: str) -> list[str]:
    """The removed and added lines of a mutant's diff (`mutmut show NAME`)."""
    diff = mutmut("show", name)
    return [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def print_table(results: dict[str, dict[str, str]], diff=changed_lines) -> bool:
    """The score per module, then the survivors with their diffs. True when every module meets
    the goal. Mutants of an interrupted run that never ran are counted apart ("not run")."""
    ok, rows = True, []
    for module, statuses in sorted(results.items()):
        counts = Counter(statuses.values())
        share = score(counts)
        not_run = sum(counts[s] for s in NOT_RUN)
        ok &= share >= GOAL and not not_run
        rows.append([module, len(statuses), sum(counts[s] for s in CAUGHT), counts["survived"], counts["no tests"], not_run,
                     f"{share:.0%}", "" if share >= GOAL else f"< goal {GOAL:.0%}"])
    headers = ["module", "mutants", "killed", "survived", "no tests", "not run", "score", ""]
    print(tabulate(rows, headers, tablefmt="plain", colalign=("left", *["right"] * 6, "left")))
    for module, statuses in sorted(results.items()):
        for name, status in statuses.items():
            if status not in CAUGHT and status not in NOT_RUN:
                print(f"\n{name} ({status}):\n    " + "\n    ".join(diff(name)))
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mutants", nargs="*", help="mutant names or patterns (`stages.report*`): run only these")
    parser.add_argument("--report", action="store_true", help="only print the results of the last run")
    args = parser.parse_args()
    if not args.report:
        # without patterns mutmut skips the mutants an earlier run judged; named ones it runs again
        subprocess.run(MUTMUT + ["run", *args.mutants], check=False)
    results = module_results(mutmut("results", "--all", "true")) if Path("mutants").is_dir() else {}
    if not results:
        print("mutate: no results under mutants/: run without --report first", file=sys.stderr)
        return 2
    return 0 if print_table(results) else 1


if __name__ == "__main__":
    sys.exit(main())
