"""How `make test` runs the suite (a plugin: `pytest_plugins` in tests/conftest.py): the modules
in parallel (pytest-xdist: `-n auto --dist loadfile` in pyproject.toml), each module whole on one
worker, so its shared pipeline is built once; the modules holding slow tests first.

Much of a tiny pipeline is one busy core (starting torch, DVC, torch.export), so two workers
on two cores finish sooner than one. But each worker needs its own disk for the pipelines it
holds at once: where that disk is short there are fewer workers, down to one."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from helpers.mutation import mutant_under_test

DISK_PER_WORKER = 2 * 2**30


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: the hook exists where xdist is installed
def pytest_xdist_auto_num_workers(config) -> int | None:
    """`-n auto`: one worker per core this process may use, as many as the free disk allows.
    (PYTEST_XDIST_AUTO_NUM_WORKERS, if set, is left to pytest-xdist: it is the user's choice.)"""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return max(1, min(usable_cores(), temporary_disk_free(config) // DISK_PER_WORKER))


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def temporary_disk_free(config) -> int:
    """Free bytes where pytest puts temporary folders."""
    basetemp = config.option.basetemp  # --basetemp: a folder pytest creates
    return shutil.disk_usage(Path(basetemp).resolve().parent if basetemp else tempfile.gettempdir()).free


def pytest_report_header(config) -> str:
    return (f"free disk for temporary files: {temporary_disk_free(config) / 2**30:.1f} GiB "
            f"(one test worker starts per {DISK_PER_WORKER / 2**30:.0f} GiB, up to one per core)")


def pytest_collection_modifyitems(config, items) -> None:
    """The modules holding slow tests first: a long module handed to a worker last would run
    alone at the end while the other workers idle (pyproject.toml keeps xdist to this order).
    A stable sort: the order within each group is the files' (or pytest-randomly's, which
    shuffles before this hook runs). Under `make mutate`, helpers/mutation.py orders a mutant's
    tests instead."""
    if mutant_under_test():
        return
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)
