"""Errors of the pipeline's stages, and how a stage ends on one."""

from __future__ import annotations

import sys
from typing import Callable

from birds_onnx.errors import BirdsOnnxError


class PipelineError(BirdsOnnxError):
    """Bad input or environment of a stage (a param, a file, a class with too few images)."""


def run_stage(main: Callable[[], object]) -> None:
    """Run a stage's main: a BirdsOnnxError (a PipelineError, or a model or image the runtime
    rejected) ends it with its message and exit status 1, without a traceback. Anything else is
    a bug, and keeps its traceback."""
    try:
        main()
    except BirdsOnnxError as e:
        sys.exit(f"error: {e}")
