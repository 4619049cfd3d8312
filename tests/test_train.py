"""The train stage on the tiny profile: deterministic, observable, and safe to interrupt."""

from __future__ import annotations

import fcntl
import io
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
import torch.nn.functional as F

import numpy as np
from PIL import Image

from birds_onnx.preprocess import PreprocessSpec, normalize
from helpers.images import photo
from helpers.project import make_project, params_file, run, tiny_params
from stages.shared.model import build_model
from stages.shared.params import ParamError, Train, load_params
from stages import machine, train
from stages.shared import cpu
from stages.shared.cpu import cpu_has_bf16
from stages.train import compile_model, predict
from stages.tools.train_bench import loop_settings
from stages.shared.train_data import EpochBatches, Normalize, TrainingImages, cache_in_memory, decoded_bytes, make_loader

METRICS = {"train_loss", "train_acc", "test_acc", "lr"}


@pytest.fixture(scope="module")
def project(module_tmp_path) -> Path:
    """A tiny project with its data crawled and split, ready to train."""
    project = make_project(module_tmp_path / "project", tiny_params())
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
    files = [project / f"models/e{epochs}/model.pth", *sorted((project / f"metrics/epochs/e{epochs}/train").rglob("*.*"))]
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

    summary = json.loads(first["metrics/epochs/e2/train/metrics.json"])
    assert set(summary) == METRICS | {"step"} and summary["step"] == 2
    for name in METRICS:
        rows = first[f"metrics/epochs/e2/train/plots/metrics/{name}.tsv"].decode().splitlines()
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
        # Ctrl-C's default action, even where this run was started with SIGINT ignored (a background job)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
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


@pytest.fixture(scope="module")
def pictures(module_tmp_path) -> list[Path]:
    folder = module_tmp_path / "pictures"
    folder.mkdir()
    return [photo(folder / f"{i}.jpg", (40 + 3 * i, 44), seed=i) for i in range(8)]


def epoch_batches(data: TrainingImages, epoch: int, workers: int, rank: int = 0, world: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    batches = EpochBatches(len(data), 4, seed=data.seed, rank=rank, world_size=world)
    batches.epoch = epoch
    torch.manual_seed(epoch + 1000)  # whatever state the global RNG is in must not matter
    return list(make_loader(data, batches, workers))


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


def test_batches_depend_on_seed_epoch_and_index_alone(pictures):
    spec = PreprocessSpec(resize=40, crop=32)
    in_memory = TrainingImages(pictures, list(range(8)), spec, 0.35, seed=7, in_memory=True)
    from_disk = TrainingImages(pictures, list(range(8)), spec, 0.35, seed=7, in_memory=False)

    first = epoch_batches(in_memory, 1, workers=0)
    assert len(first) == 2 and first[0][0].shape == (4, 3, 32, 32) and first[0][0].dtype == torch.uint8
    # the same batches read from disk by two worker processes as decoded once in this one
    assert same(epoch_batches(from_disk, 1, workers=2), first)
    # two ranks: each its half of every batch, together the one-process batches
    halves = [epoch_batches(in_memory, 1, workers=1, rank=r, world=2) for r in (0, 1)]
    assert same([(torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])) for a, b in zip(*halves)], first)
    # another epoch or another seed: another order and other crops
    assert not same(epoch_batches(in_memory, 2, workers=0), first)
    other_seed = TrainingImages(pictures, list(range(8)), spec, 0.35, seed=8, in_memory=True)
    assert not same(epoch_batches(other_seed, 1, workers=0), first)


def test_each_image_gets_its_own_crop_and_flip_in_each_epoch(tmp_path):
    """One picture, brighter to the right, as 16 items: each index and each epoch its own crop,
    some mirrored, the same one whenever the same (epoch, index) is asked for again."""
    picture = photo(tmp_path / "p.jpg", (64, 40))
    data = TrainingImages([picture] * 16, [0] * 16, PreprocessSpec(resize=40, crop=32), 0.35, seed=7, in_memory=True)
    first = [data[(1, i)][0] for i in range(16)]
    assert len({crop.numpy().tobytes() for crop in first}) == 16
    second = [data[(2, i)][0] for i in range(16)]
    assert all(not torch.equal(a, b) for a, b in zip(first, second))
    assert all(torch.equal(data[(1, i)][0], first[i]) for i in (0, 5, 15))
    mirrored = [crop[..., :8].float().mean() > crop[..., -8:].float().mean() for crop in first + second]
    assert 0 < sum(mirrored) < len(mirrored)  # flips are random per item: some of the 32 crops mirrored, not all (any such count is right)
    # the crops keep from 35% to all of the picture: from the whole picture's size down
    assert all(crop.shape == (3, 32, 32) for crop in first)


def test_each_epoch_is_a_new_permutation_of_the_images():
    batches = EpochBatches(10, 3, seed=5)
    orders = []
    for epoch in (1, 2, 3):
        batches.epoch = epoch
        steps = list(batches)
        assert len(steps) == len(batches) == 3 and all(len(step) == 3 for step in steps)  # the last image left out
        assert all(e == epoch for step in steps for e, _ in step)
        order = [i for step in steps for _, i in step]
        assert len(set(order)) == 9 and set(order) <= set(range(10))
        orders.append(order)
    assert len({tuple(order) for order in orders}) == 3
    batches.epoch = 2
    assert [i for step in batches for _, i in step] == orders[1]  # an epoch's order is its own, asked again
    with pytest.raises(ValueError, match="batch size 3 is not a multiple of 2 processes"):
        EpochBatches(10, 3, seed=5, world_size=2)


def test_cache_auto_decodes_in_memory_only_within_the_budget(pictures):
    needed = decoded_bytes(pictures, 40)
    assert 8 * 3 * 40 * 40 <= needed <= 8 * 3 * 40 * 50  # shorter side 40, longer 40 to 50
    assert cache_in_memory("auto", pictures, 40, budget_mb=1)  # about 0.05 MB decoded
    assert not cache_in_memory("auto", pictures, 4000, budget_mb=1)  # about 500 MB at 4000 px
    assert cache_in_memory(True, pictures, 4000, budget_mb=1) and not cache_in_memory(False, pictures, 40, budget_mb=1)


def test_a_decoded_set_that_exactly_fills_the_budget_is_cached(tmp_path):
    picture = tmp_path / "square.png"
    Image.new("RGB", (1024, 1024)).save(picture)  # 3 x 1024 x 1024 bytes decoded: 3 MiB
    assert decoded_bytes([picture], 1024) == 3 * 2**20
    assert cache_in_memory("auto", [picture], 1024, budget_mb=3)
    assert not cache_in_memory("auto", [picture, picture], 1024, budget_mb=5)


def test_training_normalises_with_the_arithmetic_of_preprocess(pictures):
    spec = PreprocessSpec(resize=40, crop=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    images = [Image.open(p).convert("RGB").crop((0, 0, 32, 32)) for p in pictures[:3]]
    uint8 = torch.stack([torch.from_numpy(np.asarray(img)).permute(2, 0, 1) for img in images])
    batch = Normalize(spec, torch.device("cpu"))(uint8)
    assert batch.dtype == torch.float32 and batch.is_contiguous(memory_format=torch.channels_last)
    # bit for bit, not merely close
    assert torch.equal(batch, torch.from_numpy(np.stack([normalize(img, spec) for img in images])))


def test_logged_test_accuracy_is_computed_in_fp32():
    torch.manual_seed(0)
    model = build_model(3)
    x = torch.randn(5, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as during a bf16 training epoch
        logits = predict(model, x)
    assert logits.dtype == torch.float32
    assert torch.equal(logits, model.eval()(x).detach())


def test_compile_without_a_compiler_names_the_param(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    with pytest.raises(ParamError, match="train.compile is true but the C\\+\\+ compiler 'no-such-c\\+\\+-compiler'"):
        compile_model(torch.nn.Linear(2, 2), Train(compile=True), torch.device("cpu"))
    model = torch.nn.Linear(2, 2)
    assert compile_model(model, Train(compile=False), torch.device("cpu")) is model


def test_train_bench_prints_both_settings(project):
    out = run([sys.executable, "-m", "stages.tools.train_bench", "--steps", "2", "--warmup", "0", "--no-loop"], project).stdout
    assert "fp32, channels_last, eager" in out
    assert "GEMM peaks" in out and ("bf16 torch.mm" in out) == cpu_has_bf16()
    # each setting's share of its roofline: a percentage, not nan
    assert re.search(r"fp32, channels_last, eager +[\d.]+ +\d+ +[\d.]+ +\d+%", out), out
    assert "speed-up of the chosen setting" in out and "input pipeline" in out


@pytest.mark.slow
def test_train_bench_times_the_loop_per_setting(project):
    out = run([sys.executable, "-m", "stages.tools.train_bench", "--loop-only", "--images", "4",
               "--loop-steps", "1", "--loop-warmup", "0"], project).stdout
    for setting in ("4 images, in memory, 1 process", "4 images, in memory, 2 processes", "4 images, read from disk, 1 process"):
        assert re.search(setting + r" x \d threads +[\d.]+ +\d+ +\d+\n", out), out


def test_the_loop_benchmark_compares_processes_on_the_fewest_images_and_memory_with_disk_on_each_count(tmp_path):
    raw = tiny_params()
    raw["train"].update(threads=4, processes=1, batch_size=4)
    settings = loop_settings(load_params(path=params_file(tmp_path, raw)), [4, 16])
    assert [(label, list(setting.values())) for label, setting in settings] == [
        ("4 images, in memory, 1 process x 4 threads", [4, True, 1, 4]),
        ("4 images, in memory, 2 processes x 2 threads", [4, True, 2, 2]),  # the threads shared out
        ("4 images, read from disk, 1 process x 4 threads", [4, False, 1, 4]),
        ("16 images, in memory, 1 process x 4 threads", [16, True, 1, 4]),
        ("16 images, read from disk, 1 process x 4 threads", [16, False, 1, 4]),
    ]
    assert list(settings[0][1]) == ["images", "memory", "processes", "threads"]
    raw["train"].update(batch_size=3)  # a batch that 2 processes cannot share: no processes setting
    assert [label for label, _ in loop_settings(load_params(path=params_file(tmp_path, raw)), [4])] == [
        "4 images, in memory, 1 process x 4 threads", "4 images, read from disk, 1 process x 4 threads"]


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse2 avx2 fma", False),
    ("fpu avx2 avx512f avx512_bf16", True),
    ("fpu avx2 amx_bf16 amx_tile", True),
])
def test_bf16_is_chosen_where_the_cpu_computes_it_natively(flags, expected, monkeypatch, tmp_path):
    # README: train.precision auto trains in bf16 on AVX512-BF16 or AMX CPUs, in fp32 elsewhere
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    monkeypatch.setattr(cpu, "CPUINFO", cpuinfo)
    assert cpu_has_bf16() is expected
    assert machine.describe()["bf16_native"] is expected  # the machine stage says what training chose
    auto = Train.model_construct(precision="auto")
    assert train.use_bf16(auto, torch.device("cpu")) is expected
    assert train.use_bf16(Train.model_construct(precision="fp32"), torch.device("cpu")) is False
    assert train.use_bf16(Train.model_construct(precision="bf16"), torch.device("cpu")) is True


def test_a_training_step_runs_the_forward_in_bf16_only_when_asked_and_the_loss_in_fp32():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 0])
    for bf16, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        optimizer = train.make_optimizer(model, Train(lr=0.1, weight_decay=0.5))
        before = [p.detach().clone() for p in model.parameters()]
        loss, logits = train.train_step(model, optimizer, x, y, bf16)
        assert logits.dtype == dtype and not logits.requires_grad and not loss.requires_grad
        assert loss.dtype == torch.float32 and loss.item() == F.cross_entropy(logits.float(), y).item()
        assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))  # one update of every weight
    assert isinstance(optimizer, torch.optim.AdamW)
    assert {k: optimizer.param_groups[0][k] for k in ("lr", "weight_decay")} == {"lr": 0.1, "weight_decay": 0.5}


def test_the_progress_bar_shows_in_a_terminal_only_outside_ci_and_in_the_first_rank(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    monkeypatch.delenv("CI", raising=False)
    assert not train.progress_bar([1], 1, "epoch 1/1", quiet=False).disable
    assert train.progress_bar([1], 1, "epoch 1/1", quiet=True).disable  # a rank but the first
    monkeypatch.setenv("CI", "true")
    assert train.progress_bar([1], 1, "epoch 1/1", quiet=False).disable
    monkeypatch.delenv("CI")
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a file or a pipe
    assert train.progress_bar([1], 1, "epoch 1/1", quiet=False).disable


def test_cpu_info_reads_the_model_name_and_flags_whatever_the_file_holds(monkeypatch, tmp_path):
    """The first model name (a colon inside it kept, bytes beyond UTF-8 replaced, not fatal) and
    the flags; without flags, none; without a model name or a cpuinfo file, Python's own name."""
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(cpu, "CPUINFO", cpuinfo)
    monkeypatch.setattr(cpu.platform, "processor", lambda: "from platform")
    cpuinfo.write_bytes(b"processor\t: 0\nmodel name\t: Xeon: rev \xff 2\nflags\t\t: fpu avx2 amx_bf16\n")
    assert cpu.cpu_info() == ("Xeon: rev \ufffd 2", {"fpu", "avx2", "amx_bf16"})
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Xeon\n")
    assert cpu.cpu_info() == ("Xeon", set()) and not cpu.cpu_has_bf16()
    cpuinfo.write_text("processor\t: 0\nflags\t\t: avx512_bf16\n")
    assert cpu.cpu_info() == ("from platform", {"avx512_bf16"}) and cpu.cpu_has_bf16()
    cpuinfo.unlink()
    assert cpu.cpu_info() == ("from platform", set())
