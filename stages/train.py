"""train stage: fine-tune ResNet50 on the training split for a given number of epochs.

    python -m stages.train --epochs 20   ->  models/e20/model.pth, metrics/e20/train/ (dvclive)

The same params on the same machine give byte-identical weights and the same metrics: the
initial weights, the data order and every crop and flip come from params.seed, the thread
count is fixed and torch runs its deterministic kernels. Per epoch it logs train loss, train
accuracy, test accuracy and learning rate with dvclive (declared in dvc.yaml, plotted by
`dvc plots show`), and shows a progress bar with loss and img/s in a terminal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torch.utils.deterministic
from dvclive import Live
from torchvision.transforms import v2
from tqdm import tqdm

from stages.errors import run_stage
from stages.paths import CHECKPOINT, metrics_dir, model_dir
from stages.manifest import Example, read_split
from stages.model import build_model, save_checkpoint
from stages.params import ParamError, Train, load_params
from birds_onnx.preprocess import PreprocessSpec, load_rgb, preprocess_batch

# the params this stage reads: dvc.yaml lists the same keys (train.epochs comes as --epochs)
PARAMS = (
    "seed", "classes", "preprocess", "train.pretrained", "train.batch_size", "train.lr", "train.weight_decay",
    "train.min_crop_scale", "train.device", "train.precision", "train.compile", "train.threads",
)


def cpu_has_bf16() -> bool:
    """bf16 is only faster where the CPU computes it natively (AMX or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def pick_device(cfg: Train) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ParamError("train.device is cuda but no CUDA device is available; use auto or cpu")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if use_cuda else "cpu")


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
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def train_step(forward, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, bf16: bool):
    """One full training step: forward (bf16 autocast if chosen), loss in fp32, backward, update.
    Returns the loss and the logits, detached."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = forward(x)
    loss = F.cross_entropy(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach(), logits.detach()


class TrainingImages:
    """Training images decoded once (shorter side = preprocess.resize) and augmented per step
    on uint8 tensors, as the article's recipe does: random resized crop and horizontal flip."""

    def __init__(self, images: list[torch.Tensor], labels: list[int], spec: PreprocessSpec, min_crop_scale: float):
        self.images = images  # uint8 CHW
        self.labels = torch.tensor(labels)
        self.augment = v2.Compose([v2.RandomResizedCrop(spec.crop, scale=(min_crop_scale, 1.0), antialias=True), v2.RandomHorizontalFlip()])
        self.mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std).view(1, 3, 1, 1)

    @classmethod
    def load(cls, examples: list[Example], classes: list[str], spec: PreprocessSpec, min_crop_scale: float) -> "TrainingImages":
        images = [v2.functional.pil_to_tensor(load_rgb(e.path, spec.resize)) for e in examples]
        return cls(images, [classes.index(e.label) for e in examples], spec, min_crop_scale)

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int, rng: torch.Generator):
        """One epoch of shuffled, augmented, normalised batches (channels_last); the last
        incomplete batch is dropped. torchvision's transforms draw from torch's global RNG, so
        each batch runs them under a seed drawn from `rng`: order, crops and flips depend on
        `rng` alone, whatever else uses the global RNG."""
        order = torch.randperm(len(self.images), generator=rng)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            seed = int(torch.randint(2**62, (), generator=rng))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                x = torch.stack([self.augment(self.images[i]) for i in idx])
            # the arithmetic of preprocess.normalize, on the whole batch, in channels_last layout
            x = x.to(memory_format=torch.channels_last).float().mul_(1 / 255).sub_(self.mean).div_(self.std)
            yield x, self.labels[idx]


def load_test_set(classes: list[str], spec: PreprocessSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images as the evaluate stage sees them (the shared preprocessing)."""
    test = read_split("test")
    x = torch.from_numpy(preprocess_batch([e.path for e in test], spec))
    return x.contiguous(memory_format=torch.channels_last), torch.tensor([classes.index(e.label) for e in test])


@torch.inference_mode()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool, batch_size: int = 32) -> float:
    """Top-1 accuracy of the (uncompiled) model in eval mode, in the training precision."""
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x[start : start + batch_size])
        correct += (logits.argmax(1) == y[start : start + batch_size]).sum().item()
    return correct / len(x)


def progress_bar(batches, total: int, desc: str) -> tqdm:
    """A bar in a terminal; nothing under CI (CI=true) or when output goes to a file or pipe."""
    return tqdm(batches, total=total, desc=desc, leave=False, disable=True if os.environ.get("CI") else None)


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

    device, bf16 = configure_torch(cfg)
    data = TrainingImages.load(read_split("train"), classes, params.preprocess.spec, cfg.min_crop_scale)
    test_x, test_y = (t.to(device) for t in load_test_set(classes, params.preprocess.spec))
    torch.manual_seed(params.seed)  # the new head's initial weights (and all of them for pretrained: none)
    model, forward = prepare_model(len(classes), cfg, device)  # `forward` shares the weights of `model`
    optimizer = make_optimizer(model, cfg)
    steps_per_epoch = len(data) // cfg.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15
    )
    data_rng = torch.Generator().manual_seed(params.seed)
    print(f"train: {len(data)} images, {args.epochs} epochs, {device}, {'bf16' if bf16 else 'fp32'}, "
          f"{'compiled' if cfg.compile else 'eager'}, {torch.get_num_threads()} threads", flush=True)

    with Live(str(metrics_dir(args.epochs) / "train"), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        for epoch in range(1, args.epochs + 1):
            model.train()
            loss_sum = correct = seen = 0
            started = time.perf_counter()
            bar = progress_bar(data.batches(cfg.batch_size, data_rng), steps_per_epoch, f"epoch {epoch}/{args.epochs}")
            for x, y in bar:
                x, y = x.to(device), y.to(device)
                loss, logits = train_step(forward, optimizer, x, y, bf16)
                schedule.step()
                loss_sum += loss.item() * len(y)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", img_s=f"{seen / (time.perf_counter() - started):.1f}")
            img_per_s = seen / (time.perf_counter() - started)  # a timing: printed, never logged
            test_acc = accuracy(model, test_x, test_y, bf16)

            live.step = epoch  # the x axis of the curves: 1..epochs
            live.log_metric("train_loss", loss_sum / seen)
            live.log_metric("train_acc", correct / seen)
            live.log_metric("test_acc", test_acc)
            live.log_metric("lr", schedule.get_last_lr()[0])
            live.sync()  # metrics.json after every epoch
            print(f"epoch {epoch}/{args.epochs}: loss {loss_sum / seen:.4f}  train acc {correct / seen:.3f}  "
                  f"test acc {test_acc:.3f}  {img_per_s:.1f} img/s", flush=True)

    save_checkpoint(checkpoint, model, classes, params.preprocess.spec, epochs=args.epochs)
    print(f"train: saved {checkpoint}")


if __name__ == "__main__":
    run_stage(main)
