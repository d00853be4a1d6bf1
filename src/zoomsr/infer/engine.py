"""Run a SISR model on an image: channels, precision, self-ensemble and memory-bounded tiling."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from zoomsr.errors import ZoomsrError
from zoomsr.infer.ensemble import self_ensemble
from zoomsr.ops.color import to_gray, to_rgb
from zoomsr.ops.tiles import blend_window, plan_tiles


@dataclass
class InferOptions:
    tile: int | None = None  # LR tile side; None: from the memory budget; 0: never tile
    overlap: int = 16  # LR pixels shared by neighbouring tiles
    ensemble: bool = False  # x8 geometric self-ensemble
    half: bool = False  # float16 on CUDA
    max_memory: int = 2 << 30  # activation budget in bytes for the automatic tile size


def parse_memory(text: str) -> int:
    """'4GB', '512MB', '2G', '1.5GiB' -> bytes."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(float(t))
    except ValueError:
        raise ZoomsrError(f"cannot read memory size '{text}' (write e.g. 4GB or 512MB)") from None


def model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def activation_bytes_per_pixel(
    model: nn.Module, channels: int = 3, probe: int = 32, run: Callable | None = None
) -> float:
    """Peak activation bytes per input pixel, estimated from one small forward pass.

    The largest tensor any module produces (the first, for modules returning tuples), times 3
    (its input, its output and a skip connection alive at once), per input pixel. ``run(x)``
    replaces ``model(x)`` for models whose pass is not their forward (flows).
    """
    largest = 0

    def hook(_m, _i, out):
        nonlocal largest
        out = out[0] if isinstance(out, tuple) and out else out
        if isinstance(out, torch.Tensor):
            largest = max(largest, out.numel() * out.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        x = torch.rand(1, channels, probe, probe, device=model_device(model))
        (run or model)(x)
    finally:
        for h in handles:
            h.remove()
    return 3 * largest / (probe * probe)


def tile_for_budget(per_pixel: float, budget: int) -> int:
    """The tile side whose activations fit ``budget`` bytes (a multiple of 8 in [64, 2048])."""
    side = int(math.sqrt(budget / max(per_pixel, 1.0)))
    return max(64, min(2048, side // 8 * 8))


def auto_tile(model: nn.Module, budget: int, ensemble: bool) -> int:
    return tile_for_budget(activation_bytes_per_pixel(model) * (2 if ensemble else 1), budget)


def _forward(model: nn.Module, x: torch.Tensor, opts: InferOptions) -> torch.Tensor:
    return self_ensemble(model, x) if opts.ensemble else model(x)


def blend_tiles(
    shape: tuple[int, int, int, int],
    tile: int,
    overlap: int,
    scale: int,
    run: Callable[[int, int, int, int], torch.Tensor],
    progress: Callable,
) -> torch.Tensor:
    """Tiled inference over an ``(n, c, h, w)`` grid: ``run(top, left, height, width)`` gives
    a tile's output (``scale`` pixels a cell); the outputs blend into a host buffer with smooth
    windows over the ``overlap``."""
    n, c, h, w = shape
    out = torch.zeros(n, c, h * scale, w * scale)
    weight = torch.zeros(1, 1, h * scale, w * scale)
    for t in progress(plan_tiles(h, w, tile, overlap), "tiles"):
        y = run(t.top, t.left, t.height, t.width).float().cpu()
        win = blend_window(t, h, w, overlap, scale)
        rows = slice(t.top * scale, (t.top + t.height) * scale)
        cols = slice(t.left * scale, (t.left + t.width) * scale)
        out[..., rows, cols] += y * win
        weight[..., rows, cols] += win
    return out / weight


def _run_tiled(
    model: nn.Module,
    lr: torch.Tensor,
    opts: InferOptions,
    tile: int,
    progress: Callable,
) -> torch.Tensor:
    """Tiles stream from host memory to the device; outputs blend into a host buffer."""
    device = model_device(model)
    dtype = torch.float16 if opts.half and device.type == "cuda" else torch.float32

    def run(top, left, th, tw):
        return _forward(model, lr[..., top : top + th, left : left + tw].to(device, dtype), opts)

    return blend_tiles(lr.shape, tile, opts.overlap, model.scale, run, progress)


@torch.no_grad()
def run_sisr(
    model: nn.Module,
    lr: torch.Tensor,
    bit_depth: int = 8,
    opts: InferOptions | None = None,
    progress: Callable = lambda it, _desc: it,
) -> torch.Tensor:
    """Super-resolve ``(N, C, h, w)`` in [0, 1]; returns ``(N, C, s*h, s*w)`` in [0, 1] on the CPU.

    A gray input to a model that needs RGB is replicated and its output turned back to gray.
    """
    opts = opts or InferOptions(tile=0)
    if hasattr(model, "levels"):
        # Interpolation baselines reproduce MATLAB on integer images at the file's bit depth.
        model.levels = 2**bit_depth - 1
    gray_in = lr.shape[1] == 1 and getattr(model, "in_channels", None) == 3
    x = to_rgb(lr) if gray_in else lr
    tile = opts.tile if opts.tile is not None else auto_tile(model, opts.max_memory, opts.ensemble)
    if tile and max(x.shape[-2:]) > tile:
        y = _run_tiled(model, x, opts, tile, progress)
    else:
        device = model_device(model)
        dtype = torch.float16 if opts.half and device.type == "cuda" else torch.float32
        y = _forward(model, x.to(device, dtype), opts).float().cpu()
    if gray_in:
        y = to_gray(y)
    return y.clamp(0, 1)
