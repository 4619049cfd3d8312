"""The models and the project the fixtures of tests/conftest.py build: a tiny 3-class ResNet50 in
every format, and a project holding a split and an untrained small stage network, with the
export stage run on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers.images import darkened, photo
from helpers.project import copy_project, params_file, tiny_params

# The classes of the tiny models and of the stage project: exporting and quantising ResNet50
# takes seconds, so the model, export, predictor and benchmark tests share one (conftest.py).
TINY_CLASSES = ["myna", "crow", "gull"]


def build_tiny_models(folder: Path) -> None:
    """An untrained 3-class ResNet50 at 64 px as folder/model.pth, model.onnx and model.int8.onnx."""
    import torch

    from birds_onnx.preprocess import PreprocessSpec, preprocess_batch
    from stages.export import export_onnx, metadata, quantize_int8
    from stages.shared.model import build_model, save_checkpoint

    spec = PreprocessSpec(resize=72, crop=64)
    torch.manual_seed(0)
    model = build_model(len(TINY_CLASSES)).eval()
    save_checkpoint(folder / "model.pth", model, TINY_CLASSES, spec, epochs=1)
    export_onnx(model, TINY_CLASSES, spec, opset=18, dest=folder / "model.onnx")
    calibration = [photo(folder / f"calibration_{i}.jpg", (80 + 10 * i, 90), seed=i) for i in range(4)]
    quantize_int8(folder / "model.onnx", preprocess_batch(calibration, spec), "minmax", metadata(TINY_CLASSES, spec),
                  folder / "model.int8.onnx")


# The export and evaluate stages' tests (tests/test_stage_mains.py runs their main();
# tests/test_model_export.py checks the files export writes) run them on a smaller ResNet than
# the pipeline's: ResNet50's blocks, one per stage where ResNet50 has 3, 4, 6 and 3. The exporter
# and the quantiser meet the same operators in a quarter of the nodes: exporting and quantising
# it take 8 s where ResNet50 at the same 64 px takes 19 (and under `make mutate` each of export's
# mutants runs the stage again). The stages build their network with stages.shared.model.resnet50: while
# these tests run, it builds this one.
def stage_network(weights=None):
    from torchvision.models.resnet import Bottleneck, ResNet

    return ResNet(Bottleneck, [1, 1, 1, 1])


@contextmanager
def stages_on_the_stage_network() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("stages.shared.model.resnet50", stage_network)
        yield


def build_stage_project(root: Path) -> None:
    """A project holding a split (bright training images, dark test images: calibrating on the
    wrong ones shows), an untrained 3-class stage network at 64 px as models/e1/model.pth, and
    what evaluate reads besides."""
    import torch

    from birds_onnx.preprocess import PreprocessSpec
    from stages.shared.model import build_model, save_checkpoint
    from stages.shared.paths import TRAINING_FIGURES
    from stages.shared.splits import Example, write_split

    images = root / "data/raw"
    images.mkdir(parents=True)
    train, test = [], []
    for c, label in enumerate(TINY_CLASSES):
        for i in range(4):
            path = photo(images / f"{label}_{i}.jpg", (80 + 8 * i, 72), seed=10 * c + i)
            (train if i < 3 else test).append(Example(path.relative_to(root), label))
    for e in test:  # darken the test images
        (root / e.path).write_bytes(darkened(root / e.path))
    params = tiny_params()
    params["export"]["int8"]["calibration_images"] = 6
    params["evaluate"]["formats"] = ["pth", "onnx", "onnx-int8"]
    params_file(root, params)
    write_split(root / "data/split/train.csv", train)
    write_split(root / "data/split/test.csv", test)
    torch.manual_seed(0)
    with stages_on_the_stage_network():
        model = build_model(len(TINY_CLASSES)).eval()
    save_checkpoint(root / "models/e1/model.pth", model, TINY_CLASSES, PreprocessSpec(resize=72, crop=64), epochs=1)
    (root / "metrics").mkdir()
    (root / "metrics/machine.json").write_text(json.dumps({"cpu": "test CPU", "logical_cpus": 2, "id": "test"}))
    history = root / "metrics/epochs/e1/train/plots/metrics"
    history.mkdir(parents=True)
    for figure in TRAINING_FIGURES:
        (history / f"{figure}.tsv").write_text(f"step\t{figure}\n1\t0.5\n")


def export_stage_project(stage_project: Path, root: Path) -> None:
    """Copy the stage project into `root` and run `python -m stages.export --epochs 1` there, in this process."""
    from stages import export

    copy_project(stage_project, root)
    with pytest.MonkeyPatch.context() as mp, stages_on_the_stage_network():
        mp.chdir(root)
        mp.setattr("sys.argv", ["export", "--epochs", "1"])
        export.main()


def activation_scales(path: Path) -> dict[str, float]:
    """{tensor: scale} of every quantised activation of an int8 .onnx file (one scale each; the weights' are per channel)."""
    import onnx

    model = onnx.load(str(path))
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    return {node.input[0]: float(initializers[node.input[1]]) for node in model.graph.node
            if node.op_type == "QuantizeLinear" and initializers[node.input[1]].ndim == 0}
