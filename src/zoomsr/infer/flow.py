"""Run a flow model (SDFlow) on image files: sampled x4 SR and sampled x1/4 real-world downscaling.

Tiling a stochastic model: each tile is a separate forward pass, so tiles that drew their own
noise would show different textures side by side and average two independent samples in their
overlap. Here the latent noise of the whole image is drawn once (one standard-normal tensor at the
latent resolution, and one mixture component per image for downscaling) and every tile gets its
slice of it. The flows are purely convolutional (no global statistics at inference), so a tiled
result equals the whole-image sample away from tile borders and blends like a CNN's output at
them. The noise costs about as much host memory as the SR output (45 floats per LR pixel for SR;
12 per 8x8 HR block for downscaling); device memory is bounded by the tile.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from zoomsr.data.sisr import item_generator
from zoomsr.errors import ZoomsrError
from zoomsr.infer.engine import (
    activation_bytes_per_pixel,
    blend_tiles,
    model_device,
    tile_for_budget,
)
from zoomsr.io import read_image, write_image
from zoomsr.ops.color import to_gray, to_rgb
from zoomsr.ops.resize import imresize

DEFAULT_TAU = 0.8  # the official scripts' temperature


@dataclass
class FlowOptions:
    tau: float = (
        DEFAULT_TAU  # sampling temperature; 0: the mode of the HF latent (deterministic SR)
    )
    samples: int = 1  # outputs per input, each from its own noise
    seed: int = 0  # sample k of every input draws from generator (seed, k)
    tile: int | None = None  # tile side (upscale: LR px, downscale: HR px); None: from max_memory
    overlap: int = 16  # pixels shared by neighbouring tiles, same unit as tile
    max_memory: int = 2 << 30  # activation budget for the automatic tile


def check_options(opts: FlowOptions) -> None:
    if not math.isfinite(opts.tau) or opts.tau < 0:
        raise ZoomsrError(f"--tau must be a number >= 0 (0: the mode), got {opts.tau}")
    if opts.samples < 1:
        raise ZoomsrError(f"--samples must be at least 1, got {opts.samples}")
    if (opts.tile is not None and opts.tile < 0) or opts.overlap < 0:
        raise ZoomsrError("--tile and --tile-overlap must be >= 0")
    if opts.tile and opts.tile <= 2 * opts.overlap:
        raise ZoomsrError(f"--tile {opts.tile} must exceed twice the overlap ({opts.overlap})")


def is_flow_model(model: nn.Module) -> bool:
    return getattr(model, "task", None) == "flow"


def _no_weights(name: str) -> ZoomsrError:
    return ZoomsrError(
        f"no trained weights for '{name}': zoomsr ships none. Train a model "
        "('zoomsr train configs/flow/sdflow_x4.yaml') or convert the official checkpoints "
        "('zoomsr convert sdflow lrencoder.pth hrnet.pth contentnet.pth degnet.pth "
        "-o sdflow.safetensors'), then pass --model FILE.safetensors"
    )


def require_trained(model: nn.Module, name: str) -> None:
    """A flow model built from the registry has random weights: refuse it with what to do."""
    if getattr(model, "weights_path", None) is None:
        raise _no_weights(name)


def check_flow_name(name: str) -> None:
    """Refuse a registry name of a flow model that has no shipped weights (``sdflow``, and the
    name ``sdflow-x4`` such weights would take) before building a 14 M-parameter random model."""
    from zoomsr.models.registry import get_spec, is_model_file, list_models
    from zoomsr.models.zoo import read_manifest

    if is_model_file(name):
        return
    shipped = set(read_manifest()["models"])
    if name in shipped:
        return
    registered = {s.name for s in list_models()}
    if name in registered and get_spec(name).task != "flow":
        return
    if name in registered or name.lower().startswith("sdflow"):
        raise _no_weights(name)


def sample_path(dst: Path, k: int, samples: int) -> Path:
    """``OUT.png`` for one sample, ``OUT_s0.png``, ``OUT_s1.png``, ... for several."""
    return dst if samples == 1 else dst.with_name(f"{dst.stem}_s{k}{dst.suffix}")


def _tiled(x, tile, overlap, unit, out_scale, run, progress) -> torch.Tensor:
    """:func:`~zoomsr.infer.engine.blend_tiles` on a grid of ``unit``-pixel cells of ``x``
    (one latent position each); outputs have ``out_scale`` pixels per cell."""
    n, _, h, w = x.shape
    tu, ou = max(2, tile // unit), max(1, overlap // unit)
    if tu <= 2 * ou:
        ou = (tu - 1) // 2
    return blend_tiles((n, 3, h // unit, w // unit), tu, ou, out_scale, run, progress)


def flow_upscale(
    model: nn.Module,
    lr: torch.Tensor,
    tau: float,
    generator: torch.Generator,
    opts: FlowOptions | None = None,
    progress: Callable = lambda it, _desc: it,
) -> torch.Tensor:
    """A x4 SR sample of ``lr`` (N x 3 x h x w, [0, 1]) on the CPU; see the module docstring."""
    opts = opts or FlowOptions(tile=0)
    n, _, h, w = lr.shape
    device = model_device(model)
    noise = torch.randn((n, 45, h, w), generator=generator) if tau >= 1e-6 else None

    def run(top, left, th, tw):
        x = lr[..., top : top + th, left : left + tw].to(device)
        eps = None if noise is None else noise[..., top : top + th, left : left + tw].to(device)
        return model.upscale(x, tau, noise=eps)

    tile = opts.tile
    if tile is None:
        per_pixel = activation_bytes_per_pixel(model, run=lambda x: model.upscale(x, 0.0))
        tile = tile_for_budget(per_pixel, opts.max_memory)
    if not tile or max(h, w) <= tile:
        return run(0, 0, h, w).float().cpu().clamp(0, 1)
    return _tiled(lr, tile, opts.overlap, 1, model.scale, run, progress).clamp(0, 1)


def flow_downscale(
    model: nn.Module,
    hr: torch.Tensor,
    tau: float,
    generator: torch.Generator,
    opts: FlowOptions | None = None,
    progress: Callable = lambda it, _desc: it,
) -> torch.Tensor:
    """An x1/4 real-world LR sample of ``hr`` (N x 3 x H x W, [0, 1], H, W >= 12) on the CPU.

    The HR is cropped to multiples of 4 at the bottom/right (the LR is ``H // 4 x W // 4``), then
    padded to multiples of 8 with the official colour (``SDFlow.downscale``). Draws: the noise (if
    tau > 0), then one mixture component per image, as ``SDFlow.lr_from_content``.
    """
    from zoomsr.models.flow.sdflow import DS_MULTIPLE, DS_PAD_RGB

    opts = opts or FlowOptions(tile=0)
    n, _, h, w = hr.shape
    if min(h, w) < 12:
        raise ZoomsrError(f"SDFlow downscales images of at least 12x12 pixels; got {w}x{h}")
    h4, w4 = h // 4 * 4, w // 4 * 4
    ph, pw = -h4 % DS_MULTIPLE + h4, -w4 % DS_MULTIPLE + w4
    fill = torch.tensor(DS_PAD_RGB, dtype=hr.dtype) / 255
    x = fill.view(1, 3, 1, 1).expand(n, 3, ph, pw).clone()
    x[..., :h4, :w4] = hr[..., :h4, :w4]
    u = DS_MULTIPLE  # one latent position per 8x8 HR block
    noise = torch.randn((n, 12, ph // u, pw // u), generator=generator) if tau >= 1e-6 else None
    component = torch.randint(len(model.deg_flow.means), (n,), generator=generator)
    device = model_device(model)

    def run(top, left, th, tw):
        tile_hr = x[..., top * u : (top + th) * u, left * u : (left + tw) * u].to(device)
        eps = None if noise is None else noise[..., top : top + th, left : left + tw].to(device)
        return model.downscale(tile_hr, tau, noise=eps, component=component.to(device))

    tile = opts.tile
    if tile is None:
        per_pixel = activation_bytes_per_pixel(
            model, probe=64, run=lambda t: model.downscale(t, 0.0, component=0)
        )
        tile = tile_for_budget(per_pixel, opts.max_memory)
    if not tile or max(ph, pw) <= tile:
        y = run(0, 0, ph // u, pw // u).float().cpu()
    else:
        y = _tiled(x, tile, opts.overlap, u, u // 4, run, progress)
    return y[..., : h4 // 4, : w4 // 4].clamp(0, 1)


def flow_file(
    model: nn.Module,
    src: Path,
    dst: Path,
    direction: str,
    opts: FlowOptions,
    *,
    overwrite: bool = False,
    inputs=(),
    progress: Callable = lambda it, _desc: it,
) -> list[Path]:
    """Read ``src``, write ``opts.samples`` samples (``sample_path``) in the input's form: gray
    stays gray (run as RGB), alpha is resized by bicubic, the bit depth is kept."""
    image = read_image(src)
    color = image.color.unsqueeze(0)
    gray = color.shape[1] == 1
    x = to_rgb(color) if gray else color
    fn = flow_upscale if direction == "upscale" else flow_downscale
    written = []
    for k in range(opts.samples):
        g = item_generator(opts.seed, k)  # the k-th sample is the same whatever --samples
        y = fn(model, x, opts.tau, g, opts, progress)
        y = (to_gray(y) if gray else y)[0]
        alpha = None
        if image.alpha is not None:
            alpha = imresize(image.alpha, size=tuple(y.shape[-2:])).clamp(0, 1)
        out = sample_path(dst, k, opts.samples)
        written.append(
            write_image(out, image.replace(y, alpha), overwrite=overwrite, inputs=inputs)
        )
    return written
