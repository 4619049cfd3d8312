"""export stage: the trained .pth -> a self-contained fp32 .onnx and its int8 twin, both checked
against PyTorch.

    python -m stages.export --epochs 20
        -> models/e20/model.onnx        fp32, dynamic batch, class names + preprocessing in metadata
        -> models/e20/model.int8.onnx   static QDQ int8 (per-channel weights), same metadata
        -> metrics/epochs/e20/export.json    logit distance and top-1 agreement of each vs PyTorch, and
                                        the calibration method kept for the int8 model and why

The int8 model is always built, whatever evaluate.formats lists: it is a deployable product of
this stage (the file a user copies to a Raspberry Pi), DVC needs a fixed list of outputs, and
choosing what to compare must not rebuild what was exported.

Calibration: export.int8.methods are tried in turn, each calibrated on the same
export.int8.calibration_images training images; the first whose int8 model predicts what the
fp32 model predicts on at least evaluate.min_agreement of the other training images (held out
from calibration; never the test images, which judge the result) in both ONNX Runtime and
OpenVINO is kept. Where none does, the one that agrees most is kept and export.json says so.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from stages.shared.errors import run_stage
from stages.shared.atomic import atomic_path, write_json
from stages.shared.formats import TorchClassifier, load_classifier
from stages.shared.paths import model_path
from stages.shared.paths import export_file
from stages.shared.splits import Example, read_split
from birds_onnx.onnx_model import META_CLASSES, META_PREPROCESS, OnnxClassifier
from stages.shared.params import load_params
from birds_onnx.preprocess import PreprocessSpec, preprocess_batch

CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}

PARAMS = ("export", "evaluate.threads", "evaluate.min_agreement")  # the params this stage reads: dvc.yaml lists the same keys
INT8_RUNTIMES = ("onnx-int8", "openvino-int8")  # the formats that run the int8 file: it must hold in each


def export_onnx(model: torch.nn.Module, classes: list[str], spec: PreprocessSpec, opset: int, dest: Path) -> None:
    """Export with a dynamic batch dimension, weights inside the file, and the class names and
    preprocessing in the metadata so the .onnx file is all a predictor needs."""
    dummy = torch.zeros(1, 3, spec.crop, spec.crop)  # pragma: no mutate: the example batch's size is not in the file: the batch dimension is exported symbolic
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"  # pragma: no mutate: any file name in a fresh temporary folder
        torch.onnx.export(  # pragma: no mutate: dynamo=True is the default (torch 2.14), and external_data's file is read back whole: dropping either changes nothing (the whole call: a dropped argument is a mutant of the call's first line)
            model.eval(),
            (dummy,),
            str(raw),
            dynamo=True,
            # one file, not a 200 KB graph plus a .data file (and read back whole either way: onnx.load reads a .data file beside it)
            external_data=False,  # pragma: no mutate: the exporter's file is read back whole and saved as one file
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),  # pragma: no mutate: an ONNX file keeps a symbolic dimension's name only, not the bounds torch.export traced it with
            opset_version=opset,
            input_names=["image"],
            output_names=["logits"],
        )
        proto = onnx.load(str(raw))
    strip_debug_info(proto)
    save_checked(proto, metadata(classes, spec), dest)


def strip_debug_info(proto: onnx.ModelProto) -> None:
    """Drop the exporter's per-node debug metadata (source stack traces, FX node text): it holds
    absolute paths of the exporting machine's Python install, so it would leak them into the
    file a user ships and make the same weights export to different bytes in another checkout."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""


def metadata(classes: list[str], spec: PreprocessSpec) -> dict[str, str]:
    return {META_CLASSES: json.dumps(classes), META_PREPROCESS: json.dumps(spec.to_dict())}


def save_checked(proto: onnx.ModelProto, entries: dict[str, str], dest: Path) -> None:
    set_metadata(proto, entries)
    onnx.checker.check_model(proto, full_check=True)
    with atomic_path(dest) as tmp_dest:
        onnx.save(proto, str(tmp_dest))


def set_metadata(proto: onnx.ModelProto, entries: dict[str, str]) -> None:
    kept = [p for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)


class Calibration(CalibrationDataReader):
    """Feeds preprocessed images to onnxruntime's calibrator one at a time (its histogram
    methods stack the outputs of all runs, so every run must have the same shape)."""

    def __init__(self, images: np.ndarray, input_name: str = "image"):
        self.batches = iter([{input_name: image[None]} for image in images])

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def calibration_examples(train: list[Example], count: int) -> list[Example]:
    """`count` training examples evenly spread over the split, so every class gets its share."""
    return [train[i] for i in np.linspace(0, len(train) - 1, count).round().astype(int)]


def held_out_examples(train: list[Example], calibration: list[Example]) -> list[Example]:
    """The training examples calibration did not see, which check the int8 model; where
    calibration took them all, the calibration examples themselves."""
    seen = set(calibration)
    return [e for e in train if e not in seen] or calibration


def first_that_agrees(methods: list[str], agreement_of, min_agreement: float) -> tuple[str, dict[str, float]]:
    """The first of `methods` whose agreement (`agreement_of(method)`, the lowest over the int8
    runtimes) is at least `min_agreement`; where none is, the one that agrees most (the first of
    equals). Returns it and the agreement of every method tried, in order."""
    tried: dict[str, float] = {}
    for method in methods:
        tried[method] = agreement_of(method)
        if tried[method] >= min_agreement:
            return method, tried
    return max(tried, key=tried.get), tried


def quantize_checked(fp32_path: Path, calibration: np.ndarray, held_out: np.ndarray, methods: list[str],
                     min_agreement: float, entries: dict[str, str], dest: Path, threads: int) -> dict:
    """quantize_int8 with each method in turn (first_that_agrees); the kept model goes to
    `dest`. Agreement is top-1 with the fp32 model on `held_out`, in each runtime of the int8
    file (INT8_RUNTIMES), the lowest counting. Returns what export.json records."""
    reference = load_classifier("onnx", fp32_path, threads)(held_out).argmax(1)
    with tempfile.TemporaryDirectory() as tmp:
        def agreement_of(method: str) -> float:
            candidate = Path(tmp) / f"{method}.onnx"
            quantize_int8(fp32_path, calibration, method, entries, candidate)
            return min(round(float((load_classifier(fmt, candidate, threads)(held_out).argmax(1) == reference).mean()), 6)
                       for fmt in INT8_RUNTIMES)

        kept, tried = first_that_agrees(methods, agreement_of, min_agreement)
        with atomic_path(dest) as tmp_dest:
            shutil.copyfile(Path(tmp) / f"{kept}.onnx", tmp_dest)
    return {"method": kept, "held_out_images": len(held_out), "agreement_with_fp32": tried,
            "meets_min_agreement": tried[kept] >= min_agreement}


def quantize_int8(fp32_path: Path, calibration: np.ndarray, method: str, entries: dict[str, str], dest: Path) -> None:
    """Static int8 quantisation in QDQ form: weights int8 per output channel, activations uint8
    with ranges measured on `calibration` images (u8 activations x s8 weights is the fast integer
    GEMM on x86). `quant_pre_process` first infers shapes and fuses, as onnxruntime advises.

    The classifier's output, the logits, stays fp32 (its Gemm still runs in int8): rounded to
    256 levels over their calibration range, close logits became ties and flipped the top class
    of 6 of 45 test images of the 20-epoch model; kept fp32 it agreed with PyTorch on all 45, at
    no measurable cost in speed."""
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"  # pragma: no mutate: any file names in a fresh temporary folder
        quant_pre_process(str(fp32_path), str(prepared))
        quantize_static(  # pragma: no mutate: QDQ and QInt8 weights are quantize_static's defaults: dropping either changes nothing (the whole call: a dropped argument is a mutant of the call's first line)
            str(prepared),
            str(quantized),
            Calibration(calibration),
            quant_format=QuantFormat.QDQ,  # pragma: no mutate: QDQ is quantize_static's default format
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CALIBRATION_METHODS[method],
            extra_options={"OpTypesToExcludeOutputQuantization": ["Gemm"]},
        )
        proto = onnx.load(str(quantized))
    save_checked(proto, entries, dest)  # the quantiser does not carry metadata over


def parity(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """How far a converted model's logits are from PyTorch's on the same inputs."""
    return {
        "max_abs_logit_diff": float(np.abs(reference - candidate).max()),
        "top1_agreement": float((reference.argmax(1) == candidate.argmax(1)).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, required=True)
    args = parser.parse_args()
    params = load_params(*PARAMS)
    threads, int8 = params.evaluate.threads, params.export.int8
    torch_model = TorchClassifier(model_path(args.epochs, "pth"), threads)
    classes, spec = torch_model.classes, torch_model.spec
    onnx_path = model_path(args.epochs, "onnx")
    export_onnx(torch_model.model, classes, spec, params.export.opset, onnx_path)
    train = read_split("train")
    calibration_set = calibration_examples(train, int8.calibration_images)
    calibration = preprocess_batch([e.path for e in calibration_set], spec)
    held_out = preprocess_batch([e.path for e in held_out_examples(train, calibration_set)], spec)
    kept = quantize_checked(onnx_path, calibration, held_out, list(int8.methods), params.evaluate.min_agreement,
                            metadata(classes, spec), model_path(args.epochs, "onnx-int8"), threads)
    print(f"export: int8 calibration {kept['method']}, agreement with fp32 on {kept['held_out_images']} held-out "
          f"training images per method tried: {kept['agreement_with_fp32']}")

    test_batch = preprocess_batch([e.path for e in read_split("test")], spec)
    reference = torch_model(test_batch)
    report = {}
    for fmt in ("onnx", "onnx-int8"):
        path = model_path(args.epochs, fmt)
        report[fmt] = parity(reference, OnnxClassifier(path, threads)(test_batch))
        print(f"export: {path} ({path.stat().st_size / 1e6:.1f} MB), vs pth: {report[fmt]}")
    report["onnx-int8"]["calibration"] = kept
    write_json(export_file(args.epochs), report)


if __name__ == "__main__":
    run_stage(main)
