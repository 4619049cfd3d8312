"""Classifying many images fast: decoding and preprocessing run ahead of inference.

A pool of decoder threads prepares the next images while the model runs on the current batch.
Threads, not processes: Pillow's decoders and resampling and numpy's arithmetic release the
GIL, and a thread hands its array over without copying it between processes. Results come
back in input order, whatever order the decoders finish in.
"""

from __future__ import annotations

import itertools
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator, Union

import numpy as np

from birds_onnx.errors import BirdsOnnxError
from birds_onnx.preprocess import PreprocessSpec, preprocess

Result = Union[np.ndarray, BirdsOnnxError]  # a model input, or why the image could not be read


def _preprocess_or_error(path: Path | str, spec: PreprocessSpec) -> Result:
    try:
        return preprocess(path, spec)
    except BirdsOnnxError as e:
        return e


def preprocessed(paths: Iterable[Path | str], spec: PreprocessSpec, workers: int, ahead: int) -> Iterator[tuple[Path | str, Result]]:
    """(path, model input or error) for each path, in order. With `workers` >= 1, that many
    threads decode up to `ahead` images beyond the one being handed out; 0 decodes in the caller."""
    paths = iter(paths)
    if workers == 0:
        yield from ((p, _preprocess_or_error(p, spec)) for p in paths)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        queue = deque((p, pool.submit(_preprocess_or_error, p, spec)) for p in itertools.islice(paths, ahead + 1))
        while queue:
            path, future = queue.popleft()
            for p in itertools.islice(paths, 1):
                queue.append((p, pool.submit(_preprocess_or_error, p, spec)))
            yield path, future.result()


def classify_stream(
    classifier: Callable[[np.ndarray], np.ndarray],
    spec: PreprocessSpec,
    paths: Iterable[Path | str],
    batch_size: int = 8,
    workers: int = 2,
) -> Iterator[tuple[Path | str, Result]]:
    """(path, logits or error) for each path, in input order: `classifier` runs on batches of
    `batch_size` decoded images while `workers` threads decode the next ones. A file that cannot
    be read is yielded with its error in its place, and the stream goes on."""
    pending: list[tuple[Path | str, Result]] = []
    inputs: list[np.ndarray] = []

    def flush() -> Iterator[tuple[Path | str, Result]]:
        logits = iter(classifier(np.stack(inputs)) if inputs else ())
        for path, item in pending:
            yield path, item if isinstance(item, BirdsOnnxError) else next(logits)
        pending.clear()
        inputs.clear()

    for path, item in preprocessed(paths, spec, workers, ahead=2 * batch_size):
        pending.append((path, item))
        if not isinstance(item, BirdsOnnxError):
            inputs.append(item)
            if len(inputs) == batch_size:
                yield from flush()
    yield from flush()
