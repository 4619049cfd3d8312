"""Reproducibility check, run as a DVC user would.

Two fresh runs: clone the repository twice into a temporary folder, run `dvc repro` in each
clone, and compare what the two runs produced.

    python -m stages.tools.check_repro [--tiny] [--set KEY=VALUE ...] [--repo DIR] [TARGET ...]
    (make check-repro runs it with --tiny)

Against the committed results: clone once, run the pipeline as `make repro` does (the machine
stage forced, then `dvc repro`) and compare every output with the committed dvc.lock: identical,
or different with the accuracy deltas per format and setting and the likely cause.

    python -m stages.tools.check_repro --against-lock      (make check-repro-lock; the full pipeline's time)

--tiny shrinks params.yaml in both clones to the tests' tiny profile (stages/tools/profiles.py), so
the whole pipeline runs in minutes; --set then changes single params (a YAML value, e.g.
--set train.compile=true). TARGETs go to `dvc repro` and `dvc status` (default: the whole
pipeline). It fails (exit status 1) when `dvc status` is not clean after a run, or when any
output recorded in dvc.lock differs between the runs: the data and its manifest, the split,
the weights, the metrics. Outputs that hold wall-clock timings, or name the machine, are left
out. It checks the committed HEAD of the repository, not uncommitted changes.
"""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from stages.shared.errors import PipelineError
from stages.shared.params import ParamError, load_params
from stages.tools.profiles import tiny

# Outputs that hold timings, which differ on every run, or name the machine: not compared.
TIMINGS = ("metrics/epochs/*/evaluate/speed.json", "metrics/summary", "metrics/report.md", "metrics/*.png", "metrics/machine.json")
ACCURACY = "metrics/epochs/e*/evaluate/accuracy.json"


class CheckFailed(PipelineError):
    """The pipeline could not run, or did not reproduce."""


def run(cmd: list[str], cwd: Path, log: Path) -> str:
    """Run `cmd` with this interpreter's bin first on PATH (DVC stages call `python`); its
    output goes to `log`, and on failure the end of the log goes into the error."""
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ {' '.join(cmd)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise CheckFailed(f"`{' '.join(cmd)}` failed in {cwd} (exit status {result.returncode}):\n{tail}")
    return result.stdout


def override(raw: dict, items: list[str]) -> dict:
    """Set KEY=VALUE pairs (dotted keys, YAML values) in parsed params."""
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParamError(f"--set takes KEY=VALUE, got {item!r}")
        *parents, last = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ParamError(f"--set {item}: {part} is not a section of params.yaml")
        node[last] = yaml.safe_load(value)
    return raw


def adjust_params(params_file: Path, shrink: bool, overrides: list[str]) -> None:
    """The tiny profile and the overrides into params.yaml, then checked like any params."""
    raw = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    raw = override(tiny(raw) if shrink else raw, overrides)
    params_file.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    load_params(path=params_file)


def reproduce(repo: Path, dest: Path, shrink: bool, overrides: list[str], targets: list[str], log: Path) -> None:
    """A fresh clone of `repo` at `dest`, `dvc repro`, then `dvc status` must be clean."""
    run(["git", "clone", "--quiet", str(repo), str(dest)], dest.parent, log)
    if shrink or overrides:
        adjust_params(dest / "params.yaml", shrink, overrides)
    dvc = [sys.executable, "-m", "dvc"]
    run([*dvc, "repro", "--force", "--single-item", "machine"], dest, log)  # as `make repro` does
    run([*dvc, "repro", *targets], dest, log)
    status = run([*dvc, "status", "--json", *targets], dest, log)
    if yaml.safe_load(status or "{}"):
        raise CheckFailed(f"`dvc status` is not clean after `dvc repro` in {dest}:\n{status}")


def is_timing(path: str) -> bool:
    return any(fnmatch.fnmatch(path, pattern) for pattern in TIMINGS)


def locked_outputs(project: Path, lock_text: str | None = None) -> dict[str, str]:
    """Every output recorded in dvc.lock (or in `lock_text`), with its hash, except the timing files."""
    lock = yaml.safe_load(lock_text if lock_text is not None else (project / "dvc.lock").read_text(encoding="utf-8"))
    outputs = {}
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if not is_timing(out["path"]):
                outputs[out["path"]] = out["md5"]
    return outputs


def file_hashes(project: Path, path: str) -> dict[str, str]:
    """md5 of each file of output `path` (a file or a folder), keyed by path in the project."""
    root = project / path
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(project).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


def describe_difference(first: Path, second: Path, path: str) -> str:
    """Which files of output `path` differ, and a diff of the first text file among them."""
    a, b = file_hashes(first, path), file_hashes(second, path)
    differing = sorted(name for name in a.keys() | b.keys() if a.get(name) != b.get(name))
    message = f"{path} differs between the runs: {', '.join(differing[:5])}{' ...' if len(differing) > 5 else ''}"
    text = next((n for n in differing if n in a and n in b and n.endswith((".json", ".csv", ".tsv", ".md"))), None)
    if text:
        diff = difflib.unified_diff(
            (first / text).read_text(encoding="utf-8").splitlines(),
            (second / text).read_text(encoding="utf-8").splitlines(),
            f"run1/{text}", f"run2/{text}", lineterm="", n=1,
        )
        message += "\n" + "\n".join(list(diff)[:20])
    return message


def compare(first: Path, second: Path) -> list[str]:
    """Differences between two runs' outputs, one message each; empty when they agree."""
    a, b = locked_outputs(first), locked_outputs(second)
    return [
        describe_difference(first, second, path) if path in a and path in b else f"{path} is only in one run's dvc.lock"
        for path in sorted(a.keys() | b.keys())
        if a.get(path) != b.get(path)
    ]


def committed(project: Path, path: str) -> str | None:
    """The text of `path` as committed at HEAD in `project`, or None where HEAD has no such file."""
    result = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=project, capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None


def accuracy_deltas(path: str, old: dict, new: dict) -> list[str]:
    """One line per format of an evaluate accuracy.json: committed accuracy -> this run's, and the change."""
    setting = Path(path).parent.parent.name  # metrics/epochs/e20/evaluate/accuracy.json -> e20
    return [
        f"  {setting} {fmt}: accuracy {old[fmt]['accuracy']:.3f} -> {new[fmt]['accuracy']:.3f} "
        f"({new[fmt]['accuracy'] - old[fmt]['accuracy']:+.3f})"
        for fmt in new if fmt in old
    ]


def likely_cause(differing: list[str], reference: dict | None, here: dict | None, precision: str) -> str:
    """The most likely reason outputs differ from the committed ones, from what differs first in
    the pipeline's order and from what the two machines recorded (metrics/machine.json)."""
    if any(p.startswith("data/raw") for p in differing):
        return "the crawled data differs (data/raw): every later output follows from it"
    if any(p.startswith("data/split") for p in differing):
        return "the split differs (data/split) although the data is the same: the split code or its params changed"
    if not any(p.startswith("models/") for p in differing):
        return "the models are identical: the evaluation code, its params or a library version differs"
    if reference and here:
        if precision == "auto" and reference.get("bf16_native") != here.get("bf16_native"):
            ref, this = ("bf16", "fp32") if reference.get("bf16_native") else ("fp32", "bf16")
            return (f"this CPU trains in {this} where the reference machine trained in {ref} "
                    f"(train.precision: auto; reference CPU: {reference.get('cpu')}, this one: {here.get('cpu')})")
        if reference.get("cpu") != here.get("cpu"):
            return (f"another CPU ({here.get('cpu')}, reference {reference.get('cpu')}): the same precision, "
                    f"but its kernels round differently, so training takes another path")
    return "training did not reproduce on the same kind of machine: a library version or the thread count differs"


def compare_with_lock(project: Path) -> tuple[list[str], list[str]]:
    """Every output of this run's dvc.lock against the committed one (HEAD in `project`).
    Returns (identical paths, messages about the different ones, the cause last)."""
    lock_text = committed(project, "dvc.lock")
    if lock_text is None:
        raise CheckFailed(f"{project} has no committed dvc.lock to compare with")
    old, new = locked_outputs(project, lock_text), locked_outputs(project)
    identical = sorted(p for p in old if new.get(p) == old[p])
    differing = sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))
    messages = []
    for path in differing:
        if path not in old or path not in new:
            messages.append(f"{path}: only in {'this run' if path in new else 'the committed'} dvc.lock")
            continue
        messages.append(f"{path}: different")
        before = committed(project, path)
        if fnmatch.fnmatch(path, ACCURACY) and before is not None and (project / path).is_file():
            messages += accuracy_deltas(path, json.loads(before), json.loads((project / path).read_text(encoding="utf-8")))
    if differing:
        reference, here = committed(project, "metrics/machine.json"), project / "metrics/machine.json"
        params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
        messages.append("likely cause: " + likely_cause(
            differing,
            json.loads(reference) if reference else None,
            json.loads(here.read_text(encoding="utf-8")) if here.is_file() else None,
            str(params.get("train", {}).get("precision", "auto")),
        ))
    return identical, messages


def check_against_lock(repo: Path, work: Path, log: Path, targets: list[str]) -> int:
    dest = work / "run"
    started = time.perf_counter()
    reproduce(repo, dest, False, [], targets, log)
    print(f"check-repro: dvc repro in {time.perf_counter() - started:.0f} s, dvc status clean", flush=True)
    identical, messages = compare_with_lock(dest)
    for path in identical:
        print(f"identical: {path}")
    print("\n".join(messages))
    timings = ", ".join(TIMINGS)
    if messages:
        print(f"check-repro: DIFFERENT from the committed dvc.lock ({len(identical)} outputs identical; "
              f"timings not compared: {timings}); clone and log kept in {work}", file=sys.stderr)
        return 1
    print(f"check-repro: OK: all {len(identical)} outputs identical to the committed dvc.lock (timings not compared: {timings})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help="stages for dvc repro (default: all)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the git repository to clone (default: .)")
    parser.add_argument("--tiny", action="store_true", help="shrink params.yaml to the tests' tiny profile")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep", action="store_true", help="keep the clones for inspection")
    parser.add_argument("--against-lock", action="store_true",
                        help="one run with the committed params, compared with the committed dvc.lock")
    args = parser.parse_args()
    if args.against_lock and (args.tiny or args.overrides):
        parser.error("--against-lock runs the committed params: no --tiny, no --set")
    repo = args.repo.resolve()
    if subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout.strip():
        print(f"check-repro: {repo} has uncommitted changes; they are not part of the check (it clones HEAD)")

    work = Path(tempfile.mkdtemp(prefix="check-repro-"))
    log = work / "log.txt"
    if args.against_lock:
        try:
            status = check_against_lock(repo, work, log, args.targets)
        except PipelineError as e:
            print(f"check-repro: FAILED: {e}\nclone and log kept in {work}", file=sys.stderr)
            return 1
        if status == 0 and not args.keep:
            shutil.rmtree(work)
        return status
    runs = [work / "run1", work / "run2"]
    try:
        for i, dest in enumerate(runs, 1):
            started = time.perf_counter()
            reproduce(repo, dest, args.tiny, args.overrides, args.targets, log)
            print(f"check-repro: run {i}: dvc repro in {time.perf_counter() - started:.0f} s, dvc status clean", flush=True)
        differences = compare(*runs)
        if differences:
            raise CheckFailed("the two runs differ\n" + "\n".join(differences))
        compared = len(locked_outputs(runs[0]))
    except PipelineError as e:  # a failed command, a bad --set, or runs that differ
        print(f"check-repro: FAILED: {e}\nclones and log kept in {work}", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(work)
    print(f"check-repro: OK: {compared} outputs identical in both runs (timings not compared: {', '.join(TIMINGS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
