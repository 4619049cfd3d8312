"""train stage: fine-tune ResNet50 on the training split for a given number of epochs.

    python -m stages.train --epochs 20   ->  models/e20/model.pth, metrics/e20/train/ (dvclive)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from dvclive import Live
from torchvision.transforms import v2
from tqdm import tqdm

from stages.formats import metrics_dir, model_path
from stages.manifest import Example, read_split
from stages.model import build_model, save_checkpoint
from stages.params import Train, load_params
from stages.preprocess import PreprocessSpec, load_rgb, preprocess_batch


def cpu_has_bf16() -> bool:
    """bf16 is only faster where the CPU computes it natively (AMX or AVX512-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def pick_device(cfg: Train) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but no CUDA device is available; use auto or cpu")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if use_cuda else "cpu")


def use_bf16(cfg: Train, device: torch.device) -> bool:
    if cfg.precision == "auto":
        return torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_bf16()
    return cfg.precision == "bf16"


class TrainingImages:
    """Training images decoded once (shorter side = preprocess.resize) and augmented per step
    on uint8 tensors, as the article's recipe does: random resized crop and horizontal flip."""

    def __init__(self, examples: list[Example], classes: list[str], spec: PreprocessSpec):
        self.images = [v2.functional.pil_to_tensor(load_rgb(e.path, spec.resize)) for e in examples]
        self.labels = torch.tensor([classes.index(e.label) for e in examples])
        self.augment = v2.Compose([v2.RandomResizedCrop(spec.crop, antialias=True), v2.RandomHorizontalFlip()])
        self.mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(spec.std).view(1, 3, 1, 1)

    def batches(self, batch_size: int, generator: torch.Generator):
        """One epoch of shuffled, augmented batches; the last incomplete batch is dropped."""
        order = torch.randperm(len(self.images), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            x = torch.stack([self.augment(self.images[i]) for i in idx]).float().div_(255)
            yield (x - self.mean) / self.std, self.labels[idx]


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool, batch_size: int = 32) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x[start : start + batch_size])
        correct += (logits.argmax(1) == y[start : start + batch_size]).sum().item()
    return correct / len(x)


def train(model, data: TrainingImages, test_x, test_y, epochs: int, cfg: Train, seed: int, device, bf16: bool, live: Live):
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = epochs * (len(data.labels) // cfg.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
    order = torch.Generator().manual_seed(seed)
    test_x, test_y = test_x.to(device, memory_format=torch.channels_last), test_y.to(device)
    for epoch in range(1, epochs + 1):
        model.train()
        loss_sum = correct = seen = 0
        started = time.perf_counter()
        bar = tqdm(data.batches(cfg.batch_size, order), desc=f"epoch {epoch}/{epochs}", leave=False, disable=None)
        for x, y in bar:
            x, y = x.to(device, memory_format=torch.channels_last), y.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{seen / (time.perf_counter() - started):.1f}")
        test_acc = accuracy(model, test_x, test_y, bf16)
        live.log_metric("train_loss", loss_sum / seen)
        live.log_metric("train_acc", correct / seen)
        live.log_metric("test_acc", test_acc)
        live.log_metric("lr", schedule.get_last_lr()[0])
        live.next_step()
        print(f"epoch {epoch}/{epochs}: loss {loss_sum / seen:.4f}  train acc {correct / seen:.3f}  "
              f"test acc {test_acc:.3f}  {seen / (time.perf_counter() - started):.1f} img/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, required=True)
    args = parser.parse_args()
    params = load_params()
    cfg = params.train
    torch.manual_seed(params.seed)
    torch.set_num_threads(cfg.threads)
    device = pick_device(cfg)
    bf16 = use_bf16(cfg, device)
    classes = params.slugs
    data = TrainingImages(read_split("train"), classes, params.preprocess)
    test = read_split("test")
    test_x = torch.from_numpy(preprocess_batch([e.path for e in test], params.preprocess))
    test_y = torch.tensor([classes.index(e.label) for e in test])
    model = build_model(len(classes), cfg.pretrained).to(device, memory_format=torch.channels_last)
    print(f"train: {len(data.labels)} images, {args.epochs} epochs, {device}, {'bf16' if bf16 else 'fp32'}")
    with Live(str(metrics_dir(args.epochs) / "train"), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        train(model, data, test_x, test_y, args.epochs, cfg, params.seed, device, bf16, live)
    save_checkpoint(model_path(args.epochs, "pth"), model, classes, params.preprocess, epochs=args.epochs)


if __name__ == "__main__":
    main()
