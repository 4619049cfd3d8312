"""CI shows what a change did: the script the workflow calls (dvc metrics/params diff as markdown
into the job summary, dvc plots diff as a folder), run on a real two-commit git+DVC repository;
and the workflow file itself, checked by actionlint."""

import shutil
import sys
from pathlib import Path

import pytest
import yaml

from helpers.project import ROOT, run

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = Path(sys.executable).with_name("actionlint")  # installed with requirements.txt


@pytest.fixture(scope="module")
def two_commits(module_tmp_path) -> Path:
    """A git+DVC repository whose second commit changes one metric, one param and the plot's data."""
    repo = module_tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    (repo / "dvc.yaml").write_text("metrics:\n  - metrics.json\nparams:\n  - params.yaml\nplots:\n  - loss.csv:\n      x: epoch\n      y: loss\n")
    for accuracy, lr, loss, message in ((0.5, 0.001, 0.9, "first"), (0.75, 0.002, 0.6, "second")):
        (repo / "metrics.json").write_text(f'{{"accuracy": {accuracy}, "img_s": 10.0}}\n')
        (repo / "params.yaml").write_text(f"lr: {lr}\nepochs: 2\n")
        (repo / "loss.csv").write_text(f"epoch,loss\n1,{loss}\n2,{loss / 2}\n")
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-q", "-m", message], repo)
    return repo


def summary(repo: Path, *args: str, env: dict | None = None):
    """`python -m stages.tools.metrics_summary ARGS` run in `repo`, as the workflow runs it."""
    command = [sys.executable, "-m", "stages.tools.metrics_summary", *args]
    return run(["env", f"PYTHONPATH={ROOT}", *(f"{k}={v}" for k, v in (env or {}).items()), *command], repo, check=False)


def rows(markdown: str) -> list[list[str]]:
    """The cells of a markdown table's body rows (the header and the |---| line left out)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if not set(line) <= set("|-: ")]


def test_the_summary_holds_the_changed_metric_and_param_with_old_and_new_values(two_commits, tmp_path, monkeypatch):
    repo = two_commits
    target = tmp_path / "step_summary.md"
    target.write_text("an earlier step's summary\n")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    result = summary(repo, "HEAD~1", "--plots", str(tmp_path / "plots-diff"), env={"GITHUB_STEP_SUMMARY": target})
    assert result.returncode == 0 and result.stdout == "", result.stderr
    text = target.read_text()
    assert text.startswith("an earlier step's summary\n## Metrics and params: HEAD~1 (")  # appended, as GitHub reads it
    table = rows(text)
    assert ["metrics.json", "accuracy", "0.5", "0.75", "0.25"] in table  # path, metric, old, new, change
    assert ["params.yaml", "lr", "0.001", "0.002"] in table
    assert not any("img_s" in row or "epochs" in row for row in table)  # unchanged: left out
    page = (tmp_path / "plots-diff" / "index.html").read_text()
    for loss, rev in (("0.45", "HEAD~1"), ("0.3", "workspace")):  # both revisions' data, each named
        assert f'{{"epoch": "2", "loss": "{loss}", "rev": "{rev}"}}' in page

    printed = summary(repo, "HEAD~1", "--plots", str(tmp_path / "elsewhere"))  # without GitHub: on stdout
    assert printed.returncode == 0 and rows(printed.stdout) == table
    assert (tmp_path / "elsewhere" / "index.html").is_file()


def test_no_change_is_said_and_an_unknown_base_is_one_line(two_commits, tmp_path, monkeypatch):
    repo = two_commits
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    same = summary(repo, "HEAD", "--plots", str(tmp_path / "plots-diff"))
    assert same.returncode == 0 and "No metrics changed." in same.stdout and "No params changed." in same.stdout
    unknown = summary(repo, "origin/main")  # a shallow clone in CI, or a typo
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert unknown.stderr == "error: origin/main: no such git revision here (in CI, check out with fetch-depth: 0)\n"


def test_the_workflow_runs_the_summary_against_the_base_and_keeps_the_plots():
    steps = {s.get("name", s.get("uses")): s for s in yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())["jobs"]["test"]["steps"]}
    checkout = steps["actions/checkout@v5"]
    assert checkout["with"]["fetch-depth"] == 0  # the base revision must be in the clone
    step = steps["Metrics against the base (job summary)"]
    assert step["env"]["BASE"] == "${{ github.event_name == 'pull_request' && format('origin/{0}', github.base_ref) || 'HEAD~1' }}"
    assert step["run"] == '.venv/bin/python -m stages.tools.metrics_summary "$BASE" --plots plots-diff'
    upload = steps["Plots against the base (artifact)"]
    assert upload["uses"].startswith("actions/upload-artifact@") and upload["with"]["path"] == "plots-diff/"


def test_the_workflows_pass_actionlint(tmp_path):
    assert WORKFLOWS, "no workflow found"
    result = run([str(ACTIONLINT), "-oneline", *map(str, WORKFLOWS)], ROOT, check=False)
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr
    # the linter reads what GitHub would: an expression naming a context property that does not exist fails
    broken = tmp_path / WORKFLOWS[0].name
    shutil.copy(WORKFLOWS[0], broken)
    broken.write_text(broken.read_text().replace("github.base_ref", "github.base_branch"))
    result = run([str(ACTIONLINT), "-oneline", str(broken)], tmp_path, check=False)
    assert result.returncode == 1 and 'property "base_branch" is not defined' in result.stdout
