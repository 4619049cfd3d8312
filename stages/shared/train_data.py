"""The training images as torch's data pipeline: a Dataset, the batches of each epoch for each
process, and a DataLoader whose worker processes decode and augment while the model trains.

Every random choice is a function of (params.seed, epoch, image index): the order of an epoch
comes from (seed, epoch), the crop and flip of an image from (seed, epoch, index). So a batch
does not depend on which worker process made it, on how many there are, or on whether the
pictures were decoded once into memory or are read from disk at every step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms import v2

from birds_onnx.preprocess import PreprocessSpec, load_rgb, resized_size, scale_offset

# the first word of a derived seed says what it is for, so that two uses never share one
_ORDER, _AUGMENT = 0, 1


def derive_seed(*words: int) -> int:
    """A well-mixed 64-bit seed from non-negative integers (numpy's SeedSequence)."""
    state = np.random.SeedSequence(words).generate_state(
        1, np.uint64,  # pragma: no mutate: the first word of the state is the same however many words are asked for
    )
    return int(state[0])


def decoded_bytes(paths: list[Path], shorter_side: int) -> int:
    """Memory that the pictures take decoded (RGB, shorter side resized), from their headers
    alone: Pillow reads the size without decoding the pixels."""
    total = 0
    for path in paths:
        with Image.open(path) as img:
            w, h = resized_size(img.size, shorter_side)
        total += 3 * w * h
    return total


def cache_in_memory(mode: str | bool, paths: list[Path], shorter_side: int, budget_mb: int) -> bool:
    """train.cache_images: true, false, or auto = decoded once into memory if the decoded set
    fits `budget_mb`, read from disk at every step otherwise."""
    if mode == "auto":
        return decoded_bytes(paths, shorter_side) <= budget_mb * 2**20
    return bool(mode)


class TrainingImages(Dataset):
    """The training pictures, augmented as the article's recipe does (random resized crop,
    horizontal flip) on uint8 tensors. An item is keyed by (epoch, index): its crop and flip
    are drawn from a seed derived from (seed, epoch, index), never from a worker's state."""

    def __init__(self, paths: list[Path], labels: list[int], spec: PreprocessSpec, min_crop_scale: float,
                 seed: int, in_memory: bool):
        self.paths = list(paths)
        self.labels = list(labels)
        self.spec = spec
        self.seed = seed
        self.augment = v2.Compose([v2.RandomResizedCrop(spec.crop, scale=(min_crop_scale, 1.0), antialias=True),
                                   v2.RandomHorizontalFlip()])
        self.images = [self.decode(i) for i in range(len(self.paths))] if in_memory else None

    def decode(self, index: int) -> torch.Tensor:
        """The picture as uint8 CHW, its shorter side resized to preprocess.resize."""
        return v2.functional.pil_to_tensor(load_rgb(self.paths[index], self.spec.resize))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, index = key
        picture = self.images[index] if self.images is not None else self.decode(index)
        # torchvision's transforms draw from torch's global RNG: run them under this item's own
        # seed, and leave the caller's RNG as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(_AUGMENT, self.seed, epoch, index))
            return self.augment(picture), self.labels[index]


class EpochBatches(Sampler):
    """The batches of one process for the current epoch (set `epoch` before iterating).

    Each step takes the next `batch_size` images of a permutation drawn from (seed, epoch); with
    several processes, rank r takes the r-th slice of it. So the processes together see the same
    batches as one process would, and the last incomplete batch is dropped."""

    def __init__(self, num_images: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not a multiple of {world_size} processes")
        self.num_images, self.batch_size, self.seed = num_images, batch_size, seed
        self.rank, self.per_rank = rank, batch_size // world_size
        self.epoch = 1

    def __len__(self) -> int:
        return self.num_images // self.batch_size

    def __iter__(self):
        order = torch.randperm(self.num_images, generator=torch.Generator().manual_seed(derive_seed(_ORDER, self.seed, self.epoch)))
        for step in range(len(self)):
            start = step * self.batch_size + self.rank * self.per_rank
            yield [(self.epoch, int(i)) for i in order[start : start + self.per_rank]]


def make_loader(data: TrainingImages, batches: EpochBatches, workers: int, pin_memory: bool = False) -> DataLoader:
    """uint8 batches and their labels; with `workers` > 0, that many processes prepare the next
    batches while the model trains on this one (they stay up between epochs)."""
    return DataLoader(data, batch_sampler=batches, num_workers=workers, pin_memory=pin_memory,
                      persistent_workers=workers > 0,  # pragma: no mutate: workers kept between epochs or started again: the same batches (each a function of seed, epoch and index), speed only
    )


class Normalize:
    """uint8 batches -> the model's float input in channels_last layout, with the arithmetic of
    birds_onnx.preprocess.normalize (x * scale + offset, float32), on the whole batch."""

    def __init__(self, spec: PreprocessSpec, device: torch.device):
        scale, offset = scale_offset(spec)
        self.scale = torch.from_numpy(scale).view(1, 3, 1, 1).to(device)
        self.offset = torch.from_numpy(offset).view(1, 3, 1, 1).to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.scale.device,
                 non_blocking=True,  # pragma: no mutate: an asynchronous copy matters on a GPU only: on the CPU the same values
        )
        x = x.contiguous(memory_format=torch.channels_last)
        return x.float().mul_(self.scale).add_(self.offset)
