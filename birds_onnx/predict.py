"""birds-predict: classify photos with a model exported by the birds-onnx pipeline.

    birds-predict models/e50/model.int8.onnx photos/ more/*.jpg one.png [--top 3] [--format csv]

Inputs are image files, folders (searched recursively for image files) and glob patterns.
Decoder threads prepare the next images while ONNX Runtime classifies a batch, so a folder goes
through at nearly the model's batch speed; `--batch-size 1 --workers 0` classifies one image at
a time, the lowest latency for a single image. Class names and preprocessing come from the
model's metadata: the .onnx file is all that travels with this package.

`--provider` picks ONNX Runtime's execution providers, in order, the CPU's always last as the
fallback: `auto` (default) takes a GPU's or the system's accelerator where the installed
onnxruntime build has one (onnxruntime-gpu: CUDA), else the CPU; `--provider cuda,cpu` names them.

`--runtime openvino` runs the same .onnx file with OpenVINO instead of ONNX Runtime (in bf16 on
a CPU that computes bf16 natively); it needs the optional extra: pip install 'birds-onnx[openvino]'.
`--runtime auto` runs what the pipeline's report recommends deploying on the machine that timed
it (metrics/deploy.json of the project MODEL is in): MODEL is then a setting's folder
(`birds-predict --runtime auto models/e50 photos/`) or the recommended file.

Output: a table (default), or one CSV row / JSON line per image for machines, in input order.
A file that cannot be read is one line on stderr and the run goes on.
Exit status: 0 all classified, 1 some images could not be read (or the reader of the output
went away, as `| head` does), 2 unusable model, runtime not installed, or no input.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Iterable, Sequence, TextIO

import numpy as np
from PIL import Image

from birds_onnx.deploy import recommended
from birds_onnx.errors import BirdsOnnxError
from birds_onnx.onnx_model import OnnxClassifier, softmax
from birds_onnx.stream import classify_stream

PROG = "birds-predict"
FORMATS = ("table", "csv", "jsonl")
RUNTIMES = ("onnxruntime", "openvino", "auto")


class InputError(BirdsOnnxError):
    """A command-line input that names no image."""


def top_classes(probabilities: np.ndarray, classes: list[str], k: int) -> list[tuple[str, float]]:
    """The `k` most probable classes, most probable first."""
    order = np.argsort(-probabilities,
                       kind="stable",  # pragma: no mutate: numpy reads sort kinds in any case
    )[:k]
    return [(classes[i], float(probabilities[i])) for i in order]


def image_extensions() -> set[str]:
    """Every file extension Pillow can open (.jpg, .png, .webp, ...), lower case."""
    return {ext.lower() for ext in Image.registered_extensions()}


def expand_inputs(inputs: Iterable[str]) -> tuple[list[Path], list[InputError]]:
    """Files as given (a missing one is reported when it is read), folders searched recursively
    for files with an image extension, glob patterns expanded (`**` included); each sorted.
    Returns the images and one error per input that names none."""
    extensions, images, errors = image_extensions(), [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.suffix.lower() in extensions and p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                errors.append(InputError(f"{item}: no image files in this folder"))
        elif not path.exists() and glob.has_magic(item):
            found = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not found:
                errors.append(InputError(f"{item}: no file matches this pattern"))
        else:
            found = [path]
        images += found
    return images, errors


class Progress:
    """`done/total images, img/s` on one line of stderr, redrawn a few times a second; silent
    when stderr is not a terminal (a file, a pipe, CI)."""

    def __init__(self, total: int, enabled: bool | None = None, stream: TextIO | None = None, on: str | None = None):
        self.total, self.stream, self.done = total, stream or sys.stderr, 0
        self.on = f" on {on}" if on else ""  # what runs the model: ONNX Runtime's execution provider
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.started = self.shown = time.perf_counter()

    def advance(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if self.enabled and (now - self.shown > 0.2 or self.done == self.total):
            self.shown = now
            rate = self.done / max(now - self.started, 1e-9)
            self.stream.write(f"\r{self.done}/{self.total} images, {rate:.1f} img/s{self.on}")
            self.stream.flush()

    def say(self, text: str) -> None:
        """A line of its own on stderr, above the progress line."""
        self.stream.write(f"\r\033[K{text}\n" if self.enabled else f"{text}\n")

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\n")


class Writer:
    """Writes one image's top classes per call in the chosen format."""

    def __init__(self, fmt: str, out: TextIO, top: int, path_width: int, name_width: int):
        self.fmt, self.out, self.top = fmt, out, top
        self.path_width, self.cell_width = path_width, name_width + 7  # "name 0.123"
        if fmt == "csv":
            self.csv = csv.writer(out, lineterminator="\n")
            self.csv.writerow(["path"] + [f"{key}_{k}" for k in range(1, top + 1) for key in ("class", "probability")])
        elif fmt == "table":
            ranks = "".join(f"{f'top {k}':<{self.cell_width}}  " for k in range(1, top + 1))
            out.write(f"{'image':<{path_width}}  {ranks}".rstrip() + "\n")

    def write(self, path: Path, ranked: list[tuple[str, float]]) -> None:
        if self.fmt == "csv":
            self.csv.writerow([str(path)] + [v for name, p in ranked for v in (name, f"{p:.6f}")])
        elif self.fmt == "jsonl":
            top = [{"class": name, "probability": round(p, 6)} for name, p in ranked]
            self.out.write(json.dumps({"path": str(path), "top": top},
                                      ensure_ascii=False,  # pragma: no mutate: json.dumps tests ensure_ascii for truth: None is False
            ) + "\n")
        else:
            cells = "".join(f"{f'{name} {p:.3f}':<{self.cell_width}}  " for name, p in ranked)
            self.out.write(f"{str(path):<{self.path_width}}  {cells}".rstrip() + "\n")


def count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}")
    return int(text)


def positive(text: str) -> int:
    if count(text) < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="an .onnx file written by the pipeline's export stage")
    parser.add_argument("inputs", nargs="+", help="image files, folders (recursive) or glob patterns ('photos/**/*.jpg')")
    parser.add_argument("--top", type=positive, default=3, help="how many classes to show per image (default 3)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="table (default), csv or jsonl")
    parser.add_argument("--batch-size", type=positive, default=8, help="images per inference call (default 8)")
    parser.add_argument("--workers", type=count, default=os.cpu_count() or 1,
                        help="decoder threads running ahead of inference; 0 decodes in line (default: CPU count)")
    parser.add_argument("--threads", type=positive, default=os.cpu_count() or 1, help="inference threads (default: CPU count)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime",
                        help="onnxruntime (default), openvino (optional extra: pip install 'birds-onnx[openvino]'), "
                             "or auto: the format the pipeline's report recommends for this machine (metrics/deploy.json)")
    parser.add_argument("--provider", type=lambda text: text.split(","), default=["auto"], metavar="NAME[,NAME...]",
                        help="ONNX Runtime's execution providers in order, by name (CUDAExecutionProvider) or short name "
                             "(cuda); auto (default): the first accelerator this onnxruntime has; the CPU's is always added last")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,  # pragma: no mutate: None is a BooleanOptionalAction's default (the whole call: a dropped argument is a mutant of the call's first line)
                        help="progress on stderr (default: only when stderr is a terminal)")
    return parser.parse_args(argv)


def load_model(runtime: str, path: str, threads: int, providers: Sequence[str] = ("auto",)):
    if runtime == "openvino":
        from birds_onnx.openvino_model import OpenVinoClassifier  # optional: imported only when asked for

        return OpenVinoClassifier(path, threads)
    return OnnxClassifier(path, threads, providers)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", module=r"PIL\.")  # odd EXIF and the like: the image is still classified
    try:
        model, runtime = recommended(args.model) if args.runtime == "auto" else (args.model, args.runtime)
        classifier = load_model(runtime, model, args.threads, args.provider)
    except BirdsOnnxError as e:  # an unusable model, a provider or OpenVINO asked for and not installed
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    images, failures = expand_inputs(args.inputs)
    for error in failures:
        print(f"{PROG}: {error}", file=sys.stderr)
    if not images:
        print(f"{PROG}: nothing to classify", file=sys.stderr)
        return 2

    top = min(args.top, len(classifier.classes))
    writer = Writer(args.format, sys.stdout, top, max(len(str(p)) for p in images), max(map(len, classifier.classes)))
    progress = Progress(len(images), enabled=args.progress, on=getattr(classifier, "provider", None))
    unreadable = 0
    for path, result in classify_stream(classifier, classifier.spec, images, args.batch_size, args.workers):
        progress.advance()
        if isinstance(result, BirdsOnnxError):
            progress.say(f"{PROG}: {result}")
            unreadable += 1
            continue
        writer.write(path, top_classes(softmax(result), classifier.classes, top))
        sys.stdout.flush()
    progress.close()
    if unreadable or failures:
        print(f"{PROG}: {unreadable} of {len(images)} images could not be read"
              + (f", {len(failures)} inputs named no image" if failures else ""), file=sys.stderr)
        return 1
    return 0


def cli() -> None:
    """The `birds-predict` command: main(), ending quietly when the reader of its output goes
    away (`birds-predict ... | head -3`) with exit status 1, as the Python docs advise for
    SIGPIPE, instead of a BrokenPipeError traceback."""
    try:
        status = main()
        sys.stdout.flush()  # here, where the error is caught, not at exit
    except BrokenPipeError:
        # Python flushes stdout once more as it exits: point it at devnull, or that flush fails too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 1
    sys.exit(status)


if __name__ == "__main__":
    cli()
