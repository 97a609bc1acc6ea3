"""The batches of one epoch: a seeded shuffle of the training items (the same on every process and on
resumption), each process's share of a global batch under ``torchrun`` (:class:`ShardedBatches`), and
the loader around them."""

from __future__ import annotations

import os

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from .. import distributed
from ..errors import LiverwildError
from .data import TrainingSet


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The random stream of one epoch's shuffle (the same for a resumed run)."""
    return torch.Generator().manual_seed(seed * 100003 + epoch)


def shuffled_batches(
    items: TrainingSet, size: int, steps: int | None, generator: torch.Generator, keep_last: bool = False
) -> BatchSampler:
    """Global batches of ``size`` item indices: ``steps`` batches drawn at random (with replacement when
    they need more items than there are), or one shuffled pass (``steps`` None; a smaller last batch is
    kept only with ``keep_last``)."""
    if steps:
        n = steps * size
        sampler = RandomSampler(items, replacement=n > len(items), num_samples=n, generator=generator)
        return BatchSampler(sampler, size, drop_last=True)
    return BatchSampler(RandomSampler(items, generator=generator), size, drop_last=not keep_last)


class ShardedBatches:
    """This process's share of every global batch: the ``rank``-th of ``world_size`` equal contiguous
    slices (the global batches come from one seeded sampler, the same on every rank)."""

    def __init__(self, batches, context: distributed.DistributedContext):
        self.batches, self.context = batches, context

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        world, rank = self.context.world_size, self.context.rank
        for batch in self.batches:
            if len(batch) % world:
                raise LiverwildError(f"a global batch of {len(batch)} items does not split over {world} processes")
            size = len(batch) // world
            yield batch[rank * size : (rank + 1) * size]


def epoch_loader(
    items: TrainingSet, batches, context: distributed.DistributedContext, device: torch.device, workers: int | None
) -> DataLoader:
    """The loader of one epoch's ``batches`` (this process's share under torchrun); ``workers`` None: none
    on CPU, up to 8 loader processes on GPU."""
    if context.enabled:
        batches = ShardedBatches(batches, context)
    if workers is None:
        workers = 0 if device.type == "cpu" else min(8, max(1, (os.cpu_count() or 2) - 1))
    return DataLoader(
        items,
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
