"""The standalone predictor: classify photos with an exported .onnx model.

    python -m stages.predict models/e50/model.int8.onnx photo.jpg [more.jpg ...] [--top 3]

    photo.jpg: crow 0.912, gull 0.051, myna 0.020

Needs only onnxruntime, numpy and Pillow: copy the model file and stages/__init__.py, errors.py,
onnx_model.py, preprocess.py and predict.py to the device (a Raspberry Pi, say). Class names
and preprocessing are read from the model's metadata, so nothing else has to travel with it.
Exit status: 0 all classified, 1 some image could not be read, 2 the model could not be used.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from stages.onnx_model import ModelError, OnnxClassifier, softmax
from stages.preprocess import ImageError, preprocess


def top_classes(probabilities: np.ndarray, classes: list[str], k: int) -> list[tuple[str, float]]:
    """The `k` most probable classes, most probable first."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(classes[i], float(probabilities[i])) for i in order]


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stages.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="an .onnx file written by the export stage")
    parser.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--top", type=positive_int, default=3, help="how many classes to print per image")
    parser.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    try:
        classifier = OnnxClassifier(args.model, args.threads)
    except ModelError as e:
        print(f"predict: {e}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.images:
        try:
            image = preprocess(path, classifier.spec)
        except ImageError as e:  # report it and go on with the other images
            print(f"predict: {e}", file=sys.stderr)
            failed += 1
            continue
        probabilities = softmax(classifier(image[None]))[0]
        top = top_classes(probabilities, classifier.classes, args.top)
        print(f"{path}: " + ", ".join(f"{name} {p:.3f}" for name, p in top), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
