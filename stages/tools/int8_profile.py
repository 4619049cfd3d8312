"""Where the int8 model's time goes at batch 1, against this CPU's int8 GEMM limit.

    python -m stages.tools.int8_profile               # or: make bench-int8
    python -m stages.tools.int8_profile --epochs 50 --runs 200

ONNX Runtime's profiler times every node of the optimised graph. The nodes are grouped by the
ResNet stage they belong to (by the spatial size of the feature map they write: 112/56 px is
conv1 and layer1, 28 px layer2, 14 px layer3, 7 px layer4 at a 224 px crop) and by kind:
the convolutions (QLinearConv: integer GEMMs), the residual additions (QLinearAdd: requantise,
add, requantise), and the rest (quantising the input, dequantising the logits, pooling, the head).
Each stage's convolution FLOPs (torch's FlopCounterMode on the same network) over its time give
the GEMM rate it reaches, as a share of the measured int8 GEMM peak (ONNX Runtime's MatMulInteger
on 2048 x 2048), so small late-stage GEMMs show up as such. Run with 1 thread and with --threads
threads, the stages' times give the parallel efficiency (t1 / (threads x tN)): what waking and
joining the threads costs per node. Then the same model under a few session options.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch.utils.flop_counter import FlopCounterMode

from birds_onnx.onnx_model import session_options
from stages.shared.errors import run_stage
from stages.shared.formats import load_classifier
from stages.shared.params import load_params
from stages.shared.paths import MODEL_FILES
from stages.tools.bench import fresh_models, markdown, pipeline_models, synthetic_images, take_turns
from stages.tools.roofline import gemm_gflops, gemm_probes
from birds_onnx.preprocess import PreprocessSpec, preprocess_batch

STAGES = ("conv1+layer1", "layer2", "layer3", "layer4")
OPTIONS = {  # session config entries tried on top of the pipeline's session options
    "as shipped (spinning threads)": {},
    "no spinning": {"session.intra_op.allow_spinning": "0"},
    "dynamic block base 4": {"session.dynamic_block_base": "4"},
}


def stage_flops(model: torch.nn.Module, crop: int) -> dict[str, float]:
    """Convolution FLOPs of each ResNet stage for one image (multiply-adds count twice)."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 3, crop, crop))
    by_module = counter.get_flop_counts()
    conv = lambda name: float(sum(n for op, n in by_module.get(name, {}).items() if "convolution" in str(op)))  # noqa: E731
    return {"conv1+layer1": conv("ResNet.conv1") + conv("ResNet.layer1"), "layer2": conv("ResNet.layer2"),
            "layer3": conv("ResNet.layer3"), "layer4": conv("ResNet.layer4")}


def stage_of(spatial: int, crop: int) -> str:
    """The ResNet stage whose convolutions read a feature map `spatial` pixels wide."""
    ratio = crop / spatial
    return STAGES[0] if ratio <= 4 else STAGES[1] if ratio <= 8 else STAGES[2] if ratio <= 16 else STAGES[3]


def profile(model: Path, threads: int, image: np.ndarray, runs: int, config: dict[str, str]) -> dict[tuple[str, str], float]:
    """Microseconds per image of each (stage, kind) over `runs` profiled runs."""
    options = session_options(threads)
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        for _ in range(runs):
            session.run(None, {name: image})
        events = json.loads(Path(session.end_profiling()).read_text())
    crop = image.shape[-1]
    spent: dict[tuple[str, str], float] = collections.defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        op, [shape] = e["args"]["op_name"], e["args"]["output_type_shape"][:1] or [{"": []}]
        dims = next(iter(shape.values()))
        kind = "convolution" if op == "QLinearConv" else "residual add" if op == "QLinearAdd" else "other"
        # NHWC after ONNX Runtime's layout pass ([1, H, W, C]), NCHW otherwise ([1, C, H, W])
        where = stage_of(dims[1] if dims[1] == dims[2] else dims[2], crop) if len(dims) == 4 and kind != "other" else "-"
        spent[(where, kind)] += e["dur"] / runs
    return spent


def median_ms(model: Path, threads: int, image: np.ndarray, runs: int, config: dict[str, str]) -> float:
    options = session_options(threads)
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    seconds = take_turns({"run": (lambda: session.run(None, {name: image}), 10, runs)}, 1)["run"]
    return 1000 * float(np.median(seconds))


def main() -> None:
    params = load_params()
    parser = argparse.ArgumentParser(prog="python -m stages.tools.int8_profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, help="profile models/eN (default: the last built setting, else a fresh model)")
    parser.add_argument("--threads", type=int, default=params.evaluate.threads)
    parser.add_argument("--runs", type=int, default=100, help="profiled and timed runs per setting")
    args = parser.parse_args()
    if min(args.threads, args.runs) < 1:
        parser.error("--threads and --runs must be at least 1")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = synthetic_images(params, params.export.int8.calibration_images, tmp)
        folder = pipeline_models(params, args.epochs) or fresh_models(params, preprocess_batch(paths, PreprocessSpec.from_dict(params.preprocess.model_dump())), tmp)
        torch_model = load_classifier("pth", folder / MODEL_FILES["pth"], args.threads)
        crop = torch_model.spec.crop
        image = preprocess_batch(paths[:1], torch_model.spec)
        flops = stage_flops(torch_model.model, crop)
        model = folder / MODEL_FILES["onnx-int8"]
        probe = gemm_probes(args.threads)["int8 ONNX Runtime MatMulInteger"]
        peak = gemm_gflops(min(take_turns({"gemm": (probe, 1, 5)}, 1)["gemm"]))
        single = profile(model, 1, image, args.runs, {})
        multi = profile(model, args.threads, image, args.runs, {})
        timings = {label: median_ms(model, args.threads, image, args.runs, config) for label, config in OPTIONS.items()}

    total = sum(multi.values())
    print(f"int8 model: {model}; batch 1, {crop} px; int8 GEMM peak {peak:.0f} GOP/s with {args.threads} threads")
    print(f"profiled node time: {total / 1000:.2f} ms per image with {args.threads} threads, {sum(single.values()) / 1000:.2f} ms with 1")
    print()
    rows = []
    for key in sorted(multi, key=lambda k: (STAGES.index(k[0]) if k[0] in STAGES else 9, k[1])):
        where, kind = key
        rate = flops[where] / (multi[key] * 1e-6) / 1e9 if kind == "convolution" else None
        efficiency = single.get(key, 0) / (args.threads * multi[key]) if multi[key] else 0
        rows.append([where, kind, f"{multi[key] / 1000:.2f}", f"{multi[key] / total:.0%}", "-" if rate is None else f"{rate:.0f}",
                     "-" if rate is None else f"{rate / peak:.0%}", f"{efficiency:.0%}"])
    print(markdown(rows, ["stage", "kind", "ms per image", "share", "GOP/s", "of int8 peak",
                          f"parallel efficiency ({args.threads} threads)"], names=2))
    all_flops = sum(flops.values())
    print()
    print(f"the convolutions as a whole: {all_flops / 1e9:.2f} GOP in {sum(v for k, v in multi.items() if k[1] == 'convolution') / 1000:.2f} ms; "
          f"the whole model's roofline share: {all_flops / (total * 1e-6) / 1e9 / peak:.0%}")
    print()
    print(markdown([[label, f"{ms:.2f}", f"{1000 / ms:.1f}"] for label, ms in timings.items()], ["session options", "median ms", "img/s"]))


if __name__ == "__main__":
    run_stage(main)
