"""One setting of the training-loop benchmark (stages/tools/train_bench.py), in a process of its
own so that its peak memory is its own: the train stage's loop (its data pipeline, its step;
data-parallel where the params ask for several processes, each rank started through torchrun)
for --warmup + --steps steps on the first --images pictures of FOLDER. Rank 0 prints the figures
as one JSON line: img/s, and the peak resident MB of the training process and of one of its loader
workers.

    python -m stages.tools.train_bench_worker FOLDER --params PARAMS --images N (--memory | --disk)
                                              [--steps 30] [--warmup 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from birds_onnx.preprocess import PreprocessSpec
from stages.shared import distributed
from stages.shared.errors import run_stage
from stages.shared.params import Params, load_params
from stages.shared.train_data import EpochBatches, Normalize, TrainingImages, make_loader
from stages.train import configure_torch, make_optimizer, prepare_model, train_step


def peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kilobytes on Linux


def measure_loop(params: Params, folder: Path, images: int, in_memory: bool, steps: int, warmup: int) -> dict:
    """The train stage's loop (its data pipeline, its step; data-parallel when started by
    torchrun) for warmup + steps steps, on the first `images` pictures of `folder`. Rank 0
    prints the figures as one JSON line."""
    cfg = params.train.model_copy(update={"pretrained": "none"})
    device, bf16 = configure_torch(cfg)
    torch.manual_seed(params.seed)
    model, forward = prepare_model(len(params.classes), cfg, device)
    rank, world = 0, 1
    if distributed.started_by_torchrun():
        rank, world, device = distributed.join(device)
        model.to(device)
        forward = DistributedDataParallel(forward, device_ids=[device] if device.type == "cuda" else None)
    paths = sorted(folder.glob("*.jpg"))[:images]
    data = TrainingImages(paths, [i % len(params.classes) for i in range(len(paths))], PreprocessSpec.from_dict(params.preprocess.model_dump()),
                          cfg.min_crop_scale, params.seed, in_memory)
    batches = EpochBatches(len(data), cfg.batch_size, params.seed, rank, world)
    loader = make_loader(data, batches, cfg.workers, pin_memory=device.type == "cuda")
    normalize, optimizer = Normalize(PreprocessSpec.from_dict(params.preprocess.model_dump()), device), make_optimizer(model, cfg)
    model.train()
    times, step = [], 0
    while step < warmup + steps:
        batches.epoch += 1
        started = time.perf_counter()
        for x, y in loader:
            loss, _ = train_step(forward, optimizer, normalize(x), y.to(device), bf16)
            loss.item()  # waits for the device
            if step >= warmup:
                times.append(time.perf_counter() - started)
            step += 1
            if step == warmup + steps:
                break
            started = time.perf_counter()
    del loader  # its workers exit, so their peak memory is counted below
    result = {"img_per_s": cfg.batch_size / float(np.median(times)), "rss_mb": peak_rss_mb(resource.RUSAGE_SELF),
              "worker_rss_mb": peak_rss_mb(resource.RUSAGE_CHILDREN) if cfg.workers else 0.0}
    if rank == 0:
        print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stages.tools.train_bench_worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the pictures, *.jpg")
    parser.add_argument("--params", type=Path, required=True, help="the params of this setting (its processes and threads)")
    parser.add_argument("--images", type=int, required=True, help="train on the first this many pictures")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--memory", dest="in_memory", action="store_true", help="pictures decoded once, kept in memory")
    where.add_argument("--disk", dest="in_memory", action="store_false", help="pictures read from disk at every step")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    args = parser.parse_args()
    if args.images < 1 or args.steps < 1 or args.warmup < 0:
        parser.error("--images and --steps must be at least 1, --warmup at least 0")
    params = load_params(path=args.params)
    if params.train.processes > 1 and not distributed.started_by_torchrun():
        distributed.launch(params.train.processes, params.train.threads, "stages.tools.train_bench_worker", sys.argv[1:])
    else:
        measure_loop(params, args.folder, args.images, args.in_memory, args.steps, args.warmup)


if __name__ == "__main__":
    run_stage(main)
