"""What this CPU is and computes natively, read once from /proc/cpuinfo: one answer for the train
stage (train.precision: auto) and the machine stage (metrics/machine.json), so they cannot disagree."""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = {"avx512_bf16", "amx_bf16"}  # AVX512-BF16 or AMX: bf16 computed natively, so faster than fp32


def cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and feature flags, from /proc/cpuinfo where there is one."""
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine(), set()
    fields = dict(
        (key.strip(), value.strip()) for key, _, value in (line.partition(":") for line in text.splitlines()) if value
    )
    return fields.get("model name") or platform.processor() or platform.machine(), set(fields.get("flags", "").split())


def cpu_has_bf16() -> bool:
    return bool(cpu_info()[1] & BF16_FLAGS)
