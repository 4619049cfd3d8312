"""The train stage on the tiny profile: deterministic, observable, and safe to interrupt."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import torch

from conftest import make_project, run, tiny_params
from stages.params import ParamError, Train
from birds_onnx.preprocess import PreprocessSpec
from stages.train import TrainingImages, compile_model

METRICS = {"train_loss", "train_acc", "test_acc", "lr"}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A tiny project with its data crawled and split, ready to train."""
    project = make_project(tmp_path_factory.mktemp("train") / "project", tiny_params())
    run([sys.executable, "-m", "stages.crawl"], project)
    run([sys.executable, "-m", "stages.split"], project)
    return project


def train_in_terminal(project: Path, epochs: int, env: dict) -> tuple[str, str]:
    """Run the train stage with a terminal as stderr (where the progress bar goes).
    Returns stdout and what the terminal showed."""
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))  # a new pty is 0 columns wide
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.train", "--epochs", str(epochs)],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=child, text=True,
    )
    os.close(child)
    shown = b""
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        shown += chunk
    os.close(parent)
    stdout = proc.stdout.read()
    assert proc.wait() == 0, stdout + shown.decode(errors="replace")
    return stdout, shown.decode(errors="replace")


def outputs(project: Path, epochs: int) -> dict[str, bytes]:
    files = [project / f"models/e{epochs}/model.pth", *sorted((project / f"metrics/e{epochs}/train").rglob("*.*"))]
    return {p.relative_to(project).as_posix(): p.read_bytes() for p in files}


def epoch_lines(log: str) -> list[str]:
    """The per-epoch summaries without their img/s, a timing."""
    return [line.rsplit("  ", 1)[0] for line in log.splitlines() if line.startswith("epoch ")]


def test_same_params_give_identical_weights_and_metrics(project):
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    first_log, terminal = train_in_terminal(project, 2, env)
    first = outputs(project, 2)
    second_log, ci_terminal = train_in_terminal(project, 2, env | {"CI": "true"})

    assert outputs(project, 2) == first  # byte for byte: the checkpoint and dvclive's files
    assert epoch_lines(first_log) == epoch_lines(second_log) and len(epoch_lines(first_log)) == 2
    # a progress bar with loss and img/s in a terminal, none under CI
    assert "epoch 1/2" in terminal and "loss=" in terminal and "img_s=" in terminal
    assert "img_s=" not in ci_terminal

    summary = json.loads(first["metrics/e2/train/metrics.json"])
    assert set(summary) == METRICS | {"step"} and summary["step"] == 2
    for name in METRICS:
        rows = first[f"metrics/e2/train/plots/metrics/{name}.tsv"].decode().splitlines()
        assert rows[0] == f"step\t{name}" and [r.split("\t")[0] for r in rows[1:]] == ["1", "2"]
    checkpoint = torch.load(project / "models/e2/model.pth", weights_only=True)
    assert checkpoint["classes"] == ["myna", "reed_warbler", "sunbird"] and checkpoint["epochs"] == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_interrupted_training_leaves_no_model(project, sig):
    model_dir = project / "models/e50"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.pth").write_bytes(b"a finished model of an earlier run")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.train", "--epochs", "50"],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        for line in proc.stdout:
            if line.startswith("epoch 1/50"):
                break
        proc.send_signal(sig)
        assert proc.wait(timeout=60) != 0
    finally:
        proc.kill()
    assert list(model_dir.iterdir()) == []


def test_data_order_and_augmentation_depend_on_the_seed_alone():
    spec = PreprocessSpec(resize=40, crop=32)
    images = [torch.randint(256, (3, 40, 40 + i), dtype=torch.uint8) for i in range(8)]
    data = TrainingImages(images, list(range(8)), spec, min_crop_scale=0.35)

    def epoch(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        torch.manual_seed(seed + 1000)  # whatever state the global RNG is in must not matter
        return list(data.batches(4, torch.Generator().manual_seed(seed)))

    first = epoch(0)
    assert len(first) == 2 and first[0][0].shape == (4, 3, 32, 32)
    assert first[0][0].is_contiguous(memory_format=torch.channels_last)
    again = epoch(0)
    assert all(torch.equal(a, b) for (xa, ya), (xb, yb) in zip(first, again) for a, b in ((xa, xb), (ya, yb)))
    other = epoch(1)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, other))


def test_compile_without_a_compiler_names_the_param(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    with pytest.raises(ParamError, match="train.compile is true but the C\\+\\+ compiler 'no-such-c\\+\\+-compiler'"):
        compile_model(torch.nn.Linear(2, 2), Train(compile=True), torch.device("cpu"))
    model = torch.nn.Linear(2, 2)
    assert compile_model(model, Train(compile=False), torch.device("cpu")) is model


def test_train_bench_prints_both_settings(project):
    out = run([sys.executable, "-m", "stages.tools.train_bench", "--steps", "2", "--warmup", "0"], project).stdout
    assert "fp32, channels_last, eager" in out
    assert "GEMM peaks" in out and "bf16 torch.mm" in out
    # each setting's share of its roofline: a percentage, not nan
    assert re.search(r"fp32, channels_last, eager +[\d.]+ +\d+ +[\d.]+ +\d+%", out), out
    assert "speed-up of the chosen setting" in out and "input pipeline" in out
