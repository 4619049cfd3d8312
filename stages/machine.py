"""machine stage: which machine the timings of this workspace come from.

    python -m stages.machine  ->  metrics/machine.json

evaluate depends on this file, so its timings belong to the machine that ran it. `make repro`
forces this stage first (`dvc repro --force --single-item machine`): on another machine the
file changes and evaluate measures again; on the same machine it is byte-identical, nothing
downstream runs and a second `dvc repro` stays up to date. A plain `dvc repro` in a fresh clone
keeps the committed file, and with it the committed timings (the report names their machine).

The id tells two machines with the same CPU model apart (two VMs of one kind can differ 2x in
speed); it is a short hash, so the committed file does not carry host names.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

from stages.shared.atomic import write_json
from stages.shared.errors import run_stage
from stages.shared.cpu import cpu_has_bf16, cpu_info
from stages.shared.paths import MACHINE_FILE


def machine_id() -> str:
    """12 hex digits from the host name and the OS's machine id: stable on one machine, different
    on the next one (a CI runner is a new machine every time)."""
    try:
        os_id = Path("/etc/machine-id").read_text(encoding="utf-8").strip()
    except OSError:
        os_id = ""
    return hashlib.sha256(f"{platform.node()}|{os_id}".encode()).hexdigest()[:12]


def describe() -> dict:
    cpu, _ = cpu_info()
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.machine()}",
        # what train.precision: auto picks on this CPU (stages/train.py uses bf16 where it is native)
        "bf16_native": cpu_has_bf16(),
        "id": machine_id(),
    }


def main() -> None:
    write_json(MACHINE_FILE, describe())
    print(f"machine: {MACHINE_FILE}: {describe()}")


if __name__ == "__main__":
    run_stage(main)
