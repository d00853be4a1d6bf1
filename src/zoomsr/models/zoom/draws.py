"""Per-sample random draws of training (AdaSTN P = 0 dropout, Ref pastes) that do not depend on
how a batch is split over data-parallel processes."""

from __future__ import annotations

import torch


class BatchDraws:
    """One process's share of a global batch's draws from the run's stream ``generator``.

    Every process draws the values of the whole global batch (``world`` x its own ``n``) and
    keeps those of its samples, which sit at global batch positions ``rank, rank + world, ...``.
    So each sample gets the value a single process would give it, and the stream advances the
    same in every process and for every world size (a resumed run may change it).
    """

    def __init__(self, generator: torch.Generator, rank: int = 0, world: int = 1):
        self.generator, self.rank, self.world = generator, rank, world

    def rand(self, n: int) -> torch.Tensor:
        return torch.rand(n * self.world, generator=self.generator)[self.rank :: self.world]


def batch_rand(n: int, generator: torch.Generator | BatchDraws | None) -> torch.Tensor:
    """``n`` uniform values in [0, 1), one per sample of the batch (on the CPU)."""
    if isinstance(generator, BatchDraws):
        return generator.rand(n)
    return torch.rand(n, generator=generator)
