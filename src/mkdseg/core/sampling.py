"""Deterministic sampling for exact resume.

``IterationSampler`` is the training DataLoader's ``batch_sampler``. For each iteration ``t`` it
yields ``batch_size`` tuples ``(index, aug_seed)``, a pure function of
``(seed, t, rank, world_size)``; the training datasets (``data.py``) draw all their randomness
from ``aug_seed``. So a run resumed at iteration ``k`` sees exactly the batches an
uninterrupted run sees. Give the labeled and unlabeled loaders different seeds, or their orders
and geometries correlate.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

SampleRef = tuple[int, int]  # (dataset index, augmentation seed)


class IterationSampler(Sampler[list[SampleRef]]):
    """Batch sampler over iterations with seeded epoch-wise permutations.

    The global sample position of (iteration t, rank r, slot s) is
    ``p = (t * world_size + r) * batch_size + s``; its epoch is ``p // num_samples`` and its
    index is ``permutation(seed, epoch)[p % num_samples]``, so ranks read disjoint slices of
    each global batch and epochs never repeat a sample before all were seen.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        start_iteration: int = 0,
        total_iterations: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        _check_sampler_args(num_samples, batch_size, seed, start_iteration, rank, world_size)
        if total_iterations is not None and total_iterations < start_iteration:
            raise ValueError(
                f"total_iterations ({total_iterations}) must be >= start_iteration "
                f"({start_iteration})"
            )
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.start_iteration = start_iteration
        self.total_iterations = total_iterations
        self.rank = rank
        self.world_size = world_size
        self._epoch = -1
        self._perm = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        if self.total_iterations is None:
            raise TypeError("an IterationSampler without total_iterations is endless")
        return self.total_iterations - self.start_iteration

    def __iter__(self) -> Iterator[list[SampleRef]]:
        iteration = self.start_iteration
        while self.total_iterations is None or iteration < self.total_iterations:
            yield self.batch(iteration)
            iteration += 1

    def batch(self, iteration: int) -> list[SampleRef]:
        """The ``(index, aug_seed)`` items of this rank at ``iteration``."""
        first = (iteration * self.world_size + self.rank) * self.batch_size
        return [
            (self._index_at(first + slot), aug_seed(self.seed, iteration, self.rank, slot))
            for slot in range(self.batch_size)
        ]

    def _index_at(self, position: int) -> int:
        epoch, offset = divmod(position, self.num_samples)
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._perm = rng.permutation(self.num_samples)
            self._epoch = epoch
        return int(self._perm[offset])


def _check_sampler_args(
    num_samples: int, batch_size: int, seed: int, start_iteration: int, rank: int, world_size: int
) -> None:
    if num_samples < 1:
        raise ValueError(f"the dataset is empty (num_samples={num_samples}): check the split")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if start_iteration < 0:
        raise ValueError(f"start_iteration must be >= 0, got {start_iteration}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")


def aug_seed(seed: int, iteration: int, rank: int, slot: int) -> int:
    """A well-mixed 32-bit seed for one sample's augmentation."""
    return int(np.random.SeedSequence([seed, iteration, rank, slot]).generate_state(1)[0])
