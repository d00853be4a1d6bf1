"""Tiling plans and blending windows for memory-bounded inference.

A large input is cut into overlapping tiles; each tile's output is weighted by a window that
is 1 inside and ramps smoothly (raised cosine) to ~0 across the overlap with its neighbours,
so the blended result shows no seams. Sides on the image border are not ramped.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class Tile(NamedTuple):
    top: int
    left: int
    height: int
    width: int


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of size ``tile`` covering ``[0, length)`` with at least ``overlap`` shared."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    if stride <= 0:
        raise ValueError(f"tile {tile} must be larger than the overlap {overlap}")
    n = math.ceil((length - tile) / stride) + 1
    # Spread the tiles evenly so that every overlap is at least `overlap`.
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    rows = tile_starts(height, tile, overlap)
    cols = tile_starts(width, tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    return [Tile(r, c, th, tw) for r in rows for c in cols]


def _ramp(length: int, ramp_start: bool, ramp_end: bool, ramp: int) -> torch.Tensor:
    w = torch.ones(length, dtype=torch.float32)
    if ramp > 0:
        # Raised cosine from ~0 to 1 over `ramp` samples (never exactly 0, so every pixel counts).
        t = (torch.arange(ramp, dtype=torch.float32) + 0.5) / ramp
        up = 0.5 - 0.5 * torch.cos(math.pi * t)
        if ramp_start:
            w[:ramp] = torch.minimum(w[:ramp], up)
        if ramp_end:
            w[-ramp:] = torch.minimum(w[-ramp:], up.flip(0))
    return w


def blend_window(tile: Tile, height: int, width: int, overlap: int, scale: int) -> torch.Tensor:
    """(1, 1, s*h, s*w) weights for a tile's output; ramps only on sides shared with neighbours."""
    ramp = overlap * scale
    wy = _ramp(tile.height * scale, tile.top > 0, tile.top + tile.height < height, ramp)
    wx = _ramp(tile.width * scale, tile.left > 0, tile.left + tile.width < width, ramp)
    return (wy[:, None] * wx[None, :])[None, None]
