"""benchmark: each format's model-only speed at batch 1, beside this CPU's fp32 limit.

    python -m stages.bench                      # or: make bench
    python -m stages.bench --epochs 50 --runs 200 --threads 2

Models: the pipeline's models/eN/ (the last train.epochs setting whose three files exist, or
--epochs), else a freshly initialised ResNet50 with params.yaml's classes and preprocessing,
exported and int8-quantised here, so the benchmark also runs in a fresh clone. Speed does not
depend on what the weights learned; the output says which models were used.

Protocol:
- one process; PyTorch, ONNX Runtime and the GEMM probe all get the same thread count
  (evaluate.threads unless --threads);
- inputs: synthetic bird pictures through stages.preprocess, batch 1, a different image each run;
- per format: --warmup untimed runs, then --runs timed runs, in --rounds rounds that take turns
  across formats, so a burst of load from other processes falls on every format alike;
- figures: median and p90 latency of all timed runs; img/s = 1 / median latency; the ratio of
  each format's img/s to PyTorch eager's;
- roofline: the fp32 GEMM peak (GFLOP/s of a 2048 x 2048 matrix product, best of --runs/10
  runs: load can only slow a run down) divided by the model's FLOPs per image at the crop size
  (counted by torch's FlopCounterMode) is the most img/s any fp32 implementation could reach
  here. int8 arithmetic is not bound by it and can exceed 100%.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from stages.evaluate import timed_runs
from stages.export import export_onnx, metadata, quantize_int8
from stages.formats import MODEL_FILES, load_classifier, model_dir, model_path
from stages.model import build_model, save_checkpoint
from stages.params import Params, load_params
from stages.preprocess import preprocess_batch
from stages.synthetic import synthesize

GEMM_SIZE = 2048  # large enough for the BLAS kernel to run at full speed, ~20 GFLOP a product


def gemm_peak_gflops(threads: int, runs: int) -> float:
    """fp32 matrix-product GFLOP/s with `threads` threads: the best of `runs` products."""
    torch.set_num_threads(threads)
    a, b = torch.randn(GEMM_SIZE, GEMM_SIZE), torch.randn(GEMM_SIZE, GEMM_SIZE)
    seconds = timed_runs(lambda: torch.mm(a, b), warmup=2, runs=runs)
    return 2 * GEMM_SIZE**3 / seconds.min() / 1e9


def flops_per_image(model: torch.nn.Module, crop: int) -> float:
    """Multiply-adds count twice: the figure a GEMM's GFLOP/s is quoted in."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 3, crop, crop))
    return float(counter.get_total_flops())


def synthetic_images(params: Params, count: int, folder: Path) -> list[Path]:
    cfg = params.crawl.synthetic
    paths = []
    for slug, index, data in synthesize(params.slugs, count, params.seed, size_range=(cfg.min_size, cfg.max_size)):
        paths.append(folder / f"{slug}_{index:03d}.jpg")
        paths[-1].write_bytes(data)
    return paths


def pipeline_models(params: Params, epochs: int | None) -> Path | None:
    """The folder of the pipeline's models to time, or None when they are not built."""
    if epochs is not None:
        missing = [str(model_path(epochs, f)) for f in MODEL_FILES if not model_path(epochs, f).is_file()]
        if missing:
            raise SystemExit(f"bench: --epochs {epochs}: {', '.join(missing)} not found; run `dvc repro` first")
        return model_dir(epochs)
    built = [e for e in params.train.epochs if all(model_path(e, f).is_file() for f in MODEL_FILES)]
    return model_dir(built[-1]) if built else None


def fresh_models(params: Params, images: np.ndarray, folder: Path) -> Path:
    """An untrained ResNet50 saved, exported and quantised as the pipeline would."""
    torch.manual_seed(params.seed)
    model = build_model(len(params.slugs)).eval()
    files = {f: folder / name for f, name in MODEL_FILES.items()}
    save_checkpoint(files["pth"], model, params.slugs, params.preprocess)
    export_onnx(model, params.slugs, params.preprocess, params.export.opset, files["onnx"])
    quantize_int8(files["onnx"], images, params.export.int8.method, metadata(params.slugs, params.preprocess), files["onnx-int8"])
    return folder


def time_formats(classifiers: dict, images: np.ndarray, warmup: int, runs: int, rounds: int) -> dict[str, np.ndarray]:
    """Seconds per batch-1 call of every classifier, the formats taking turns round by round."""
    seconds = {fmt: [] for fmt in classifiers}
    per_round = -(-runs // rounds)
    for _ in range(rounds):
        for fmt, classifier in classifiers.items():
            batches = itertools.cycle(images[:, None])
            seconds[fmt].append(timed_runs(lambda: classifier(next(batches)), warmup, per_round))
    return {fmt: np.concatenate(s) for fmt, s in seconds.items()}


def table(seconds: dict[str, np.ndarray], roofline_img_per_s: float) -> str:
    base = 1 / np.median(seconds["pth"])
    lines = [
        "| format | median ms | p90 ms | img/s | vs pth | of fp32 roofline |",
        "|---|---|---|---|---|---|",
    ]
    for fmt, s in seconds.items():
        img_per_s = 1 / np.median(s)
        lines.append(
            f"| {fmt} | {1000 * np.median(s):.1f} | {1000 * np.percentile(s, 90):.1f} | {img_per_s:.1f} "
            f"| {img_per_s / base:.2f}x | {img_per_s / roofline_img_per_s:.0%} |"
        )
    return "\n".join(lines)


def main() -> None:
    params = load_params()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, help="time models/eN (default: the last setting that is built)")
    parser.add_argument("--threads", type=int, default=params.evaluate.threads)
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per format and round")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per format")
    parser.add_argument("--rounds", type=int, default=5, help="turns the formats take")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = synthetic_images(params, params.export.int8.calibration_images, tmp)
        folder = pipeline_models(params, args.epochs)
        if folder is None:
            source = "a freshly initialised ResNet50 (no pipeline models in models/eN), exported and quantised here"
            folder = fresh_models(params, preprocess_batch(paths, params.preprocess), tmp)
        else:
            source = f"the pipeline's {folder}/"
        classifiers = {f: load_classifier(f, folder / name, args.threads) for f, name in MODEL_FILES.items()}
        crop = classifiers["pth"].spec.crop
        images = preprocess_batch(paths, classifiers["pth"].spec)
        flops = flops_per_image(classifiers["pth"].model, crop)
        peak = gemm_peak_gflops(args.threads, max(3, args.runs // 10))
        seconds = time_formats(classifiers, images, args.warmup, args.runs, args.rounds)

    roofline = peak * 1e9 / flops
    print(f"models: {source}")
    print(f"threads: {args.threads} for every format and for the GEMM probe")
    print(f"protocol: batch 1, {args.warmup} warm-up runs then {-(-args.runs // args.rounds)} timed runs per format "
          f"in each of {args.rounds} interleaved rounds; median and p90 of all timed runs")
    print(f"fp32 roofline: GEMM peak {peak:.0f} GFLOP/s / {flops / 1e9:.2f} GFLOP per {crop}x{crop} image "
          f"= {roofline:.1f} img/s")
    print()
    print(table(seconds, roofline))


if __name__ == "__main__":
    main()
