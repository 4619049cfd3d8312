"""export stage: the trained .pth -> one self-contained .onnx, checked against PyTorch.

    python -m stages.export --epochs 20  ->  models/e20/model.onnx, metrics/e20/export.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from stages.atomic import atomic_path, write_json
from stages.formats import TorchClassifier, metrics_dir, model_path
from stages.manifest import read_split
from stages.onnx_model import META_CLASSES, META_PREPROCESS, OnnxClassifier
from stages.params import load_params
from stages.preprocess import PreprocessSpec, preprocess_batch


def export_onnx(model: torch.nn.Module, classes: list[str], spec: PreprocessSpec, opset: int, dest: Path) -> None:
    """Export with a dynamic batch dimension, weights inside the file, and the class names and
    preprocessing in the metadata so the .onnx file is all a predictor needs."""
    dummy = torch.zeros(1, 3, spec.crop, spec.crop)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model.eval(),
            (dummy,),
            str(raw),
            dynamo=True,
            external_data=False,  # one file, not a 200 KB graph plus a .data file
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
            opset_version=opset,
            input_names=["image"],
            output_names=["logits"],
        )
        proto = onnx.load(str(raw))
    set_metadata(proto, {META_CLASSES: json.dumps(classes), META_PREPROCESS: json.dumps(spec.to_dict())})
    onnx.checker.check_model(proto, full_check=True)
    with atomic_path(dest) as tmp_dest:
        onnx.save(proto, str(tmp_dest))


def set_metadata(proto: onnx.ModelProto, entries: dict[str, str]) -> None:
    kept = [p for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=value)


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
    params = load_params()
    torch_model = TorchClassifier(model_path(args.epochs, "pth"), params.evaluate.threads)
    onnx_path = model_path(args.epochs, "onnx")
    export_onnx(torch_model.model, torch_model.classes, torch_model.spec, params.export.opset, onnx_path)

    test_batch = preprocess_batch([e.path for e in read_split("test")], torch_model.spec)
    reference = torch_model(test_batch)
    report = {"onnx": parity(reference, OnnxClassifier(onnx_path, params.evaluate.threads)(test_batch))}
    write_json(metrics_dir(args.epochs) / "export.json", report)
    print(f"export: {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB), parity {report}")


if __name__ == "__main__":
    main()
