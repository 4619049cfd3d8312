"""`make mutate`: mutation testing of the core logic, and its score per module.

Runs `mutmut run` (settings: [tool.mutmut] in pyproject.toml: which modules, which unit tests,
and the lines left alone as equivalent mutants), then reads mutmut's results
(mutants/<module>.meta) and prints per module how many of its mutants the tests killed, and
every mutant that survived with its diff. Exit status 1 when a module scores under the goal.

    python -m stages.tools.mutate            # mutmut run, then the table
    python -m stages.tools.mutate --report   # the table of the last run only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
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
    """Killed share of the mutants that ran; a mutant that hangs the tests counts as caught."""
    ran = sum(statuses.values()) - statuses["skipped"] - statuses["not checked"]
    return (statuses["killed"] + statuses["timeout"]) / ran if ran else 0.0


def survivors(statuses: dict[str, str]) -> list[tuple[str, str]]:
    return [(name, status) for name, status in statuses.items()
            if status not in ("killed", "timeout", "skipped", "not checked")]


def print_table(results: dict[str, dict[str, str]]) -> bool:
    """The score per module, then the survivors with their diffs. True when every module meets
    the goal. Mutants of an interrupted run that never ran are counted apart ("not run")."""
    print(f"{'module':<30} {'mutants':>7} {'killed':>6} {'survived':>8} {'no tests':>8} {'not run':>7} {'score':>6}")
    ok = True
    for module, statuses in results.items():
        counts = Counter(statuses.values())
        share = score(counts)
        ok &= share >= GOAL and not counts["not checked"]
        print(f"{module:<30} {len(statuses):>7} {counts['killed'] + counts['timeout']:>6} {counts['survived']:>8} "
              f"{counts['no tests']:>8} {counts['not checked']:>7} {share:>6.0%}"
              f"{'' if share >= GOAL else '  < goal ' + format(GOAL, '.0%')}")
    from mutmut.mutation.diff_apply import get_diff_for_mutant  # what `mutmut show NAME` prints

    for module, statuses in results.items():
        for name, status in survivors(statuses):
            diff = get_diff_for_mutant(name, path=module)
            changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
            print(f"\n{name} ({status}):\n    " + "\n    ".join(changed))
    return ok


def run_mutmut() -> None:
    """`mutmut run`, started from `-c` rather than from mutmut's command file: worker processes
    that the code under test starts (the crawl's pools) would run that file again, and with it
    mutmut's settings lookup in the tests' temporary folders, where it fails."""
    subprocess.run([sys.executable, "-c", "import sys; from mutmut.__main__ import cli; sys.exit(cli())", "run"], check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="store_true", help="only print the results of the last run")
    args = parser.parse_args()
    if not args.report:
        run_mutmut()
    results = module_results()
    if not results:
        print("mutate: no results under mutants/: run without --report first", file=sys.stderr)
        return 2
    return 0 if print_table(results) else 1


if __name__ == "__main__":
    sys.exit(main())
