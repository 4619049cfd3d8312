"""Beyond one process, on the tiny profile: data-parallel training through torchrun (gloo, two
processes, and two "nodes" on one machine), a DVC remote in a local folder, DVC's experiment
queue. One pipeline, shared by the tests below, so that DVC and torch start as few times as
possible; each test runs alone and in any order (each leaves the pipeline as it found it)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.project import make_project, run, tiny_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clone_a(module_tmp_path) -> Path:
    """A tiny project trained in 2 processes of 1 thread each by `dvc repro`, one setting (2 epochs)."""
    params = tiny_params()
    params["train"].update(processes=2, threads=1, epochs=[2])
    project = make_project(module_tmp_path / "a", params)
    run(["dvc", "repro"], project)
    return project


def weights(project: Path, epochs: int) -> bytes:
    return (project / f"models/e{epochs}/model.pth").read_bytes()


def test_two_processes_train_a_model_that_export_and_evaluate_accept(clone_a):
    accuracy = json.loads((clone_a / "metrics/epochs/e2/evaluate/accuracy.json").read_text())
    assert accuracy["onnx"]["agreement_with_pth"] == 1.0
    assert json.loads((clone_a / "metrics/epochs/e2/export.json").read_text()).keys() == {"onnx", "onnx-int8"}
    # training's last test accuracy is the evaluate stage's: both fp32, the same weights
    logged = json.loads((clone_a / "metrics/epochs/e2/train/metrics.json").read_text())
    assert logged["test_acc"] == pytest.approx(accuracy["pth"]["accuracy"], abs=1e-6)  # evaluate rounds to 6 places

    first = weights(clone_a, 2)
    rerun = run(["dvc", "repro", "--force", "--single-item", "train@2"], clone_a)
    assert "Running stage 'train@2'" in rerun.stdout
    assert weights(clone_a, 2) == first  # byte for byte
    assert "up to date" in run(["dvc", "status"], clone_a).stdout


def test_two_nodes_on_one_machine_train_the_same_weights_as_two_processes(clone_a):
    first = weights(clone_a, 2)
    (clone_a / "models/e2/model.pth").unlink()
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    port = 29400 + os.getpid() % 1000
    node = ["torchrun", "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "tiny", "-m", "stages.train", "--epochs", "2"]
    nodes = [subprocess.Popen(node, cwd=clone_a, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    logs = [n.communicate(timeout=600)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], logs
    assert weights(clone_a, 2) == first
    assert "up to date" in run(["dvc", "status"], clone_a).stdout


@pytest.fixture(scope="module")
def clone_b(clone_a) -> Path:
    """A git clone of clone_a's committed results, its outputs pulled from a DVC remote in a
    local folder that clone_a pushed to."""
    remote = clone_a.parent / "remote"
    run(["git", "add", "-A"], clone_a)  # dvc.lock and the metrics (cache: false)
    run(["git", "commit", "-q", "-m", "trained"], clone_a)
    run(["dvc", "remote", "add", "--default", "shared", str(remote)], clone_a)
    run(["git", "commit", "-q", "-am", "a DVC remote"], clone_a)
    run(["dvc", "push"], clone_a)

    clone_b = clone_a.parent / "b"
    run(["git", "clone", "-q", str(clone_a), str(clone_b)], clone_a.parent)
    run(["dvc", "pull"], clone_b)
    return clone_b


def test_a_clone_pulls_the_outputs_from_a_remote_instead_of_training(clone_a, clone_b):
    assert weights(clone_b, 2) == weights(clone_a, 2)
    assert "up to date" in run(["dvc", "status"], clone_b).stdout
    assert "Data and pipelines are up to date" in run(["dvc", "repro"], clone_b).stdout


def test_queued_experiments_both_finish_with_their_metrics(clone_b):
    # one retrains (one setting of 1 epoch: half the time of the tiny profile's two), the other only
    # measures again: the queue reruns what an experiment's params change and keeps the rest
    experiments = {"retrain": ["-S", "train.lr=0.002", "-S", "train.epochs=[1]"], "remeasure": ["-S", "evaluate.batch_size=4"]}
    for name, settings in experiments.items():
        run(["dvc", "exp", "run", "--queue", "--name", name, *settings], clone_b)
    run(["dvc", "queue", "start", "--jobs", "1"], clone_b)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], clone_b).stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert status.count("Success") == 2, status
    remeasured = run(["dvc", "queue", "logs", "remeasure"], clone_b).stdout
    assert "Running stage 'evaluate@2'" in remeasured and "Running stage 'train@2'" not in remeasured, remeasured

    shown = json.loads(run(["dvc", "exp", "show", "--json"], clone_b).stdout)
    finished = {exp["name"]: exp["revs"][0] for commit in shown for exp in (commit.get("experiments") or [])}
    assert finished.keys() == {"retrain", "remeasure"}, shown
    params = {name: exp["data"]["params"]["params.yaml"]["data"] for name, exp in finished.items()}
    assert params["retrain"]["train"]["lr"] == 0.002 and params["remeasure"]["evaluate"]["batch_size"] == 4
    for name, epochs in (("retrain", 1), ("remeasure", 2)):
        headline = finished[name]["data"]["metrics"]["metrics/summary/1/pth.json"]["data"]  # what `dvc metrics show` prints
        # the accuracy of the experiment's own predictions: evaluate's confusion csv in its commit, a row per test image
        confusion = run(["git", "show", f"{finished[name]['rev']}:metrics/epochs/e{epochs}/evaluate/confusion/pth.csv"], clone_b).stdout
        rows = list(csv.DictReader(io.StringIO(confusion)))
        assert headline["epochs"] == epochs and headline["accuracy"] == round(sum(r["actual"] == r["predicted"] for r in rows) / len(rows), 6)
    # measured again, the same model: the accuracy the clone's results hold
    pulled = json.loads((clone_b / "metrics/epochs/e2/evaluate/accuracy.json").read_text())
    assert finished["remeasure"]["data"]["metrics"]["metrics/summary/1/pth.json"]["data"]["accuracy"] == pulled["pth"]["accuracy"]


def test_a_failed_rank_fails_training_with_one_line_and_no_model(clone_a, tmp_path):
    # the stage alone on clone_a's code, params and data, outside DVC: the training logs it
    # writes under metrics/epochs would change the shared pipeline's report dependency
    project = tmp_path / "project"
    for folder in ("stages", "birds_onnx", "data"):
        shutil.copytree(clone_a / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(clone_a / "params.yaml", project)
    model = project / "models/e50/model.pth"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(b"a finished model of an earlier run")
    train = subprocess.Popen([sys.executable, "-m", "stages.train", "--epochs", "50"], cwd=project,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in train.stdout:
            if line.startswith("epoch 1/50"):
                break
        os.kill(rank_process(train.pid, rank=1), signal.SIGKILL)
        stderr = train.communicate(timeout=120)[1]
    finally:
        train.kill()
    assert train.returncode == 1
    assert stderr.strip().splitlines() == [
        "error: training process rank 1 of 2 was killed by SIGKILL; the other ranks were stopped and no model was written"
    ]
    assert not model.exists()


def rank_process(launcher: int, rank: int) -> int:
    """The pid of the training process of `rank` that torchrun's launcher `launcher` started."""
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent == launcher and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no process of rank {rank} under {launcher}")
