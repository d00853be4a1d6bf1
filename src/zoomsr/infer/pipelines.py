"""High-level jobs on image files: upscale (and, later, zoom)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from zoomsr.infer.engine import InferOptions, run_sisr
from zoomsr.io import read_image, write_image
from zoomsr.ops.resize import imresize


def output_path_for(src: Path, out: Path, many: bool, suffix: str | None) -> Path:
    """Where the result of ``src`` goes: ``out`` itself, or ``out/<name>`` for several inputs."""
    if many or out.is_dir():
        return out / (src.stem + (suffix or src.suffix))
    return out


def upscale_file(
    model: nn.Module,
    src: Path,
    dst: Path,
    *,
    opts: InferOptions | None = None,
    overwrite: bool = False,
    inputs=(),
    progress: Callable = lambda it, _desc: it,
) -> Path:
    """Read, super-resolve (alpha separately, by bicubic), write atomically in the same form."""
    image = read_image(src)
    sr = run_sisr(model, image.color.unsqueeze(0), image.bit_depth, opts, progress)[0]
    alpha = None
    if image.alpha is not None:
        # Alpha is a mask, not texture: interpolate it rather than hallucinate detail.
        alpha = imresize(image.alpha, size=tuple(sr.shape[-2:])).clamp(0, 1)
    return write_image(dst, image.replace(sr, alpha), overwrite=overwrite, inputs=inputs)
