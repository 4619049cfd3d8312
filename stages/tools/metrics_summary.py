"""What a change did to the metrics, for CI: a markdown summary and the plots side by side.

    python -m stages.tools.metrics_summary BASE [--plots DIR]

Compares the metrics and params committed at git revision BASE (a branch, a tag, HEAD~1) with
the workspace's, as DVC does (`dvc metrics diff BASE --md`, `dvc params diff BASE --md`), and
appends the two tables under a heading to the file $GITHUB_STEP_SUMMARY names (GitHub Actions
shows that file as the job's summary), or prints them when it is unset. `dvc plots diff BASE`
writes the plots of both (confusion matrices, speed and training charts) as an HTML page into
DIR (default: plots-diff), for CI to keep as an artifact.

The metrics are committed to git (`cache: false`), so this needs no pipeline run: on a pull
request it shows what the branch's committed results changed against the base branch's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from stages.shared.errors import PipelineError, run_stage


def dvc(*args: str) -> str:
    """`dvc ARGS` with this interpreter's DVC; its output, or a PipelineError with its last line."""
    result = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, env=os.environ | {"DVC_NO_ANALYTICS": "1"})
    if result.returncode != 0:
        said = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        raise PipelineError(f"dvc {' '.join(args)} failed: {said[-1] if said else f'exit status {result.returncode}'}")
    return result.stdout


def commit_of(rev: str) -> str:
    """The short commit id of `rev`, or a PipelineError naming it (a shallow clone lacks the base)."""
    result = subprocess.run(["git", "rev-parse", "--short", "--verify", "--quiet", f"{rev}^{{commit}}"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise PipelineError(f"{rev}: no such git revision here (in CI, check out with fetch-depth: 0)")
    return result.stdout.strip()


def summary(base: str) -> str:
    """The markdown: a heading, then the metrics' and the params' differences, or a line saying there are none."""
    lines = [f"## Metrics and params: {base} ({commit_of(base)}) against this checkout", ""]
    for kind in ("metrics", "params"):
        table = dvc(kind, "diff", base, "--md").strip()
        changed = len([line for line in table.splitlines() if line.startswith("|")]) > 2  # more than the header
        lines += [f"### {kind.capitalize()}", "", table if changed else f"No {kind} changed.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="the git revision to compare with: a branch, a tag, HEAD~1")
    parser.add_argument("--plots", type=Path, default=Path("plots-diff"), help="where dvc plots diff writes its HTML page")
    args = parser.parse_args()
    text = summary(args.base)
    dvc("plots", "diff", args.base, "--out", str(args.plots))
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as f:  # appended: other steps may write there too
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    run_stage(main)
