"""Draws from an explicit ``torch.Generator`` (CPU), as float64 / int64 tensors of ``n`` values.

Kept in one place so every pipeline draws the same way and a seed fixes everything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def uniform(g: torch.Generator, lo: float, hi: float, n: int) -> torch.Tensor:
    """``n`` values uniform in ``[lo, hi)``."""
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def log_uniform(g: torch.Generator, lo: float, hi: float, n: int) -> torch.Tensor:
    """``n`` values whose logarithm is uniform in ``[log lo, log hi)``."""
    return torch.exp(uniform(g, math.log(lo), math.log(hi), n))


def randint(g: torch.Generator, lo: int, hi: int, n: int) -> torch.Tensor:
    """``n`` integers in ``[lo, hi]`` (both inclusive)."""
    return torch.randint(int(lo), int(hi) + 1, (n,), generator=g)


def bernoulli(g: torch.Generator, p: float, n: int) -> torch.Tensor:
    """``n`` booleans, each true with probability ``p``."""
    return torch.rand(n, generator=g, dtype=torch.float64) < p


def choice(g: torch.Generator, probs: Sequence[float], n: int) -> torch.Tensor:
    """``n`` indices into ``probs`` drawn with those (unnormalised) probabilities."""
    p = torch.as_tensor(probs, dtype=torch.float64)
    return torch.multinomial(p / p.sum(), n, replacement=True, generator=g)


def odd_size(g: torch.Generator, lo: int, hi: int, n: int) -> torch.Tensor:
    """``n`` odd kernel sizes uniform over ``lo, lo + 2, ..., hi`` (``lo``, ``hi`` odd)."""
    return lo + 2 * randint(g, 0, (hi - lo) // 2, n)


def permutation(g: torch.Generator, n: int) -> list[int]:
    return torch.randperm(n, generator=g).tolist()
