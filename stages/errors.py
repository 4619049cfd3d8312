"""Errors that explain themselves, and how a stage ends on one."""

from __future__ import annotations

import sys
from typing import Callable


class PipelineError(Exception):
    """Bad input or environment (a param, a file, a class with too few images); the message
    names the problem and what to do about it."""


def run_stage(main: Callable[[], object]) -> None:
    """Run a stage's main: a PipelineError ends it with its message and exit status 1, without
    a traceback. Anything else is a bug, and keeps its traceback."""
    try:
        main()
    except PipelineError as e:
        sys.exit(f"error: {e}")
