"""What the train stage checks before it launches torchrun's processes on this host."""

import pytest
import torch

from stages.shared.params import ParamError
from stages.train import check_gpus_for_processes


def test_more_processes_than_gpus_stops_before_any_starts_naming_both_numbers():
    with pytest.raises(ParamError) as error:
        check_gpus_for_processes(2, torch.device("cuda"), gpus=1)
    assert str(error.value) == ("train.processes is 2 but this host has 1 GPU: on CUDA each process needs a GPU of "
                                "its own; set train.processes to at most 1, or train.device to cpu")
    check_gpus_for_processes(2, torch.device("cuda"), gpus=2)  # one GPU each
    check_gpus_for_processes(4, torch.device("cpu"), gpus=0)  # on the CPU, processes share the cores
