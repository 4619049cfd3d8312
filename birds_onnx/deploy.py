"""The format the pipeline recommends deploying on the machine that timed it, as
`birds-predict --runtime auto` reads it.

The report stage writes metrics/deploy.json, one entry per epoch setting:

    {"20": {"folder": "models/e20", "format": "onnx-int8", "model": "models/e20/model.int8.onnx",
            "runtime": "onnxruntime", "line": "onnx-int8: 3.45x pth, agrees on 45/45, 28.8 img/s"}}

`format`, `model` and `runtime` are null where no format qualifies (`line` then says why), and
`model` and `runtime` where the format is pth (birds-predict does not run PyTorch). Paths are
relative to the project root, the folder that holds metrics/.
"""

from __future__ import annotations

import json
from pathlib import Path

from birds_onnx.errors import BirdsOnnxError

DEPLOY_FILE = Path("metrics/deploy.json")
# The formats birds-predict can run: format -> (model file in the setting's folder, runtime).
# pth is not one of them: it needs PyTorch, which the runtime package leaves out.
RUNNABLE = {
    "onnx": ("model.onnx", "onnxruntime"),
    "onnx-int8": ("model.int8.onnx", "onnxruntime"),
    "openvino": ("model.onnx", "openvino"),
    "openvino-int8": ("model.int8.onnx", "openvino"),
}


class NoRecommendation(BirdsOnnxError):
    """`--runtime auto` found no recommendation it can run for the model asked."""


def find_deploy_file(model: Path) -> Path:
    """metrics/deploy.json in the project `model` lives in: the nearest folder above it that has one."""
    start = model.resolve()
    for folder in (start, *start.parents) if start.is_dir() else start.parents:
        if (folder / DEPLOY_FILE).is_file():
            return folder / DEPLOY_FILE
    raise NoRecommendation(f"--runtime auto: no {DEPLOY_FILE} above {model} (the report stage writes it: run `dvc repro`)")


def recommended(model: str) -> tuple[str, str]:
    """(model file, runtime) to run for `model` under `--runtime auto`. `model` is a setting's
    folder (models/e20: the recommended file in it) or the recommended file itself."""
    deploy_file = find_deploy_file(Path(model))
    root = deploy_file.parent.parent
    try:
        entries = json.loads(deploy_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise NoRecommendation(f"--runtime auto: cannot read {deploy_file}: {e}") from None
    asked = Path(model).resolve()
    for epochs, entry in entries.items():
        if asked == (root / entry["folder"]).resolve() or (entry["model"] and asked == (root / entry["model"]).resolve()):
            if not entry["model"]:  # no format qualified, or pth, which birds-predict cannot run
                cannot = ", which needs PyTorch: birds-predict does not run it" if entry["format"] == "pth" else ""
                raise NoRecommendation(f"--runtime auto: for {epochs} epochs {deploy_file} recommends {entry['line']}{cannot}")
            return str(root / entry["model"]), entry["runtime"]
    choices = "; ".join(f"{e['model']} with {e['runtime']}" for e in entries.values() if e["model"])
    raise NoRecommendation(
        f"--runtime auto: {deploy_file} recommends no runtime for {model} (it recommends: {choices or 'nothing runnable'}); "
        f"pass one of those, a setting's folder (models/eN), or --runtime onnxruntime|openvino"
    )
