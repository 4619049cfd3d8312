"""export stage: the trained .pth -> a self-contained fp32 .onnx and its int8 twin, both checked
against PyTorch.

    python -m stages.export --epochs 20
        -> models/e20/model.onnx        fp32, dynamic batch, class names + preprocessing in metadata
        -> models/e20/model.int8.onnx   static QDQ int8 (per-channel weights), same metadata
        -> metrics/e20/export.json      logit distance and top-1 agreement of each vs PyTorch

The int8 model is always built, whatever evaluate.formats lists: it is a deployable product of
this stage (the file a user copies to a Raspberry Pi), DVC needs a fixed list of outputs, and
choosing what to compare must not rebuild what was exported.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from stages.errors import run_stage
from stages.atomic import atomic_path, write_json
from stages.formats import TorchClassifier, model_path
from stages.paths import metrics_dir
from stages.manifest import Example, read_split
from birds_onnx.onnx_model import META_CLASSES, META_PREPROCESS, OnnxClassifier
from stages.params import load_params
from birds_onnx.preprocess import PreprocessSpec, preprocess_batch

CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}

PARAMS = ("export", "evaluate.threads")  # the params this stage reads: dvc.yaml lists the same keys


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
    calibration = preprocess_batch([e.path for e in calibration_examples(read_split("train"), int8.calibration_images)], spec)
    quantize_int8(onnx_path, calibration, int8.method, metadata(classes, spec), model_path(args.epochs, "onnx-int8"))

    test_batch = preprocess_batch([e.path for e in read_split("test")], spec)
    reference = torch_model(test_batch)
    report = {}
    for fmt in ("onnx", "onnx-int8"):
        path = model_path(args.epochs, fmt)
        report[fmt] = parity(reference, OnnxClassifier(path, threads)(test_batch))
        print(f"export: {path} ({path.stat().st_size / 1e6:.1f} MB), vs pth: {report[fmt]}")
    write_json(metrics_dir(args.epochs) / "export.json", report)


if __name__ == "__main__":
    run_stage(main)
