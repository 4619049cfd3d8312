"""The train stage with what each training step saw written down, to check what it computes
against what it logs: which images each epoch served (epoch, index), and for each step the
labels, the logits and loss it returned, the learning rate it ran at, whether the model was in
training mode, the weights (batch norm statistics included) as each epoch began, and each
reading of the stage's clock.

In a test's process: `Recording().install(monkeypatch)`, then train.main(). As a rank of
`distributed.launch(2, 1, "helpers.recorded_training", ["--epochs", "2"])` (tests/ and the checkout
on PYTHONPATH, RECORD_TO naming a folder): runs the stage on the small stage network of
helpers/models.py and writes RECORD_TO/rank<r>.pt.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from pathlib import Path

import torch


def torch_settings() -> dict:
    """What the train stage sets for torch process-wide: threads and deterministic kernels."""
    return {"threads": torch.get_num_threads(), "deterministic": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory}


class Recording:
    def __init__(self):
        self.served: list[tuple[int, int]] = []  # (epoch, index) of every item the data set gave, in order
        self.steps: list[dict] = []
        self.weights_at_epoch_start: dict[int, dict[str, torch.Tensor]] = {}
        self.clock: list[float] = []  # every reading the stage took of its clock (time.perf_counter), in order

    def install(self, patch) -> None:
        """`patch`: pytest's monkeypatch (or its MonkeyPatch.context())."""
        from stages import train
        from stages.shared.train_data import TrainingImages

        get_item, train_step = TrainingImages.__getitem__, train.train_step

        def recorded_get_item(data, key):
            self.served.append(tuple(key))
            return get_item(data, key)

        def recorded_train_step(forward, optimizer, x, y, bf16):
            model = forward.module if isinstance(forward, torch.nn.parallel.DistributedDataParallel) else forward
            epoch = self.served[-1][0]
            if epoch not in self.weights_at_epoch_start:
                self.weights_at_epoch_start[epoch] = copy.deepcopy(model.state_dict())
            modes = {m.training for m in model.modules()}
            lr = optimizer.param_groups[0]["lr"]
            loss, logits = train_step(forward, optimizer, x, y, bf16)
            self.steps.append({"epoch": epoch, "labels": y.clone(), "logits": logits.clone(), "loss": loss.item(),
                               "lr": lr, "training": modes == {True}, "bf16": bf16, "torch": torch_settings(),
                               "channels_last": (x.is_contiguous(memory_format=torch.channels_last),
                                                 model.conv1.weight.is_contiguous(memory_format=torch.channels_last))})
            return loss, logits

        recording = self

        class RecordedClock:
            """The time module, its perf_counter's readings written down."""

            def perf_counter(self) -> float:
                recording.clock.append(time.perf_counter())
                return recording.clock[-1]

            def __getattr__(self, name: str):
                return getattr(time, name)

        patch.setattr(TrainingImages, "__getitem__", recorded_get_item)
        patch.setattr(train, "train_step", recorded_train_step)
        patch.setattr(train, "time", RecordedClock())

    def as_dict(self) -> dict:
        return {"served": self.served, "steps": self.steps, "weights_at_epoch_start": self.weights_at_epoch_start,
                "clock": self.clock}


def main() -> None:
    import pytest

    from helpers.models import stages_on_the_stage_network
    from stages import train

    recording = Recording()
    with pytest.MonkeyPatch.context() as patch, stages_on_the_stage_network():
        recording.install(patch)
        train.main()
    torch.save(recording.as_dict(), Path(os.environ["RECORD_TO"]) / f"rank{os.environ['RANK']}.pt")


if __name__ == "__main__":
    sys.argv[0] = "stages.train"
    main()
