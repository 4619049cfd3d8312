"""Data-parallel training with torch.distributed: launching the processes with torchrun's own
launcher, and joining them from inside each one.

The train stage's command stays `python -m stages.train --epochs N`: with train.processes > 1
it starts torchrun's launcher (torch.distributed.run) on one host, which runs N copies of the
same command, each told its rank by the environment (RANK, WORLD_SIZE, ...). A copy started by
torchrun, whether by this launcher or by a user's own `torchrun --nnodes ...`, trains.
"""

from __future__ import annotations

import logging
import os

import torch
import torch.distributed as dist

from stages.shared.errors import PipelineError


class RankFailed(PipelineError):
    """One of the training processes ended in an error or was killed."""


def started_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def launch(processes: int, threads: int, module: str, args: list[str]) -> None:
    """Run `python -m module args` as `processes` ranks on this host and wait for them.

    torchrun's --standalone rendezvous (a free port on localhost), so parallel runs (DVC's
    experiment queue) do not collide. When one rank fails torchrun stops the others; this ends
    with one line naming the rank (the rank's own error line, if it printed one, is above)."""
    # torchrun would set OMP_NUM_THREADS=1 with a warning; each rank sets train.threads itself
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    # torchrun's own log lines (which process it stops, which failed, with what binary) say less
    # than the one line below, and its error report is a page with the launcher's traceback
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    config = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={processes}", "--module", module, *args]
    )
    try:
        run(config)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        how = f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else f"exited with status {failure.exitcode}"
        raise RankFailed(f"training process rank {rank} of {processes} {how}; the other ranks were stopped and no model was written") from None


def join(device: torch.device) -> tuple[int, int, torch.device]:
    """Join the ranks started by torchrun: returns this process's rank, the number of ranks and
    its device (on CUDA, the GPU of its local rank). gloo on the CPU, NCCL on CUDA."""
    if device.type != "cpu":  # pragma: no mutate block (CUDA only: no machine the tests run on has a GPU)
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl", device_id=device)
    else:
        dist.init_process_group(backend="gloo")
    return dist.get_rank(), dist.get_world_size(), device


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """`values` summed over every rank (itself when training in one process)."""
    if dist.is_initialized():
        dist.all_reduce(values)
    return values
