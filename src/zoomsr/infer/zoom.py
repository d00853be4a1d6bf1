"""Run a zoom (reference-based) model on a whole capture: padding, tiling, Ref windows.

``run_zoom(model, lr, refs, ref_boxes, options)`` takes a 1 x 3 x H x W LR of any size, the Refs
at their zoom (widest first) and each Ref's footprint ``(top, bottom, left, right)`` in LR
pixels, and returns the 1 x 3 x sH x sW output in [0, 1] on the CPU. Methods
(selfdzsr_reference.md §6.1, §6.2):

- ``auto`` (default): ``whole`` up to ``AUTO_WHOLE_PIXELS`` LR pixels, ``tiled`` above (when
  the model supports it), so a 12 MP capture never runs the quadratic global matching.
- ``whole``: one pass over the LR edge-padded to a multiple of 8, as the SelfDZSR++ test code.
  Works for every zoom model. Matching is global, so time grows with the square of the area.
- ``tiled`` (SelfDZSR, SelfDZSR++, SelfTZSR++): bounded memory, time linear in the area.
  The Ref features are computed once; each block of LR features is matched only against one
  Ref window (the co-located Ref part where the block lies in the Ref's footprint, else the
  window ``PatchSelect`` picks); the modulation vector is computed once, exactly, from the whole
  image in strips; the trunk runs in overlapping tiles with context margins and smooth
  blending, each tile pasting only the part of the Ref footprint inside it. With ``window=0``
  (search the whole Ref) and the default margin, the result equals ``whole`` up to rounding.
  Device memory is bounded by the tile size; host memory holds, besides the output, the Refs'
  encoder features (64 floats per LR pixel) and Student features (16 per LR pixel).
- ``eccv``: the official ECCV chop (reflect padding, a 3 x 3 grid at x4 or 6 x 6 at x2 with 8-px
  margins, per-tile modulation, Ref window by ``PatchSelect`` for tiles outside the footprint).

The per-family runners live in :mod:`zoomsr.infer.zoom_runners`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from zoomsr.errors import ZoomsrError
from zoomsr.infer.engine import model_device

METHODS = ("auto", "whole", "tiled", "eccv")
AUTO_WHOLE_PIXELS = 512 * 512  # "auto": larger LRs are tiled (global matching is quadratic)
PAD_MULTIPLE = 8  # the SelfDZSR++ test pads the LR to this (SelfDZSR itself needs 4)
FRONT_MARGIN = 16  # LR px of context for the trunk up to the fusion (strips of the modulation)

Box = tuple[int, int, int, int]
Progress = Callable[[Iterable, str], Iterable]


@dataclass
class ZoomOptions:
    method: str = "auto"  # auto | whole | tiled | eccv
    tile: int = 256  # LR side of a trunk tile ("tiled")
    overlap: int = 16  # LR px blended between neighbouring tiles (at most tile / 2)
    margin: int | None = None  # LR px of context per tile side; None: the receptive field
    window: int = 384  # LR px side of the Ref window a block is matched in; 0: the whole Ref
    block: int = 128  # LR px side of a matching block (one Ref window each)
    device: str | torch.device | None = None  # None: the model's device
    quiet: bool = False  # no progress bars (they show only on a terminal anyway)
    progress: Progress | None = None  # (iterable, stage name) -> iterable; None: tqdm


def default_progress(quiet: bool) -> Progress:
    """A tqdm bar per stage on a terminal; nothing when quiet or when stderr is not a TTY."""
    if quiet or not sys.stderr.isatty():
        return lambda it, _desc: it
    from tqdm import tqdm

    return lambda it, desc: tqdm(it, desc=desc, leave=False, dynamic_ncols=True)


def ref_zooms(model: nn.Module) -> tuple[int, ...]:
    """The zoom of each Ref the model takes, widest first (SelfDZSR: its scale)."""
    return tuple(getattr(model, "zooms", (model.scale,)))


def _pad_amounts(size: int, multiple: int) -> tuple[int, int]:
    extra = -size % multiple
    return extra // 2, extra - extra // 2


def _check_inputs(model, lr, refs, boxes) -> list[Box]:
    if lr.ndim != 4 or lr.shape[0] != 1 or lr.shape[1] != 3:
        raise ZoomsrError(f"run_zoom takes one 1 x 3 x H x W LR, got {tuple(lr.shape)}")
    if len(refs) != len(boxes):
        raise ZoomsrError(f"got {len(refs)} Refs but {len(boxes)} Ref boxes")
    h, w = lr.shape[-2:]
    out = []
    for ref, box in zip(refs, boxes, strict=True):
        top, bottom, left, right = (int(v) for v in box)
        if not (0 <= top < bottom <= h and 0 <= left < right <= w):
            raise ZoomsrError(f"Ref box {(top, bottom, left, right)} lies outside the {h}x{w} LR")
        if ref.ndim != 4 or ref.shape[:2] != (1, 3):
            raise ZoomsrError(f"a Ref must be 1 x 3 x h x w, got {tuple(ref.shape)}")
        out.append((top, bottom, left, right))
    return out


@torch.no_grad()
def run_zoom(
    model: nn.Module,
    lr: torch.Tensor,
    refs: Sequence[torch.Tensor],
    ref_boxes: Sequence[Sequence[int]],
    options: ZoomOptions | None = None,
) -> torch.Tensor:
    """Super-resolve one capture with a zoom model; see the module docstring for the methods."""
    opts = options or ZoomOptions()
    if opts.method not in METHODS:
        raise ZoomsrError(f"unknown zoom method '{opts.method}'; choose from {', '.join(METHODS)}")
    if opts.device is not None:  # moves the caller's model, as asked
        model.to(opts.device)
    device = model_device(model)
    progress = opts.progress or default_progress(opts.quiet)
    lr = lr.detach().float().cpu()
    refs = [r.detach().float().cpu() for r in refs]
    boxes = _check_inputs(model, lr, refs, ref_boxes)
    runner_cls = _runner_class(model)
    if opts.method == "auto":
        big = lr.shape[-2] * lr.shape[-1] > AUTO_WHOLE_PIXELS
        opts = replace(opts, method="tiled" if big and runner_cls is not None else "whole")
    if opts.method != "whole" and runner_cls is None:
        raise ZoomsrError(
            f"zoom method '{opts.method}' is not available for "
            f"{getattr(model, 'model_name', type(model).__name__)}; use method 'whole'"
        )
    s = model.scale
    if opts.method == "eccv":
        return runner_cls(model, device, progress).eccv(lr, refs, boxes).clamp(0, 1)

    h, w = lr.shape[-2:]
    (pt, pb), (pl, pr) = _pad_amounts(h, PAD_MULTIPLE), _pad_amounts(w, PAD_MULTIPLE)
    if pt or pb or pl or pr:
        lr = F.pad(lr, (pl, pr, pt, pb), mode="replicate")
        boxes = [(t + pt, b + pt, left + pl, right + pl) for t, b, left, right in boxes]
    if runner_cls is not None:
        runner = runner_cls(model, device, progress)
        if opts.method == "whole":
            sr = runner.whole(lr, refs, boxes)
        else:
            sr = runner.tiled(lr, refs, boxes, opts)
    else:
        sr = model(lr.to(device), [r.to(device) for r in refs], boxes).float().cpu()
    return sr[..., s * pt : s * (pt + h), s * pl : s * (pl + w)].clamp(0, 1)


def _runner_class(model: nn.Module) -> type | None:
    from zoomsr.infer.zoom_runners import runner_table

    return next((r for cls, r in runner_table().items() if isinstance(model, cls)), None)


__all__ = ["METHODS", "ZoomOptions", "ref_zooms", "run_zoom"]
