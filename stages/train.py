"""train stage: fine-tune ResNet50 on the training split for a given number of epochs.

    python -m stages.train --epochs 20   ->  models/e20/model.pth, metrics/epochs/e20/train/ (dvclive)

The same params on the same machine give byte-identical weights and the same metrics: the
initial weights, the data order and every crop and flip come from params.seed (per image, see
stages/shared/train_data.py), the thread count and the number of processes are fixed and torch runs
its deterministic kernels. Per epoch it logs train loss, train accuracy, test accuracy (fp32,
as the evaluate stage measures it) and learning rate with dvclive (declared in dvc.yaml, plotted
by `dvc plots show`), and shows a progress bar with loss and img/s in a terminal.

With train.processes > 1 this command starts torchrun's launcher, which runs it again as that
many data-parallel ranks (stages/shared/distributed.py); rank 0 alone writes the logs and the model.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import time

import torch
import torch.nn.functional as F
import torch.utils.deterministic
from dvclive import Live
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from birds_onnx.preprocess import PreprocessSpec, preprocess_batch
from stages.shared import distributed
from stages.shared.cpu import cpu_has_bf16
from stages.shared.errors import run_stage
from stages.shared.splits import read_split
from stages.shared.model import build_model, save_checkpoint
from stages.shared.params import ParamError, Params, Train, load_params
from stages.shared.paths import CHECKPOINT, model_dir, training_dir
from stages.shared.train_data import EpochBatches, Normalize, TrainingImages, cache_in_memory, make_loader

# the params this stage reads: dvc.yaml lists the same keys (train.epochs comes as --epochs)
PARAMS = (
    "seed", "classes", "preprocess", "train.pretrained", "train.batch_size", "train.lr", "train.weight_decay",
    "train.min_crop_scale", "train.device", "train.precision", "train.compile", "train.threads", "train.processes",
    "train.workers", "train.cache_images", "train.cache_budget_mb",
)


def pick_device(cfg: Train) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ParamError("train.device is cuda but no CUDA device is available; use auto or cpu")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if use_cuda else "cpu")


def check_gpus_for_processes(processes: int, device: torch.device, gpus: int) -> None:
    """On CUDA every process this stage launches takes a GPU of its own: say so before any starts
    (else rank 1 fails with CUDA's `invalid device ordinal` traceback)."""
    if device.type == "cuda" and processes > gpus:
        raise ParamError(
            f"train.processes is {processes} but this host has {gpus} GPU{'s' if gpus != 1 else ''}: on CUDA each "
            f"process needs a GPU of its own; set train.processes to at most {gpus}, or train.device to cpu"
        )


def use_bf16(cfg: Train, device: torch.device) -> bool:
    if cfg.precision == "auto":
        return torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()
    return cfg.precision == "bf16"


def configure_torch(cfg: Train) -> tuple[torch.device, bool]:
    """Device, precision, threads and deterministic kernels: everything else a run's numbers
    depend on besides params.seed. Returns the device and whether to train in bf16."""
    device = pick_device(cfg)
    torch.set_num_threads(cfg.threads)  # a float sum split over other threads rounds differently
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    # On the CPU every kernel this training uses has a deterministic version, so any op without
    # one is an error. CUDA has none for adaptive_avg_pool2d's backward (ResNet's last pooling):
    # there it warns, and weights may differ in the last bits between runs.
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    # Deterministic mode also fills every new tensor with NaN, to expose kernels that read memory
    # they never wrote; that costs a tenth of a training step here, and the kernels this training
    # uses write all of their outputs (the determinism test compares the weights byte for byte).
    torch.utils.deterministic.fill_uninitialized_memory = False
    return device, use_bf16(cfg, device)


def prepare_model(num_classes: int, cfg: Train, device: torch.device):
    """ResNet50 on `device` in channels_last layout, the one oneDNN's convolutions run fastest
    in, and the function to train it with: the model itself, or its compiled version."""
    model = build_model(num_classes, cfg.pretrained).to(device, memory_format=torch.channels_last)
    return model, compile_model(model, cfg, device)


def compile_model(model: torch.nn.Module, cfg: Train, device: torch.device):
    """torch.compile's inductor fuses the ops around each convolution: the same maths, fewer
    passes over memory. On the CPU it builds C++ kernels, so it needs a C++ compiler; compiled
    kernels are cached on disk, so the next run (the other epoch setting) compiles faster."""
    if not cfg.compile:
        return model
    compiler = os.environ.get("CXX", "g++")
    if device.type == "cpu" and shutil.which(compiler) is None:
        raise ParamError(
            f"train.compile is true but the C++ compiler {compiler!r} that torch.compile needs on the "
            f"CPU was not found: install g++ (or set CXX) or set train.compile: false"
        )
    return torch.compile(model)


def make_optimizer(model: torch.nn.Module, cfg: Train) -> torch.optim.Optimizer:
    # fused: one kernel updates every parameter, instead of a dozen passes per tensor
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                             fused=True,  # pragma: no mutate: the same update in one kernel or in several: speed only
    )


def train_step(forward, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, bf16: bool):
    """One full training step: forward (bf16 autocast if chosen), loss in fp32, backward, update.
    Returns the loss and the logits, detached."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = forward(x)
    loss = F.cross_entropy(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)  # pragma: no mutate: zeroed or dropped, the gradients start from nothing at the next backward: the same update
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


def load_test_set(classes: list[str], spec: PreprocessSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images as the evaluate stage sees them (the shared preprocessing)."""
    test = read_split("test")
    x = torch.from_numpy(preprocess_batch([e.path for e in test], spec))
    labels = torch.tensor([classes.index(e.label) for e in test])
    return x.contiguous(memory_format=torch.channels_last), labels  # pragma: no mutate: the layout oneDNN runs fastest in: the same values


@torch.inference_mode()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    """Logits of the (uncompiled, unwrapped) model in eval mode, in fp32 whatever the training
    precision: the precision the evaluate stage measures the pth model in."""
    model.eval()
    with torch.autocast(x.device.type, enabled=False):
        return torch.cat([model(x[start : start + batch_size]) for start in range(0, len(x), batch_size)])


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in fp32 (`predict`), so the logged test_acc is the evaluate stage's."""
    return (predict(model, x).argmax(1) == y).sum().item() / len(y)


def progress_bar(batches, total: int, desc: str, quiet: bool) -> tqdm:
    """A bar in a terminal; nothing under CI (CI=true), when output goes to a file or pipe, or
    in any rank but the first."""
    return tqdm(batches, total=total, desc=desc, disable=True if quiet or os.environ.get("CI") else None,
                leave=False,  # pragma: no mutate: whether a finished bar stays on the terminal: its looks only
    )


def load_training_images(params: Params) -> TrainingImages:
    """The training split, decoded once into memory or read from disk at every step
    (train.cache_images; auto: in memory if the decoded set fits train.cache_budget_mb)."""
    cfg, classes = params.train, params.slugs
    examples = read_split("train")
    paths = [e.path for e in examples]
    in_memory = cache_in_memory(cfg.cache_images, paths, params.preprocess.resize, cfg.cache_budget_mb)
    return TrainingImages(paths, [classes.index(e.label) for e in examples], PreprocessSpec.from_dict(params.preprocess.model_dump()),
                          cfg.min_crop_scale, params.seed, in_memory)


class EpochLog:
    """What rank 0 alone does at the end of each epoch: test accuracy (fp32), dvclive's logs, a
    line on stdout."""

    def __init__(self, live: Live, model: torch.nn.Module, test: tuple[torch.Tensor, torch.Tensor], epochs: int):
        self.live, self.model, self.test, self.epochs = live, model, test, epochs

    def __call__(self, epoch: int, loss: float, train_acc: float, lr: float, img_per_s: float) -> None:
        test_acc = accuracy(self.model, *self.test)
        self.live.step = epoch  # the x axis of the curves: 1..epochs
        self.live.log_metric("train_loss", loss)
        self.live.log_metric("train_acc", train_acc)
        self.live.log_metric("test_acc", test_acc)
        self.live.log_metric("lr", lr)
        self.live.sync()  # metrics.json after every epoch
        # img/s is a timing: printed, never logged
        print(f"epoch {epoch}/{self.epochs}: loss {loss:.4f}  train acc {train_acc:.3f}  "
              f"test acc {test_acc:.3f}  {img_per_s:.1f} img/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, required=True)
    args = parser.parse_args()
    params = load_params(*PARAMS)
    cfg = params.train
    classes = params.slugs
    checkpoint = model_dir(args.epochs) / CHECKPOINT
    # As dvc repro does: a run that dies leaves no model at all, never an older one beside its logs.
    checkpoint.unlink(missing_ok=True)
    if cfg.processes > 1 and not distributed.started_by_torchrun():
        check_gpus_for_processes(cfg.processes, pick_device(cfg), torch.cuda.device_count())
        distributed.launch(cfg.processes, cfg.threads, "stages.train", ["--epochs", str(args.epochs)])
        return

    device, bf16 = configure_torch(cfg)
    torch.manual_seed(params.seed)  # the new head's initial weights (and all of them for pretrained: none)
    model, forward = prepare_model(len(classes), cfg, device)  # `forward` shares the weights of `model`
    rank, world = 0, 1
    ddp = distributed.started_by_torchrun()
    if ddp:  # one of train.processes ranks: its shard of every batch, gradients averaged over all
        rank, world, device = distributed.join(device)
        if world != cfg.processes:
            raise ParamError(f"train.processes is {cfg.processes} but torchrun started {world} processes: "
                             f"set train.processes to the total number of processes")
        model.to(device)
        forward = DistributedDataParallel(forward, device_ids=[device] if device.type == "cuda" else None)

    spec = PreprocessSpec.from_dict(params.preprocess.model_dump())
    data = load_training_images(params)
    batches = EpochBatches(len(data), cfg.batch_size, params.seed, rank, world)
    loader = make_loader(data, batches, cfg.workers,
                         pin_memory=device.type == "cuda",  # pragma: no mutate: pinned memory speeds up copies to a GPU only: on the CPU the same batches
    )
    normalize = Normalize(spec, device)
    optimizer = make_optimizer(model, cfg)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=args.epochs * len(batches), pct_start=0.15
    )
    if rank == 0:
        print(f"train: {len(data)} images ({'in memory' if data.images is not None else 'read from disk'}, "
              f"{cfg.workers} loader workers), {args.epochs} epochs, {world} x {device.type}, "
              f"{'bf16' if bf16 else 'fp32'}, {'compiled' if cfg.compile else 'eager'}, "
              f"{torch.get_num_threads()} threads", flush=True)

    with Live(str(training_dir(args.epochs)), dvcyaml=False, save_dvc_exp=False, report=None) \
            if rank == 0 else contextlib.nullcontext() as live:
        log = EpochLog(live, model, tuple(t.to(device) for t in load_test_set(classes, spec)), args.epochs) \
            if rank == 0 else None
        for epoch in range(1, args.epochs + 1):
            model.train()
            batches.epoch = epoch
            totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, seen
            started = time.perf_counter()
            bar = progress_bar(loader, len(batches), f"epoch {epoch}/{args.epochs}", quiet=rank > 0)
            for x, y in bar:
                x, y = normalize(x), y.to(device)
                loss, logits = train_step(forward, optimizer, x, y, bf16)
                schedule.step()
                totals += torch.tensor([loss.item() * len(y), (logits.argmax(1) == y).sum().item(), len(y)])
                bar.set_postfix(loss=f"{totals[0] / totals[2]:.3f}", img_s=f"{world * totals[2] / (time.perf_counter() - started):.1f}")  # pragma: no mutate: the bar's running figures, shown in a terminal only (tests/test_train.py watches them there, in another process)
            loss_sum, correct, seen = distributed.sum_over_ranks(totals).tolist()
            if log:
                img_per_s = seen / (time.perf_counter() - started)  # pragma: no mutate: a timing: printed, never logged or checked
                log(epoch, loss_sum / seen, correct / seen, schedule.get_last_lr()[0], img_per_s)

    if rank == 0:
        save_checkpoint(checkpoint, model, classes, spec, epochs=args.epochs)
        print(f"train: saved {checkpoint}")


if __name__ == "__main__":
    run_stage(main)
