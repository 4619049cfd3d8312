"""Training speed: img/s of a full training step (forward, backward, optimizer update) at the
batch size and crop of params.yaml, fp32 eager beside the setting params.yaml chooses.

    python -m stages.tools.train_bench [--steps 10] [--warmup 3] [--batch-size N] [--compare-compile]
    (make bench-train)

Both settings run in one process with the training stage's own functions, and take turns step
by step, so a busy machine slows them alike; each figure is the median step. Inputs are random
(speed does not depend on pixel values). The input pipeline (random crop, flip, normalise) is
timed on its own. The first step's time includes compiling, where the setting compiles.

Roofline: the matrix products of a step (convolutions and the head, forward and backward,
counted by torch's FlopCounterMode) divided by this CPU's GEMM peak in the setting's precision
(2048 x 2048 products, the fastest of 10, timed after the steps) is the most img/s a step could
reach; what a setting misses of it goes to the memory-bound rest (batch norm, ReLU, the update).
It is printed for training on the CPU only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from stages.tools.bench import GEMM_SIZE, fp32_peak, gemm_gflops, gemm_probes
from stages.errors import run_stage
from stages.evaluate import timed_runs
from stages.model import build_model
from stages.params import Train, load_params
from birds_onnx.preprocess import PreprocessSpec
from stages.train import TrainingImages, configure_torch, make_optimizer, prepare_model, train_step, use_bf16

GEMM_RUNS = 10


def describe(cfg: Train, device: torch.device) -> str:
    precision = "bf16 autocast" if use_bf16(cfg, device) else "fp32"
    return f"{precision}, channels_last, {'compiled' if cfg.compile else 'eager'}"


def step_timer(cfg: Train, device: torch.device, num_classes: int, batch_size: int, crop: int):
    """A function that runs one training step on a fixed random batch and returns its seconds."""
    torch.manual_seed(0)
    model, forward = prepare_model(num_classes, cfg, device)
    optimizer = make_optimizer(model, cfg)
    model.train()
    x = torch.randn(batch_size, 3, crop, crop, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(num_classes, (batch_size,), device=device)
    bf16 = use_bf16(cfg, device)

    def timed_step() -> float:
        started = time.perf_counter()
        loss, _ = train_step(forward, optimizer, x, y, bf16)
        loss.item()  # waits for the device
        return time.perf_counter() - started

    return timed_step


def training_flops_per_image(num_classes: int, crop: int) -> float:
    """FLOPs of the matrix products in one image's forward and backward pass."""
    model = build_model(num_classes).train()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, crop, crop)).sum().backward()
    return float(counter.get_total_flops())


def gemm_peaks(threads: int, runs: int) -> dict[str, float]:
    """GFLOP/s of square products per precision, each the fastest of `runs` (load from
    elsewhere can only slow a run down): fp32 through torch and ONNX Runtime, as in make bench,
    bf16 through torch (oneDNN, the library of the training's convolutions)."""
    probes = {name: probe for name, probe in gemm_probes(threads).items() if name.startswith("fp32")}
    a, b = (torch.randn(GEMM_SIZE, GEMM_SIZE, dtype=torch.bfloat16) for _ in range(2))
    probes["bf16 torch.mm"] = lambda: torch.mm(a, b)
    return {name: gemm_gflops(timed_runs(probe, 1, runs).min()) for name, probe in probes.items()}


def input_pipeline_img_per_s(spec: PreprocessSpec, cfg: Train, batch_size: int, batches: int = 20) -> float:
    """Augmented, normalised images per second from decoded images of a typical 4:3 shape."""
    images = [torch.randint(256, (3, spec.resize, spec.resize * 4 // 3), dtype=torch.uint8) for _ in range(batch_size * 2)]
    data = TrainingImages(images, [0] * len(images), spec, cfg.min_crop_scale)
    rng = torch.Generator().manual_seed(0)
    started, seen = time.perf_counter(), 0
    while seen < batches * batch_size:
        for x, _ in data.batches(batch_size, rng):
            seen += len(x)
    return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per setting, after the first")
    parser.add_argument("--batch-size", type=int, help="default: train.batch_size")
    parser.add_argument("--compare-compile", action="store_true", help="also time the chosen setting with train.compile flipped")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or (args.batch_size is not None and args.batch_size < 1):
        parser.error("--steps and --batch-size must be at least 1, --warmup at least 0")
    params = load_params()
    chosen = params.train.model_copy(update={"pretrained": "none"})  # the weights' values do not matter here
    baseline = chosen.model_copy(update={"precision": "fp32", "compile": False})
    device, _ = configure_torch(chosen)
    batch_size, crop, num_classes = args.batch_size or chosen.batch_size, params.preprocess.crop, len(params.classes)
    print(f"training step: ResNet50, batch {batch_size}, {crop}x{crop}, {num_classes} classes, {device}, "
          f"{torch.get_num_threads()} threads; median of {args.steps} steps after {args.warmup} warm-up, settings alternating",
          flush=True)

    settings = {describe(baseline, device): baseline, describe(chosen, device): chosen}
    if args.compare_compile:
        flipped = chosen.model_copy(update={"compile": not chosen.compile})
        settings[describe(flipped, device)] = flipped
    steps, first = {}, {}
    for name, cfg in settings.items():
        steps[name] = step_timer(cfg, device, num_classes, batch_size, crop)
        first[name] = steps[name]()
        for _ in range(args.warmup):
            steps[name]()
    times = {name: [] for name in settings}
    for _ in range(args.steps):
        for name, timed_step in steps.items():
            times[name].append(timed_step())
    input_rate = input_pipeline_img_per_s(params.preprocess.spec, params.train, batch_size)

    roofline = {}
    if device.type == "cpu":
        # after the steps: ONNX Runtime's threads spin a while after each product
        peaks = gemm_peaks(torch.get_num_threads(), GEMM_RUNS)
        flops = training_flops_per_image(num_classes, crop)
        roofline = {"fp32": fp32_peak(peaks) * 1e9 / flops, "bf16": peaks["bf16 torch.mm"] * 1e9 / flops}
        print(f"GEMM peaks ({GEMM_SIZE}x{GEMM_SIZE}, fastest of {GEMM_RUNS} runs): "
              + ", ".join(f"{name} {rate:.0f}" for name, rate in peaks.items()) + " GFLOP/s")
        print(f"a training step does {flops / 1e9:.1f} GFLOP of matrix products per image, so the roofline is "
              f"{roofline['fp32']:.1f} img/s in fp32 and {roofline['bf16']:.1f} img/s in bf16")
    width = max(len(name) for name in settings)
    print(f"{'setting':<{width}}  {'img/s':>7}  {'ms/step':>8}  {'first step s':>12}  {'of its roofline':>15}")
    rates = {}
    for name, cfg in settings.items():
        median = float(np.median(times[name]))
        rates[name] = batch_size / median
        share = f"{rates[name] / roofline['bf16' if use_bf16(cfg, device) else 'fp32']:.0%}" if roofline else "-"
        print(f"{name:<{width}}  {rates[name]:7.1f}  {1000 * median:8.0f}  {first[name]:12.1f}  {share:>15}")
    print(f"speed-up of the chosen setting: {rates[describe(chosen, device)] / rates[describe(baseline, device)]:.2f}x")
    print(f"input pipeline (random crop, flip, normalise): {input_rate:.0f} img/s")


if __name__ == "__main__":
    run_stage(main)
