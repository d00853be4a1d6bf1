"""Single-image SR datasets: benchmark folders for evaluation.

Accepted layouts of a folder ROOT, for scale s:
- EDSR-PyTorch benchmark: ``ROOT/HR/NAME.png`` + ``ROOT/LR_bicubic/X{s}/NAMEx{s}.png``;
- paired: ``ROOT/HR/`` + ``ROOT/LR/`` (or ``ROOT/LR/X{s}/``), LR named ``NAME`` or ``NAMEx{s}``;
- HR only: ``ROOT/HR/`` or a folder of images; LR is made by MATLAB-exact bicubic downscaling
  of the HR mod-cropped to a multiple of s (the recipe of the published benchmarks).
HR is compared on its top-left ``s*h x s*w`` part (MATLAB ``modcrop``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from zoomsr.errors import DataError
from zoomsr.io import IMAGE_EXTENSIONS, read_image
from zoomsr.ops.resize import imresize


@dataclass(frozen=True)
class EvalPair:
    name: str
    hr_path: Path
    lr_path: Path | None  # None: the LR is made from the HR by exact bicubic downscaling


@dataclass
class EvalSample:
    name: str
    lr: torch.Tensor  # (1, C, h, w) in [0, 1]
    hr: torch.Tensor  # (1, C, s*h, s*w) in [0, 1]
    bit_depth: int


def _images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _lr_folder(root: Path, scale: int) -> Path | None:
    for cand in (
        root / "LR_bicubic" / f"X{scale}",
        root / "LR" / f"X{scale}",
        root / f"LR_x{scale}",
        root / "LR",
    ):
        if cand.is_dir() and _images(cand):
            return cand
    return None


def find_eval_pairs(root: str | Path, scale: int) -> list[EvalPair]:
    """The (HR, LR) pairs of a benchmark folder; see the module docstring for layouts."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder '{root}' does not exist")
    hr_dir = root / "HR" if (root / "HR").is_dir() else root
    hrs = _images(hr_dir)
    if not hrs:
        raise DataError(f"no images found in '{hr_dir}' (expected HR/ or a folder of images)")
    lr_dir = _lr_folder(root, scale) if hr_dir != root else None
    if lr_dir is None:
        return [EvalPair(p.stem, p, None) for p in hrs]
    lrs = {p.stem: p for p in _images(lr_dir)}
    pairs = []
    for hr in hrs:
        lr = lrs.get(f"{hr.stem}x{scale}") or lrs.get(hr.stem)
        if lr is None:
            raise DataError(
                f"no LR image for '{hr.name}' in '{lr_dir}' (expected {hr.stem}x{scale}.* or {hr.stem}.*)"
            )
        pairs.append(EvalPair(hr.stem, hr, lr))
    return pairs


def make_lr(hr: torch.Tensor, scale: int, bit_depth: int = 8) -> torch.Tensor:
    """MATLAB ``imresize(modcrop(HR, s), 1/s)`` of an integer image, exact at its bit depth."""
    h, w = hr.shape[-2] - hr.shape[-2] % scale, hr.shape[-1] - hr.shape[-1] % scale
    levels = 2**bit_depth - 1
    return imresize(hr[..., :h, :w].double(), 1 / scale, levels=levels).float()


def load_eval_sample(pair: EvalPair, scale: int) -> EvalSample:
    hr_img = read_image(pair.hr_path)
    hr = hr_img.color.unsqueeze(0)
    if pair.lr_path is None:
        lr = make_lr(hr, scale, hr_img.bit_depth)
    else:
        lr_img = read_image(pair.lr_path)
        lr = lr_img.color.unsqueeze(0)
        if lr.shape[1] != hr.shape[1]:
            raise DataError(
                f"'{pair.lr_path.name}' has {lr.shape[1]} channel(s) but '{pair.hr_path.name}' has {hr.shape[1]}"
            )
    h, w = lr.shape[-2] * scale, lr.shape[-1] * scale
    if hr.shape[-2] < h or hr.shape[-1] < w:
        raise DataError(
            f"HR '{pair.hr_path.name}' ({hr.shape[-1]}x{hr.shape[-2]}) is smaller than "
            f"{scale} x its LR ({lr.shape[-1]}x{lr.shape[-2]}): wrong scale?"
        )
    return EvalSample(pair.name, lr, hr[..., :h, :w], hr_img.bit_depth)
