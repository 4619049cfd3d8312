"""Training speed: img/s of a full training step (forward, backward, optimizer update) at the
batch size and crop of params.yaml, fp32 eager beside the setting params.yaml chooses; then the
whole training loop (DataLoader, workers, data-parallel processes) over a fixed number of steps.

    python -m stages.tools.train_bench [--steps 10] [--warmup 3] [--batch-size N] [--compare-compile]
                                       [--images 190,19000] [--loop-steps 30] [--loop-warmup 3] [--no-loop | --loop-only]
    (make bench-train)

Both settings run in one process with the training stage's own functions, and take turns step
by step, so a busy machine slows them alike; each figure is the median step. Inputs are random
(speed does not depend on pixel values). The input pipeline (decoded pictures -> random crop,
flip; normalise) is timed on its own. The first step's time includes compiling, where the
setting compiles.

Roofline: the matrix products of a step (convolutions and the head, forward and backward,
counted by torch's FlopCounterMode) divided by this CPU's GEMM peak in the setting's precision
(2048 x 2048 products, the fastest of 10, timed after the steps) is the most img/s a step could
reach; what a setting misses of it goes to the memory-bound rest (batch norm, ReLU, the update).
It is printed for training on the CPU only.

The training loop: each setting runs in a fresh process (stages/tools/train_bench_worker.py, so
its peak memory is its own), with the train stage's data pipeline and step on pictures drawn by
the synthetic source (the pipeline's own 190, copied to distinct files up to each --images
count): 1 process with train.threads threads beside train.processes-many (2 if that is 1) with
the threads shared out, in memory; and in memory beside read from disk at every step
(train.workers loader workers) at each --images count. img/s is the global batch over the median step time after --loop-warmup
steps; peak memory is the largest resident size of the training process (rank 0) and of one
of its loader workers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from tabulate import tabulate
from torch.utils.flop_counter import FlopCounterMode

from birds_onnx.preprocess import PreprocessSpec
from stages.shared.errors import run_stage
from stages.evaluate import timed_runs
from stages.shared.model import build_model
from stages.shared.params import PARAMS_FILE, Params, Train, load_params
from stages.sources.synthetic import synthesize
from stages.tools.roofline import GEMM_SIZE, fp32_peak, gemm_gflops, gemm_probes
from stages.shared.cpu import cpu_has_bf16
from stages.train import configure_torch, make_optimizer, prepare_model, train_step, use_bf16
from stages.shared.train_data import EpochBatches, Normalize, TrainingImages

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
    bf16 through torch (oneDNN, the library of the training's convolutions) where the CPU computes
    bf16 natively: elsewhere torch emulates it, minutes per product, and training runs in fp32."""
    probes = {name: probe for name, probe in gemm_probes(threads).items() if name.startswith("fp32")}
    if cpu_has_bf16():
        a, b = (torch.randn(GEMM_SIZE, GEMM_SIZE, dtype=torch.bfloat16) for _ in range(2))
        probes["bf16 torch.mm"] = lambda: torch.mm(a, b)
    return {name: gemm_gflops(timed_runs(probe, 1, runs).min()) for name, probe in probes.items()}


def input_pipeline_img_per_s(paths: list[Path], spec: PreprocessSpec, cfg: Train, batch_size: int, batches: int = 20) -> float:
    """Augmented, normalised images per second from pictures decoded in memory, in this process."""
    data = TrainingImages(paths[: batch_size * 2], [0] * batch_size * 2, spec, cfg.min_crop_scale, seed=0, in_memory=True)
    order, normalize = EpochBatches(len(data), batch_size, seed=0), Normalize(spec, torch.device("cpu"))
    started, seen = time.perf_counter(), 0
    while seen < batches * batch_size:
        order.epoch += 1
        for keys in order:
            seen += len(normalize(torch.stack([data[key][0] for key in keys])))
    return seen / (time.perf_counter() - started)


def draw_pictures(params: Params, folder: Path, count: int) -> list[Path]:
    """`count` distinct JPEG files: the synthetic source's pictures (params.crawl.synthetic's
    count and sizes), copied as often as needed, so reading one costs what a real one does."""
    cfg = params.crawl.synthetic
    drawn = []
    for slug, index, data in synthesize(params.slugs, min(count, cfg.total_images), params.seed, size_range=(cfg.min_size, cfg.max_size)):
        drawn.append(folder / f"{slug}_{index:03d}.jpg")
        drawn[-1].write_bytes(data)
    paths = list(drawn)
    for i in range(len(drawn), count):
        paths.append(folder / f"copy_{i:06d}.jpg")
        shutil.copyfile(drawn[i % len(drawn)], paths[-1])
    return paths


def loop_settings(params: Params, images: list[int]) -> list[tuple[str, dict]]:
    """(label, arguments of one measuring run) for every setting the loop benchmark compares."""
    cfg = params.train
    processes = cfg.processes if cfg.processes > 1 else 2
    first = min(images)
    settings = [(f"{first} images, in memory, 1 process x {cfg.threads} threads",
                 {"images": first, "memory": True, "processes": 1, "threads": cfg.threads})]
    if cfg.batch_size % processes == 0:
        share = max(1, cfg.threads // processes)
        settings.append((f"{first} images, in memory, {processes} processes x {share} threads",
                         {"images": first, "memory": True, "processes": processes, "threads": share}))
    for count in images:
        for memory in (True, False):
            if (count, memory) != (first, True):
                settings.append((f"{count} images, {'in memory' if memory else 'read from disk'}, 1 process x {cfg.threads} threads",
                                 {"images": count, "memory": memory, "processes": 1, "threads": cfg.threads}))
    return settings


def run_setting(folder: Path, setting: dict, steps: int, warmup: int) -> dict:
    """One measuring run in a fresh process (through torchrun's launcher for several processes),
    with its own params: the setting's processes and threads."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = load_params_raw()
        raw["train"].update(processes=setting["processes"], threads=setting["threads"])
        (Path(tmp) / "params.yaml").write_text(json.dumps(raw), encoding="utf-8")  # JSON is YAML
        cmd = [sys.executable, "-m", "stages.tools.train_bench_worker", str(folder), "--params", str(Path(tmp) / "params.yaml"),
               "--images", str(setting["images"]), "--memory" if setting["memory"] else "--disk",
               "--steps", str(steps), "--warmup", str(warmup)]
        done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def load_params_raw() -> dict:
    return yaml.safe_load(PARAMS_FILE.read_text(encoding="utf-8"))


def loop_benchmark(params: Params, images: list[int], steps: int, warmup: int) -> None:
    print(f"\ntraining loop: batch {params.train.batch_size} (shared by the processes), {params.train.workers} loader workers "
          f"per process; median of {steps} steps after {warmup} warm-up; each setting a fresh process", flush=True)
    settings = loop_settings(params, images)
    with tempfile.TemporaryDirectory() as folder:
        draw_pictures(params, Path(folder), max(images))
        rates, rows = {}, []
        for i, (label, setting) in enumerate(settings, 1):
            r = run_setting(Path(folder), setting, steps, warmup)
            rates[label] = r["img_per_s"]
            rows.append([label, f"{r['img_per_s']:.1f}", f"{r['rss_mb']:.0f}", f"{r['worker_rss_mb']:.0f}"])
            print(f"measured {i} of {len(settings)}: {label}", flush=True)
    print(tabulate(rows, ["setting", "img/s", "peak MB", "worker peak MB"], tablefmt="plain", disable_numparse=True,
                   colalign=("left", "right", "right", "right")))
    reference = rates[settings[0][0]]
    for label, _ in settings[1:]:
        print(f"{label}: {rates[label] / reference:.0%} of the first setting's img/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per setting, after the first")
    parser.add_argument("--batch-size", type=int, help="default: train.batch_size")
    parser.add_argument("--compare-compile", action="store_true", help="also time the chosen setting with train.compile flipped")
    parser.add_argument("--images", default="190,19000", help="training-set sizes of the loop benchmark, comma-separated")
    parser.add_argument("--loop-steps", type=int, default=30, help="timed steps per loop setting")
    parser.add_argument("--loop-warmup", type=int, default=3, help="untimed steps per loop setting")
    parser.add_argument("--no-loop", action="store_true", help="time the step alone")
    parser.add_argument("--loop-only", action="store_true", help="time the training loop alone")
    args = parser.parse_args()
    try:
        images = [int(n) for n in args.images.split(",")]
    except ValueError:
        parser.error(f"--images must list whole numbers, got {args.images!r}")
    if args.steps < 1 or args.warmup < 0 or (args.batch_size is not None and args.batch_size < 1) \
            or args.loop_steps < 1 or args.loop_warmup < 0 or min(images) < 1:
        parser.error("--steps, --loop-steps, --images and --batch-size must be at least 1, --warmup and --loop-warmup at least 0")
    params = load_params()
    if not args.no_loop and min(images) < params.train.batch_size:
        parser.error(f"--images must be at least train.batch_size ({params.train.batch_size})")
    if args.loop_only:
        loop_benchmark(params, images, args.loop_steps, args.loop_warmup)
        return
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
    with tempfile.TemporaryDirectory() as folder:
        input_rate = input_pipeline_img_per_s(draw_pictures(params, Path(folder), 2 * batch_size), PreprocessSpec.from_dict(params.preprocess.model_dump()), params.train, batch_size)

    roofline = {}
    if device.type == "cpu":
        # after the steps: ONNX Runtime's threads spin a while after each product
        peaks = gemm_peaks(torch.get_num_threads(), GEMM_RUNS)
        flops = training_flops_per_image(num_classes, crop)
        roofline = {"fp32": fp32_peak(peaks) * 1e9 / flops}
        if "bf16 torch.mm" in peaks:
            roofline["bf16"] = peaks["bf16 torch.mm"] * 1e9 / flops
        print(f"GEMM peaks ({GEMM_SIZE}x{GEMM_SIZE}, fastest of {GEMM_RUNS} runs): "
              + ", ".join(f"{name} {rate:.0f}" for name, rate in peaks.items()) + " GFLOP/s"
              + ("" if "bf16" in roofline else "; no bf16 peak: this CPU does not compute bf16 natively"))
        print(f"a training step does {flops / 1e9:.1f} GFLOP of matrix products per image, so the roofline is "
              + " and ".join(f"{rate:.1f} img/s in {p}" for p, rate in roofline.items()))
    rates, rows = {}, []
    for name, cfg in settings.items():
        median = float(np.median(times[name]))
        rates[name] = batch_size / median
        limit = roofline.get("bf16" if use_bf16(cfg, device) else "fp32")
        share = f"{rates[name] / limit:.0%}" if limit else "-"
        rows.append([name, f"{rates[name]:.1f}", f"{1000 * median:.0f}", f"{first[name]:.1f}", share])
    print(tabulate(rows, ["setting", "img/s", "ms/step", "first step s", "of its roofline"], tablefmt="plain",
                   disable_numparse=True, colalign=("left", "right", "right", "right", "right")))
    print(f"speed-up of the chosen setting: {rates[describe(chosen, device)] / rates[describe(baseline, device)]:.2f}x")
    print(f"input pipeline (random crop, flip, normalise): {input_rate:.0f} img/s")
    if not args.no_loop:
        loop_benchmark(params, images, args.loop_steps, args.loop_warmup)


if __name__ == "__main__":
    run_stage(main)
