"""benchmark: each format's model-only speed at batch 1, beside this CPU's fp32 limit, and
its end-to-end throughput when the predictor streams a folder.

    python -m stages.tools.bench                      # or: make bench
    python -m stages.tools.bench --epochs 50 --runs 200 --threads 2

Models: the pipeline's models/eN/ (the last train.epochs setting whose three files exist, or
--epochs), else a freshly initialised ResNet50 with params.yaml's classes and preprocessing,
exported and int8-quantised here, so the benchmark also runs in a fresh clone. Speed does not
depend on what the weights learned; the output says which models were used.

Protocol:
- one process; PyTorch, ONNX Runtime and the GEMM probes all get the same thread count
  (evaluate.threads unless --threads);
- inputs: synthetic bird pictures through birds_onnx.preprocess, batch 1, a different image each run;
- per format: --warmup untimed runs, then --runs timed runs, in --rounds rounds that take turns
  across formats and GEMM probes, so a burst of load from other processes falls on all alike;
- figures: median and p90 latency of all timed runs; img/s = 1 / median latency; the ratio of
  each format's img/s to PyTorch eager's;
- roofline: the fp32 GEMM peak (stages/tools/roofline.py: GFLOP/s of 2048 x 2048 matrix products
  in torch, ONNX Runtime and OpenVINO, the fastest; each the fastest of 2 runs per round, as load
  can only slow a run down) divided by the model's FLOPs per image at the crop size (counted by torch's
  FlopCounterMode) is the most img/s any fp32 implementation could reach here. int8 and bf16
  arithmetic are not bound by it (they exceed 100%): int8's own roofline comes from ONNX Runtime's
  uint8 x int8 GEMM peak, bf16's (on a CPU that computes bf16 natively, where the openvino format
  runs in bf16) from the faster of torch's and OpenVINO's bf16 GEMM peaks; each format's share
  of the roofline of the precision it ran in is in the last column;
- OpenVINO (formats openvino, openvino-int8: the same two .onnx files) gets the same threads as
  ONNX Runtime, one stream, latency mode; where it is not installed its rows are left out;
- throughput: model-only img/s at batch 8 (median of timed runs, interleaved like the rest),
  beside the streaming predictor end to end (files -> decoder threads -> batches of 8 -> model,
  as `birds-predict` runs) over the 45 test images (mean of --rounds passes) and over a folder
  of --folder-images photo-sized pictures (synthetic drawings enlarged to a 12-megapixel phone
  photo's 4032 x 3024, one pass);
- the whole limit: decoding and preprocessing timed on their own, in one thread (CPU seconds of
  that thread, mean per image, as a throughput is), on the test images and on the photos. The
  streaming predictor's decoders and the model share this machine's cores, so with d core-seconds
  of decoding per image and a model at R img/s on t threads (t / R core-seconds per image), c
  cores stream at most c / (d + t / R) img/s, and never more than R or t / d; streaming's share
  of that combined limit is the last column (goal: at least 90%).
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tabulate import tabulate
from torch.utils.flop_counter import FlopCounterMode

from stages.shared.errors import run_stage
from stages.evaluate import streaming_img_per_s, timed_runs
from stages.export import export_onnx, metadata, quantize_int8
from stages.shared.formats import load_classifier, precision
from stages.shared.paths import MODEL_FILES, model_path
from stages.shared.paths import model_dir
from stages.shared.paths import SPLIT_DIR
from stages.shared.splits import read_split
from stages.shared.model import build_model, save_checkpoint
from birds_onnx.openvino_model import RuntimeMissing
from stages.shared.params import Params, load_params
from birds_onnx.preprocess import PreprocessSpec, preprocess, preprocess_batch
from stages.sources.synthetic import synthesize
from stages.tools.roofline import GEMM_SIZE, fp32_peak, gemm_gflops, gemm_probes, openvino_gemm_probes, peak

GEMM_RUNS_PER_ROUND = 2
THROUGHPUT_BATCH = 8  # the batch the streaming predictor runs by default
PHOTO_SIZE = (4032, 3024)  # a 12-megapixel phone photo, what a user's folder holds


def load_classifiers(folder: Path, threads: int) -> tuple[dict, list[str]]:
    """Every format's classifier, and a line per format left out because its runtime is not installed."""
    classifiers, skipped = {}, []
    for fmt, name in MODEL_FILES.items():
        try:
            classifiers[fmt] = load_classifier(fmt, folder / name, threads)
        except RuntimeMissing as e:
            skipped.append(f"{fmt}: left out, {e}")
    return classifiers, skipped


def flops_per_image(model: torch.nn.Module, crop: int) -> float:
    """Multiply-adds count twice: the figure a GEMM's GFLOP/s is quoted in."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 3, crop, crop))
    return float(counter.get_total_flops())


def synthetic_images(params: Params, count: int, folder: Path, seed: int | None = None) -> list[Path]:
    cfg = params.crawl.synthetic
    folder.mkdir(exist_ok=True)
    paths = []
    for slug, index, data in synthesize(params.slugs, count, params.seed if seed is None else seed, size_range=(cfg.min_size, cfg.max_size)):
        paths.append(folder / f"{slug}_{index:03d}.jpg")
        paths[-1].write_bytes(data)
    return paths


def enlarged(paths: list[Path], size: tuple[int, int] = PHOTO_SIZE) -> list[Path]:
    """Each picture enlarged to a photo's size, saved beside it as a photo would be (drawing at
    that size takes seconds an image; decoding cost depends on the pixels, not on how they were made)."""
    photos = []
    for path in paths:
        photos.append(path.with_name(f"photo_{path.name}"))
        with Image.open(path) as img:
            img.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(photos[-1], quality=90)
    return photos


def decode_core_seconds(paths: list[Path], spec: PreprocessSpec) -> float:
    """CPU seconds one thread spends decoding and preprocessing an image, the mean over `paths`."""
    started = time.thread_time()
    for path in paths:
        preprocess(path, spec)
    return (time.thread_time() - started) / len(paths)


def combined_limit(decode_s: float, model_img_per_s: float, threads: int, cores: int) -> float:
    """The most img/s decoding and the model allow together: `cores` cores shared by `threads`
    decoder threads (`decode_s` core-seconds an image) and a model reaching `model_img_per_s` on
    `threads` threads (threads / model_img_per_s core-seconds an image)."""
    decoders = threads / decode_s if decode_s else float("inf")
    return min(cores / (decode_s + threads / model_img_per_s), model_img_per_s, decoders)


def test_images(fallback: list[Path]) -> tuple[list[Path], str]:
    """The pipeline's test split when it is built, else the first 45 of `fallback`."""
    if (SPLIT_DIR / "test.csv").is_file():
        return [e.path for e in read_split("test")], f"the pipeline's {SPLIT_DIR / 'test.csv'}"
    return fallback[:45], f"{len(fallback[:45])} synthetic pictures (no pipeline test split in this checkout)"


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
    """An untrained ResNet50 saved, exported and quantised as the pipeline would (with its first
    calibration method: the speed does not depend on which)."""
    torch.manual_seed(params.seed)
    model = build_model(len(params.slugs)).eval()
    files = {f: folder / name for f, name in MODEL_FILES.items()}
    save_checkpoint(files["pth"], model, params.slugs, PreprocessSpec.from_dict(params.preprocess.model_dump()))
    export_onnx(model, params.slugs, PreprocessSpec.from_dict(params.preprocess.model_dump()), params.export.opset, files["onnx"])
    quantize_int8(files["onnx"], images, params.export.int8.methods[0], metadata(params.slugs, PreprocessSpec.from_dict(params.preprocess.model_dump())), files["onnx-int8"])
    return folder


def batch_of_one(classifier, images: np.ndarray) -> Callable:
    """A call classifying one image, a different one each time."""
    batches = itertools.cycle(images[:, None])
    return lambda: classifier(next(batches))


def take_turns(calls: dict[str, tuple[Callable, int, int]], rounds: int) -> dict[str, np.ndarray]:
    """Seconds per timed call of each (call, warm-up runs, timed runs per round), the calls
    taking turns round after round, so that load from other processes falls on all alike."""
    seconds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, (call, warmup, runs) in calls.items():
            seconds[name].append(timed_runs(call, warmup, runs))
    return {name: np.concatenate(s) for name, s in seconds.items()}


def throughput(classifiers: dict, images: np.ndarray, test_paths: list[Path], folder: list[Path], args) -> dict[str, dict]:
    """Per format: model-only img/s at batch 8 and streaming img/s over the test images (formats
    taking turns, --rounds times) and over the folder (once, at the end)."""
    batch = images[np.arange(THROUGHPUT_BATCH) % len(images)]
    calls = {fmt: (lambda c=c: c(batch), 1, max(2, args.runs // (THROUGHPUT_BATCH * args.rounds))) for fmt, c in classifiers.items()}
    per_batch, streamed = {fmt: [] for fmt in classifiers}, {fmt: [] for fmt in classifiers}
    for _ in range(args.rounds):
        for fmt, seconds in take_turns(calls, 1).items():
            per_batch[fmt].append(seconds)
        for fmt, c in classifiers.items():
            streamed[fmt].append(streaming_img_per_s(c, test_paths, THROUGHPUT_BATCH, args.threads))
    figures = {}
    for fmt, c in classifiers.items():
        figures[fmt] = {
            "batch 8": THROUGHPUT_BATCH / float(np.median(np.concatenate(per_batch[fmt]))),
            "test": float(np.mean(streamed[fmt])),
            "folder": streaming_img_per_s(c, folder, THROUGHPUT_BATCH, args.threads),
        }
    return figures


def markdown(rows: list[list[str]], headers: list[str], names: int = 1) -> str:
    """A GitHub markdown table of cells already formatted: the first `names` columns left, the figures right."""
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True,
                    colalign=["left"] * names + ["right"] * (len(headers) - names))


def throughput_table(figures: dict[str, dict], seconds: dict[str, np.ndarray], decode: dict[str, float], threads: int, cores: int) -> str:
    """Per format: model-only speeds, then for the test images and the photos the streaming
    figure beside the combined limit of decoding and the model on `cores` cores."""
    headers = ["format", "model-only batch 1", f"model-only batch {THROUGHPUT_BATCH}", "streaming, test images",
               "combined limit", "share", "streaming, photos", "combined limit", "share"]
    rows = []
    for fmt, f in figures.items():
        row = [fmt, f"{1 / np.median(seconds[fmt]):.1f}", f"{f['batch 8']:.1f}"]
        for images in ("test", "folder"):
            limit = combined_limit(decode[images], f["batch 8"], threads, cores)
            row += [f"{f[images]:.1f}", f"{limit:.1f}", f"{f[images] / limit:.0%}"]
        rows.append(row)
    return markdown(rows, headers)


def table(seconds: dict[str, np.ndarray], precisions: dict[str, str], rooflines: dict[str, float]) -> str:
    """One row per format; `rooflines`: img/s per precision (fp32, int8, bf16 where measured)."""
    base, onnx = 1 / np.median(seconds["pth"]), 1 / np.median(seconds["onnx"])
    headers = ["format", "median ms", "p90 ms", "img/s", "vs pth", "vs onnx", "of fp32 roofline", "precision",
               "of its precision's roofline"]
    rows = []
    for fmt, s in seconds.items():
        img_per_s, ran_in = 1 / np.median(s), precisions[fmt]
        own = f"{img_per_s / rooflines[ran_in]:.0%}" if ran_in in rooflines else "-"
        rows.append([fmt, f"{1000 * np.median(s):.1f}", f"{1000 * np.percentile(s, 90):.1f}", f"{img_per_s:.1f}",
                     f"{img_per_s / base:.2f}x", f"{img_per_s / onnx:.2f}x", f"{img_per_s / rooflines['fp32']:.0%}", ran_in, own])
    return markdown(rows, headers)


def openvino_summary(seconds: dict[str, np.ndarray], precisions: dict[str, str], rooflines: dict[str, float]) -> list[str]:
    """What the OpenVINO rows show: bf16's speed-up over ONNX Runtime fp32 where the CPU computes
    bf16 natively (none is claimed where it runs fp32), and int8's share of the int8 roofline."""
    img_per_s = {fmt: 1 / np.median(s) for fmt, s in seconds.items()}
    lines = []
    if "openvino" in img_per_s:
        ratio = img_per_s["openvino"] / img_per_s["onnx"]
        if precisions["openvino"] == "bf16":
            lines.append(f"openvino ran in bf16 (native on this CPU): {ratio:.2f}x onnx (ONNX Runtime fp32) at batch 1 "
                         f"(goal: at least 1.8x), {img_per_s['openvino'] / rooflines['bf16']:.0%} of the bf16 roofline.")
        else:
            lines.append(f"openvino ran in {precisions['openvino']}: this CPU does not compute bf16 natively (AVX512-BF16 or AMX), "
                         f"so no speed-up over onnx is claimed ({ratio:.2f}x here).")
    if "openvino-int8" in img_per_s:
        lines.append(f"openvino-int8 reaches {img_per_s['openvino-int8'] / rooflines['int8']:.0%} of the int8 roofline "
                     f"(goal: at least 90%), {img_per_s['openvino-int8'] / img_per_s['onnx-int8']:.2f}x onnx-int8.")
    return lines


def main() -> None:
    params = load_params()
    parser = argparse.ArgumentParser(
        prog="python -m stages.tools.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, help="time models/eN (default: the last setting that is built)")
    parser.add_argument("--threads", type=int, default=params.evaluate.threads)
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per format and round")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per format")
    parser.add_argument("--rounds", type=int, default=5, help="turns the formats take")
    parser.add_argument("--folder-images", type=int, default=100, help="photos in the streamed folder")
    args = parser.parse_args()
    if min(args.threads, args.runs, args.rounds, args.folder_images) < 1 or args.warmup < 0:
        parser.error("--threads, --runs, --rounds and --folder-images must be at least 1, --warmup at least 0")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = synthetic_images(params, max(45, params.export.int8.calibration_images), tmp)
        folder = pipeline_models(params, args.epochs)
        if folder is None:
            source = "a freshly initialised ResNet50 (no pipeline models in models/eN), exported and quantised here"
            folder = fresh_models(params, preprocess_batch(paths, PreprocessSpec.from_dict(params.preprocess.model_dump())), tmp)
        else:
            source = f"the pipeline's {folder}/"
        classifiers, skipped = load_classifiers(folder, args.threads)
        precisions = {fmt: precision(fmt, c) for fmt, c in classifiers.items()}
        crop = classifiers["pth"].spec.crop
        images = preprocess_batch(paths, classifiers["pth"].spec)
        flops = flops_per_image(classifiers["pth"].model, crop)
        per_round = -(-args.runs // args.rounds)
        calls = {fmt: (batch_of_one(c, images), args.warmup, per_round) for fmt, c in classifiers.items()}
        probes = gemm_probes(args.threads)
        if "openvino" in classifiers:
            probes |= openvino_gemm_probes(args.threads, bf16=precisions["openvino"] == "bf16")
        calls |= {name: (probe, 1, GEMM_RUNS_PER_ROUND) for name, probe in probes.items()}
        test_paths, test_source = test_images(paths)
        folder_paths = enlarged(synthetic_images(params, args.folder_images, tmp / "folder", seed=params.seed + 1))
        load_before = os.getloadavg()[0]
        seconds = take_turns(calls, args.rounds)
        decode = {"test": decode_core_seconds(test_paths, classifiers["pth"].spec),
                  "folder": decode_core_seconds(folder_paths, classifiers["pth"].spec)}
        figures = throughput(classifiers, images, test_paths, folder_paths, args)
        load_after = os.getloadavg()[0]

    # the fastest product is the peak: load from elsewhere can only slow a run down
    peaks = {name: gemm_gflops(seconds.pop(name).min()) for name in probes}

    rooflines = {p: peak(peaks, p) * 1e9 / flops for p in ("fp32", "int8", "bf16") if any(n.startswith(p + " ") for n in peaks)}
    fp32_roofline, int8_roofline = rooflines["fp32"], rooflines["int8"]
    print(f"models: {source}")
    print(f"threads: {args.threads} for every format and every GEMM probe; {os.cpu_count()} CPUs, load average "
          f"{load_before:.1f} before and {load_after:.1f} after the timing")
    if max(load_before, load_after) > os.cpu_count():
        print("warning: other processes were using the CPU; PyTorch's threads suffer most: rerun when it is idle")
    print(f"protocol: batch 1, {args.warmup} warm-up runs then {per_round} timed runs per format "
          f"in each of {args.rounds} interleaved rounds; median and p90 of all timed runs")
    print(f"GEMM peaks ({GEMM_SIZE}x{GEMM_SIZE}, fastest of {GEMM_RUNS_PER_ROUND * args.rounds} runs over the rounds): "
          + ", ".join(f"{name} {rate:.0f}" for name, rate in peaks.items()) + " G(FL)OP/s")
    print(f"ResNet50 at {crop}x{crop}: {flops / 1e9:.2f} GFLOP per image, so the fp32 roofline is "
          f"{fp32_peak(peaks):.0f} / {flops / 1e9:.2f} = {fp32_roofline:.1f} img/s (int8: {int8_roofline:.0f} img/s"
          + (f", bf16: {rooflines['bf16']:.0f} img/s" if "bf16" in rooflines else "") + ")")
    for line in skipped:
        print(line)
    print()
    print(table(seconds, precisions, rooflines))
    print()
    print(f"onnx-int8 reaches {1 / np.median(seconds['onnx-int8']) / int8_roofline:.0%} of the int8 roofline.")
    for line in openvino_summary(seconds, precisions, rooflines):
        print(line)
    print()
    cores = len(os.sched_getaffinity(0))
    print(f"throughput, img/s: batches of {THROUGHPUT_BATCH}; streaming = files -> {args.threads} decoder threads -> "
          f"model, end to end; test images: {test_source}; photos: {len(folder_paths)} pictures at "
          f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]}")
    print(f"decoding and preprocessing, one thread: {1000 * decode['test']:.1f} core-ms per test image, "
          f"{1000 * decode['folder']:.1f} per photo; combined limit = {cores} cores / (decoding + {args.threads} "
          f"threads / model-only batch-{THROUGHPUT_BATCH} img/s); goal: streaming at least 90% of it")
    print(throughput_table(figures, seconds, decode, args.threads, cores))


if __name__ == "__main__":
    run_stage(main)
