"""What the training loop computes, checked against what it logs: the train stage's main() run in
this process (and as two ranks) on a small network, every training step written down
(tests/helpers/recorded_training.py). The determinism tests of tests/test_train.py pass whatever the
loop computes, as long as it computes it the same way twice; these say what it must compute."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from birds_onnx.preprocess import PreprocessSpec, preprocess_batch
from helpers.images import photo
from helpers.models import stages_on_the_stage_network
from helpers.mutation import built_for_every_test
from helpers.project import ROOT, params_file, tiny_params
from helpers.recorded_training import Recording
from stages import train
from stages.shared import distributed
from stages.shared.splits import Example, read_split, write_split
from stages.shared.model import load_checkpoint
from stages.shared.params import ParamError, Train, load_params

EPOCHS = 3
PEAK_LR = 0.01
BATCH = 4
TRAIN_PER_CLASS, TEST_PER_CLASS = 4, (2, 2, 1)  # 12 training images: 3 steps of 4, none left over


def loop_project(root: Path, **train_params) -> Path:
    """A project folder holding params.yaml, 17 pictures of 3 classes and their split: 12 for
    training (3 batches of 4), 5 for testing, so a train accuracy (twelfths) and a test accuracy
    (fifths) can be equal only at 0 and 1."""
    raw = tiny_params()
    raw["seed"] = 3
    raw["preprocess"].update(resize=40, crop=32)
    raw["train"].update({"epochs": [EPOCHS], "batch_size": BATCH, "lr": PEAK_LR, "precision": "fp32", "threads": 1,
                         "processes": 1, "workers": 0, "cache_images": True} | train_params)
    root.mkdir(parents=True)
    params_file(root, raw)
    train_split, test_split = [], []
    for c, label in enumerate(load_params(path=root / "params.yaml").slugs):
        (root / "data/raw" / label).mkdir(parents=True)
        for i in range(TRAIN_PER_CLASS + TEST_PER_CLASS[c]):
            # each class its own brightness, so that a few steps learn something
            path = photo(root / "data/raw" / label / f"{i}.jpg", (44 + 3 * i, 40 + 2 * c), seed=10 * c + i)
            _tint(path, 0.5 + 0.4 * c)
            (train_split if i < TRAIN_PER_CLASS else test_split).append(Example(path.relative_to(root), label))
    write_split(root / "data/split/train.csv", train_split)
    write_split(root / "data/split/test.csv", test_split)
    return root


def _tint(path: Path, factor: float) -> None:
    from PIL import Image

    with Image.open(path) as img:
        pixels = np.asarray(img).astype(np.float32) * factor
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=95)


class TorchState:
    """torch's process-wide settings that configure_torch changes, put back afterwards."""

    def __enter__(self):
        self.saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                      torch.is_deterministic_algorithms_warn_only_enabled(), torch.utils.deterministic.fill_uninitialized_memory)
        return self

    def __exit__(self, *exc):
        threads, deterministic, warn_only, fill = self.saved
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill


def train_in_this_process(project: Path, epochs: int = EPOCHS) -> Recording:
    """The stage's main() with every step recorded; what it printed is recording.printed."""
    recording = Recording()
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, stages_on_the_stage_network(), TorchState(), contextlib.redirect_stdout(printed):
        recording.install(patch)
        patch.chdir(project)
        patch.delenv("CI", raising=False)
        patch.setattr("sys.argv", ["train", "--epochs", str(epochs)])
        train.main()
    recording.printed = printed.getvalue()
    return recording


def logged(project: Path, name: str, epochs: int = EPOCHS) -> list[float]:
    """A metric's curve as dvclive wrote it, one value per epoch."""
    rows = (project / f"metrics/epochs/e{epochs}/train/plots/metrics/{name}.tsv").read_text().splitlines()[1:]
    assert [int(r.split("\t")[0]) for r in rows] == list(range(1, epochs + 1))
    return [float(r.split("\t")[1]) for r in rows]


def one_cycle(step: int, total_steps: int, peak: float, warmup: float = 0.15) -> float:
    """The learning rate after `step` steps of the one-cycle policy (Smith, 2018) as the train
    stage configures it: cosine from peak/25 up to `peak` over the first `warmup` share of the
    steps, then cosine down to peak/25/1e4 at the last step."""
    start, end = peak / 25, peak / 25 / 1e4
    top = warmup * total_steps - 1  # the step at which the peak is reached

    def cosine(a: float, b: float, share: float) -> float:
        return b + (a - b) / 2 * (math.cos(math.pi * share) + 1)

    if step <= top:
        return cosine(start, peak, step / top)
    return cosine(peak, end, (step - top) / (total_steps - 1 - top))


def accuracies(states: list[dict], x: torch.Tensor, labels: torch.Tensor, training_mode: bool = False) -> list[float]:
    """The test accuracy of each of `states` in fp32, in eval mode (or, to show they differ, in training mode)."""
    with stages_on_the_stage_network():
        from stages.shared.model import build_model

        model = build_model(3)
    shares = []
    for state in states:
        model.load_state_dict(state)
        model.train(training_mode)
        with torch.no_grad():
            shares.append((model(x).argmax(1) == labels).sum().item() / len(labels))
    return shares


def train_tiny_project(folder: Path) -> tuple[Path, Recording]:
    project = loop_project(folder / "project")
    return project, train_in_this_process(project)


@pytest.fixture(scope="module")
def trained(module_tmp_path) -> tuple[Path, Recording]:
    """A 3-epoch run of the train stage in this process, every step written down."""
    return built_for_every_test("trained", module_tmp_path / "one", train_tiny_project)


def epochs_served(recording: Recording) -> dict[int, list[int]]:
    served: dict[int, list[int]] = {}
    for epoch, index in recording.served:
        served.setdefault(epoch, []).append(index)
    return served


def test_each_epoch_serves_every_image_once_in_a_new_order(trained):
    _, recording = trained
    served = epochs_served(recording)
    assert list(served) == [1, 2, 3]  # each item asked for with its own epoch (its crop and flip depend on it)
    for order in served.values():
        assert sorted(order) == list(range(12))  # a permutation: every image once, none left over
    assert len({tuple(order) for order in served.values()}) == 3  # a new one each epoch
    # the steps took the images in the order served
    assert [s["epoch"] for s in recording.steps] == [1] * 3 + [2] * 3 + [3] * 3


def test_every_step_trains_in_training_mode_and_batch_norm_statistics_move(trained):
    project, recording = trained
    assert [s["training"] for s in recording.steps] == [True] * 9
    with stages_on_the_stage_network():
        final = load_checkpoint(project / f"models/e{EPOCHS}/model.pth")[0].state_dict()
    states = [recording.weights_at_epoch_start[e] for e in (1, 2, 3)] + [final]
    running = [name for name in final if name.endswith(("running_mean", "running_var"))]
    assert running
    for before, after in zip(states, states[1:]):  # every epoch moves every layer's statistics
        assert all(not torch.equal(before[name], after[name]) for name in running)


def test_the_learning_rate_follows_the_one_cycle_schedule_of_the_params(trained):
    project, recording = trained
    total = EPOCHS * 3
    assert [s["lr"] for s in recording.steps] == pytest.approx([one_cycle(k, total, PEAK_LR) for k in range(total)], rel=1e-9)
    assert logged(project, "lr") == pytest.approx([one_cycle(3 * e, total, PEAK_LR) for e in (1, 2, 3)], rel=1e-6)


def test_train_loss_and_accuracy_are_those_of_the_epochs_steps(trained):
    project, recording = trained
    loss, acc = [], []
    for epoch in (1, 2, 3):
        steps = [s for s in recording.steps if s["epoch"] == epoch]
        for s in steps:  # each step's loss is the fp32 cross-entropy of its logits
            assert s["loss"] == pytest.approx(F.cross_entropy(s["logits"].float(), s["labels"]).item(), rel=1e-6)
        seen = sum(len(s["labels"]) for s in steps)
        assert seen == 12
        loss.append(sum(s["loss"] * len(s["labels"]) for s in steps) / seen)
        acc.append(sum((s["logits"].argmax(1) == s["labels"]).sum().item() for s in steps) / seen)
    assert logged(project, "train_loss") == pytest.approx(loss, rel=1e-6)
    assert logged(project, "train_acc") == pytest.approx(acc, abs=1e-9)


def test_logged_test_accuracy_is_the_eval_mode_fp32_accuracy_of_each_epochs_weights(trained):
    project, recording = trained
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        test = read_split("test")
        spec = PreprocessSpec.from_dict(load_params("preprocess").preprocess.model_dump())
        classes = load_params("classes").slugs
    x = torch.from_numpy(preprocess_batch([project / e.path for e in test], spec))
    labels = torch.tensor([classes.index(e.label) for e in test])
    with stages_on_the_stage_network():
        final = load_checkpoint(project / f"models/e{EPOCHS}/model.pth")[0].state_dict()
    states = [recording.weights_at_epoch_start[2], recording.weights_at_epoch_start[3], final]  # as each epoch ended
    expected = accuracies(states, x, labels)
    assert logged(project, "test_acc") == pytest.approx(expected, abs=1e-9)
    # the wrong figures differ from it here: the train accuracy, the model in training mode
    assert logged(project, "train_acc") != pytest.approx(expected, abs=1e-9)
    assert accuracies(states, x, labels, training_mode=True) != pytest.approx(expected, abs=1e-9)


def test_two_ranks_log_the_totals_of_every_image_of_the_epoch(module_tmp_path, monkeypatch):
    """Two processes (gloo, one thread each) started by the stage's own launcher: each takes its
    half of every batch, and rank 0's logged figures are those of both halves."""
    project = loop_project(module_tmp_path / "two", processes=2)
    records = module_tmp_path / "records"
    records.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    monkeypatch.setenv("RECORD_TO", str(records))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    distributed.launch(2, 1, "helpers.recorded_training", ["--epochs", "2"])
    ranks = [torch.load(records / f"rank{r}.pt", weights_only=False) for r in (0, 1)]

    for epoch in (1, 2):
        halves = [[i for e, i in rank["served"] if e == epoch] for rank in ranks]
        assert len(halves[0]) == len(halves[1]) == 6 and sorted(halves[0] + halves[1]) == list(range(12))
    loss, acc = [], []
    for epoch in (1, 2):
        steps = [s for rank in ranks for s in rank["steps"] if s["epoch"] == epoch]
        assert all(len(s["labels"]) == 2 for s in steps) and len(steps) == 6  # 3 steps of 2 images per rank
        loss.append(sum(s["loss"] * 2 for s in steps) / 12)
        acc.append(sum((s["logits"].argmax(1) == s["labels"]).sum().item() for s in steps) / 12)
    assert logged(project, "train_loss", epochs=2) == pytest.approx(loss, rel=1e-6)
    assert logged(project, "train_acc", epochs=2) == pytest.approx(acc, abs=1e-9)
    # rank 0's own half alone gives other figures here
    assert [sum(s["loss"] for s in ranks[0]["steps"] if s["epoch"] == e) / 3 for e in (1, 2)] != pytest.approx(loss, rel=1e-6)
    # one checkpoint, written by rank 0: the ranks' weights are the same
    assert (project / "models/e2/model.pth").is_file()


def test_the_stage_prints_its_setting_each_epochs_figures_and_where_it_saved(trained):
    project, recording = trained
    lines = recording.printed.splitlines()
    assert lines[0] == "train: 12 images (in memory, 0 loader workers), 3 epochs, 1 x cpu, fp32, eager, 1 threads"
    loss, train_acc, test_acc = logged(project, "train_loss"), logged(project, "train_acc"), logged(project, "test_acc")
    # the stage's clock, read as each epoch starts, after each of its 3 steps (the progress bar's
    # rate) and as it ends: the rate printed is the epoch's 12 images over its first and last readings
    assert len(recording.clock) == 3 * (1 + 3 + 1)
    for epoch in (1, 2, 3):
        started, *_, ended = recording.clock[5 * (epoch - 1):5 * epoch]
        figures = f"epoch {epoch}/3: loss {loss[epoch - 1]:.4f}  train acc {train_acc[epoch - 1]:.3f}  test acc {test_acc[epoch - 1]:.3f}  "
        assert lines[epoch] == figures + f"{12 / (ended - started):.1f} img/s"
    assert lines[4:] == ["train: saved models/e3/model.pth"]
    summary = json.loads((project / "metrics/epochs/e3/train/metrics.json").read_text())
    assert summary == {"step": 3, "train_loss": loss[-1], "train_acc": train_acc[-1], "test_acc": test_acc[-1], "lr": logged(project, "lr")[-1]}


@pytest.mark.parametrize("ending, said", [("sys.exit(3)", "exited with status 3"),
                                          ("os.kill(os.getpid(), signal.SIGKILL)", "was killed by SIGKILL")])
def test_a_failing_rank_ends_the_launch_with_one_line_naming_it(tmp_path, monkeypatch, ending, said):
    (tmp_path / "failing_rank.py").write_text(f"import os, signal, sys\nif os.environ['RANK'] == '1':\n    {ending}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with pytest.raises(distributed.RankFailed) as failed:
        distributed.launch(2, 3, "failing_rank", [])
    assert str(failed.value) == f"training process rank 1 of 2 {said}; the other ranks were stopped and no model was written"
    assert os.environ["OMP_NUM_THREADS"] == "3"  # each rank's threads, as train.threads says, not torchrun's 1
    # torchrun's own log lines (its launcher's traceback) silenced: the line above says it all
    elastic = [name for name in logging.root.manager.loggerDict if name.startswith("torch.distributed.elastic")]
    assert elastic and all(logging.getLogger(name).getEffectiveLevel() == logging.CRITICAL for name in elastic)
    assert logging.getLogger().level != logging.CRITICAL


def test_a_process_started_alone_by_torchrun_joins_as_rank_0_of_1(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}.items():
        monkeypatch.setenv(name, value)
    assert distributed.started_by_torchrun()
    assert not torch.distributed.is_initialized()
    assert torch.equal(distributed.sum_over_ranks(torch.tensor([1.0, 2.0])), torch.tensor([1.0, 2.0]))  # one process: itself
    try:
        assert distributed.join(torch.device("cpu")) == (0, 1, torch.device("cpu"))
        assert torch.distributed.get_backend() == "gloo"
        assert torch.equal(distributed.sum_over_ranks(torch.tensor([1.0, 2.0])), torch.tensor([1.0, 2.0]))
    finally:
        torch.distributed.destroy_process_group()
    monkeypatch.delenv("RANK")
    assert not distributed.started_by_torchrun()


def test_every_step_runs_on_one_thread_with_deterministic_kernels_in_channels_last(trained):
    """The settings the run's weights depend on (train.threads: 1 here), and the layout oneDNN's
    convolutions run fastest in, for the batch and the weights alike."""
    project, recording = trained
    settings = {"threads": 1, "deterministic": True, "warn_only": False, "fill_uninitialized_memory": False}
    assert all(s["torch"] == settings for s in recording.steps)
    assert all(s["channels_last"] == (True, True) for s in recording.steps)
    assert all(not s["bf16"] for s in recording.steps)  # train.precision: fp32
    # dvclive writes the curves and metrics.json only: no dvc.yaml of its own, no report, no experiment
    assert not (project / "dvc.yaml").exists() and not (project / "dvclive").exists()
    written = sorted(p.relative_to(project / "metrics/epochs/e3/train").as_posix() for p in (project / "metrics/epochs/e3/train").rglob("*") if p.is_file())
    assert written == ["metrics.json"] + [f"plots/metrics/{name}.tsv" for name in ("lr", "test_acc", "train_acc", "train_loss")]


@pytest.mark.parametrize("asked, has_cuda, expected", [
    ("auto", True, "cuda"), ("auto", False, "cpu"), ("cpu", True, "cpu"), ("cuda", True, "cuda")])
def test_training_runs_on_cuda_where_asked_or_where_auto_finds_it(asked, has_cuda, expected, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: has_cuda)  # no GPU here: the answer torch would give
    assert train.pick_device(Train.model_construct(device=asked)) == torch.device(expected)


def test_cuda_asked_without_a_gpu_names_the_param(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ParamError, match="train.device is cuda but no CUDA device is available"):
        train.pick_device(Train.model_construct(device="cuda"))


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_torch_is_configured_for_the_device_and_auto_precision_asks_that_device(device, monkeypatch):
    """On CUDA: cuBLAS's deterministic workspace, and deterministic kernels that only warn (the
    pooling's backward has none there); on the CPU: kernels that must be deterministic. bf16 under
    `auto` is what the chosen device computes natively, asked of that device alone."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: device == "cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: device == "cuda")
    monkeypatch.setattr(train, "cpu_has_bf16", lambda: device == "cpu")
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cfg = Train.model_construct(device="auto", precision="auto", threads=1)
    with TorchState():
        chosen, bf16 = train.configure_torch(cfg)
        settings = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                    torch.is_deterministic_algorithms_warn_only_enabled(), torch.utils.deterministic.fill_uninitialized_memory)
    assert chosen == torch.device(device) and bf16 is True
    assert settings == (1, True, device == "cuda", False)
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == (":4096:8" if device == "cuda" else None)
