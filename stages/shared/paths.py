"""Every file and folder the stages read and write, named once. dvc.yaml lists the same paths as
deps and outs (tests/test_paths.py compares the two). Relative to the project root, where
`dvc repro` runs the stages."""

from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")  # images only: <class>/<class>_<nnn>.<ext>
CRAWL_DIR = Path("data/crawl")  # manifest.csv (where each image came from) and rejects.csv (what was not kept, why)
SPLIT_DIR = Path("data/split")  # train.csv and test.csv

CHECKPOINT = "model.pth"  # the trained PyTorch weights, in model_dir
# Each format's file in model_dir. pth: PyTorch eager fp32; onnx: the same network in ONNX
# Runtime, fp32; onnx-int8: ONNX Runtime with int8 weights and activations (static QDQ
# quantisation, calibrated on training images); openvino, openvino-int8: the same two .onnx files
# run by OpenVINO, the fp32 one in bf16 where the CPU computes bf16 natively (fp32 elsewhere).
MODEL_FILES = {
    "pth": CHECKPOINT,
    "onnx": "model.onnx",
    "onnx-int8": "model.int8.onnx",
    "openvino": "model.onnx",
    "openvino-int8": "model.int8.onnx",
}

BASELINE_FILE = Path("metrics/baseline.json")
MACHINE_FILE = Path("metrics/machine.json")
# One folder per train.epochs setting, all under one parent: what train@N, export@N and evaluate@N
# measured. The report depends on the parent, as DVC cannot loop over settings in deps.
SETTINGS_DIR = Path("metrics/epochs")
# The report's outputs. The headline is numbered by the setting's position in train.epochs, not
# its epochs, so that `dvc metrics diff` lines up the rows of runs with other settings.
SUMMARY_DIR = Path("metrics/summary")
REPORT = Path("metrics/report.md")
SPEED_CHART = Path("metrics/speed.png")
TRAINING_CHART = Path("metrics/training.png")
DEPLOY_FILE = Path("metrics/deploy.json")  # also named in birds_onnx/deploy.py, which the predictor installs without stages/

# dvclive's per-epoch files, one per figure, that train@N writes and the report draws
TRAINING_FIGURES = ("train_loss", "train_acc", "test_acc", "lr")


def model_dir(epochs: int) -> Path:
    return Path("models") / f"e{epochs}"


def model_path(epochs: int, fmt: str) -> Path:
    return model_dir(epochs) / MODEL_FILES[fmt]


def metrics_dir(epochs: int) -> Path:
    return SETTINGS_DIR / f"e{epochs}"


def training_dir(epochs: int) -> Path:
    """dvclive's folder for train@N: metrics.json, and plots/metrics/<figure>.tsv per epoch."""
    return metrics_dir(epochs) / "train"


def training_figure(epochs: int, figure: str) -> Path:
    return training_dir(epochs) / "plots" / "metrics" / f"{figure}.tsv"


def export_file(epochs: int) -> Path:
    return metrics_dir(epochs) / "export.json"


def results_dir(epochs: int) -> Path:
    """evaluate@N's accuracy.json, speed.json and confusion/<format>.csv."""
    return metrics_dir(epochs) / "evaluate"
