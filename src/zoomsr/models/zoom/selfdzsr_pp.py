"""SelfDZSR++ (Zhang et al., TPAMI 2024): the journal dual-zoom model, and the frame it shares
with SelfTZSR++ (``selftzsr_pp.py``).

What changes from the ECCV SelfDZSR (reference §3.7, fixture README ``selfdzsr_pp_x4``):
- the lighter ++ AdaSTN (one grouped conv before the affine head, nothing after the deformable
  conv), still P = 0 at test, where it is a per-channel scale;
- no Ref AdaSTN: the warped Ref features, with the Ref's own features pasted at its box, go
  straight into the fusion conv;
- matching always uses the LR; the auxiliary LR of training only guides the AdaSTNs;
- the whole image is restored in one pass (the caller pads the LR to a multiple of 8; no tiles).

``forward(lr, refs, ref_boxes) -> sr``: every Ref has the LR's pixel size and shows the box
``(top, bottom, left, right)`` of the LR at ``zoom`` x its resolution (x4 here: the LR centre
quarter, as the official test loader crops it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoomsr.errors import ZoomsrError
from zoomsr.models.registry import ModelSpec, register
from zoomsr.models.zoom.adastn import AdaSTN
from zoomsr.models.zoom.draws import batch_rand
from zoomsr.models.zoom.matching import (
    RefEncoder,
    RefPatchHead,
    StudentExtractor,
    correspondence_offsets,
    paste,
    ref_warp,
)
from zoomsr.models.zoom.restoration import Restoration

Box = Sequence[int]
# One box for the batch, one per sample (a sequence of boxes), or an N x 4 tensor.
Boxes = Box | Sequence[Box] | torch.Tensor

PAD_MULTIPLE = 8  # the official loader pads the LR to this; the Ref boxes then fall on whole pixels


def adastn_pp(channels: int = 64) -> AdaSTN:
    """The ++ AdaSTN (reference §3.2 "PP"): no depthwise pre-layer, no output activation."""
    return AdaSTN(channels, drop_at_test=True, depthwise_mixer=False, activation=False)


class RefBranch(nn.Module):
    """One reference: its feature encoder, the deformable warp by the matched offsets, and the
    head that turns the Ref image into features on the LR grid of its box (the paste)."""

    def __init__(self, zoom: int, n_feats: int = 64):
        super().__init__()
        self.zoom = zoom
        self.encoder = RefEncoder(n_feats)
        self.warp = ref_warp(n_feats)
        self.head = RefPatchHead(zoom, n_feats)


def offsets_to_size(offsets: torch.Tensor, size: Sequence[int], stride: int = 4) -> torch.Tensor:
    """Feature-pixel offsets resized to the Ref image ``size`` (bilinear, align_corners) x stride.

    The ++ code resizes to the Ref's size rather than by a factor; the two agree when the Ref
    sides are multiples of 4, which :class:`ZoomPlusPlus` enforces.
    """
    return F.interpolate(offsets, size=tuple(size), mode="bilinear", align_corners=True) * stride


def _per_sample(box: Boxes, n: int) -> list:
    """``box`` as a list of n boxes (one box is shared by the batch)."""
    if isinstance(box, torch.Tensor):
        per_sample = box.ndim == 2
    else:
        first = box[0] if len(box) else None
        per_sample = isinstance(first, Sequence) or (
            isinstance(first, torch.Tensor) and first.ndim == 1
        )
    boxes = list(box) if per_sample else [box] * n
    if len(boxes) != n:
        raise ZoomsrError(f"got {len(boxes)} Ref boxes for a batch of {n}")
    return boxes


class ZoomPlusPlus(nn.Module):
    """The ++ network for any number of references, ordered widest first (progressive fusion).

    Submodules: ``matcher`` (frozen Student, shared by all Refs), ``branches`` (one
    :class:`RefBranch` per Ref), ``align`` (three ++ AdaSTNs on the LR features, P = 0 at test),
    ``restoration`` (LR head, first fusion conv, modulation encoder, residual blocks, upsampler,
    tail) and ``extra_fuse`` (one fusion conv per further Ref). Stage k fuses the features of
    Ref k into the trunk (Ref 0 with the aligned LR features) and runs the next
    ``n_blocks / len(refs)`` blocks. The modulation vector comes from the LR at the narrowest
    Ref's box, that Ref, and the first fused features.

    In training mode each LR AdaSTN drops to P = 0 per sample with probability ``drop_prob``
    (one draw per block, as the official code) and the pastes happen per sample with
    probability ``paste_prob`` (one draw for all Refs of a sample), drawn from the
    ``generator`` given to :meth:`forward_trace`.
    """

    in_channels = 3
    label = "SelfDZSR++"

    def __init__(
        self,
        scale: int,
        zooms: Sequence[int],
        n_feats: int = 64,
        n_blocks: int = 16,
        drop_prob: float = 0.3,
        paste_prob: float = 0.3,
        match_elements: int = 1 << 24,
    ):
        super().__init__()
        if n_blocks % len(zooms):
            raise ValueError(f"{n_blocks} blocks do not split into {len(zooms)} fusion stages")
        self.scale = scale
        self.zooms = tuple(zooms)
        self.drop_prob, self.paste_prob = drop_prob, paste_prob
        self.match_elements = match_elements
        self.matcher = StudentExtractor()
        self.branches = nn.ModuleList(RefBranch(z, n_feats) for z in self.zooms)
        self.align = nn.ModuleList(adastn_pp(n_feats) for _ in range(3))
        self.restoration = Restoration(scale, n_feats, n_blocks)
        self.extra_fuse = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * n_feats, n_feats, 3, padding=1), nn.LeakyReLU(0.1, True))
            for _ in self.zooms[1:]
        )

    # -- input checks -------------------------------------------------------------------------

    def _check_inputs(
        self, lr: torch.Tensor, refs: Sequence[torch.Tensor], guide_lr: torch.Tensor | None
    ) -> None:
        if len(refs) != len(self.zooms):
            zooms = ", ".join(f"x{z}" for z in self.zooms)
            raise ZoomsrError(
                f"{self.label} takes {len(self.zooms)} reference(s) ({zooms}, widest first), "
                f"got {len(refs)}"
            )
        if lr.ndim != 4 or lr.shape[1] != 3:
            raise ZoomsrError(f"{self.label} needs an N x 3 x H x W LR, got {tuple(lr.shape)}")
        h, w = lr.shape[-2:]
        if h % PAD_MULTIPLE or w % PAD_MULTIPLE:
            raise ZoomsrError(
                f"{self.label} needs LR sides that are multiples of {PAD_MULTIPLE}, got {h}x{w}; "
                "pad the LR (and the Refs to match) first"
            )
        for ref, zoom in zip(refs, self.zooms, strict=True):
            if ref.shape != lr.shape:
                raise ZoomsrError(
                    f"{self.label}: the x{zoom} Ref must have the LR's shape {tuple(lr.shape)} "
                    f"(the x{zoom} view of the LR's central 1/{zoom}), got {tuple(ref.shape)}"
                )
        if guide_lr is not None and guide_lr.shape != lr.shape:
            raise ZoomsrError(
                f"{self.label}: the guide LR {tuple(guide_lr.shape)} must have the LR's shape "
                f"{tuple(lr.shape)}"
            )

    def _check_box(self, lr: torch.Tensor, zoom: int, box) -> tuple[int, int, int, int]:
        top, bottom, left, right = (int(v) for v in box)
        h, w = lr.shape[-2:]
        if top < 0 or left < 0 or bottom > h or right > w:
            raise ZoomsrError(f"Ref box {(top, bottom, left, right)} lies outside the {h}x{w} LR")
        if (bottom - top) * zoom != h or (right - left) * zoom != w:
            raise ZoomsrError(
                f"the x{zoom} Ref box {(top, bottom, left, right)} must span the Ref size / {zoom}"
                f" = {h // zoom}x{w // zoom} LR pixels"
            )
        return top, bottom, left, right

    def _boxes(self, lr: torch.Tensor, ref_boxes: Sequence[Boxes]) -> list[list]:
        if len(ref_boxes) != len(self.zooms):
            raise ZoomsrError(
                f"{self.label} needs one box per reference ({len(self.zooms)}), got {len(ref_boxes)}"
            )
        n = lr.shape[0]
        return [
            [self._check_box(lr, zoom, b) for b in _per_sample(box, n)]
            for zoom, box in zip(self.zooms, ref_boxes, strict=True)
        ]

    # -- forward ------------------------------------------------------------------------------

    def _draw(self, n: int, p: float, generator: torch.Generator | None, device) -> torch.Tensor:
        """Per-sample Bernoulli(p) draws (bool, on ``device``) from ``generator``."""
        return (batch_rand(n, generator) < p).to(device)

    def forward_trace(
        self,
        lr: torch.Tensor,
        refs: Sequence[torch.Tensor],
        ref_boxes: Sequence[Boxes],
        *,
        guide_lr: torch.Tensor | None = None,
        lr_centre: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """The SR image (``sr``) and its intermediates, named like the parity fixtures' files.

        ``refs`` widest first, each of the LR's size; ``ref_boxes[k]`` is Ref k's footprint in
        LR pixels, one box for the batch or one per sample (N x 4 in training). ``guide_lr``:
        the auxiliary LR of training, the guide of the AdaSTNs only (default: the LR).
        ``lr_centre``: the LR region the narrowest Ref shows, for the modulation encoder
        (default: the LR at that Ref's box).

        Keys, with ``r`` = ``ref{zoom}x``: ``stu_feat_lr``, ``stu_feat_<r>`` (Student),
        ``corr_offset_<r>`` (matched offsets in feature pixels, before resizing),
        ``ref_feat_<r>`` (encoder), ``warped_<r>`` (deformable warp, before the paste),
        ``head_<r>`` (the pasted block), ``aligned_<r>`` (after the paste), ``h`` (LR features
        after the AdaSTNs), ``fused_<r>`` (stage fusion outputs), ``trunk_<k>`` (trunk after
        stage k), ``modulation``, ``body_out`` (before the global skip), ``up``, ``sr``.
        """
        self._check_inputs(lr, refs, guide_lr)
        boxes = self._boxes(lr, ref_boxes)
        n = lr.shape[0]
        names = [f"ref{z}x" for z in self.zooms]
        out: dict[str, torch.Tensor] = {}

        with torch.no_grad():  # the Student is frozen and the argmax has no gradient
            # One LR pass serves every Ref: both calls of the official TZSR++ give the same.
            feat_lr = self.matcher._run(self.matcher.lr_branch, lr)
            out["stu_feat_lr"] = feat_lr
            offsets = []
            for name, ref in zip(names, refs, strict=True):
                feat_ref = self.matcher._run(self.matcher.ref_branch, ref)
                off = correspondence_offsets(feat_lr, feat_ref, self.match_elements)
                out[f"stu_feat_{name}"], out[f"corr_offset_{name}"] = feat_ref, off
                offsets.append(off)

        rest = self.restoration
        h = rest.embed(lr)
        guide = h if guide_lr is None else rest.embed(guide_lr)
        for block in self.align:
            centre = self._draw(n, self.drop_prob, generator, lr.device) if self.training else None
            h = block(h, guide, centre)
        out["h"] = h

        keep = [True] * n
        if self.training:  # one draw pastes all Refs of a sample, or none
            keep = self._draw(n, self.paste_prob, generator, "cpu").tolist()
        aligned = []
        for name, branch, ref, off, ref_box in zip(
            names, self.branches, refs, offsets, boxes, strict=True
        ):
            feat = branch.encoder(ref)
            # Warped on the Ref grid; the ++ code then resizes to the LR size, an identity here
            # because the Refs have the LR's size.
            warped = branch.warp(feat, offsets_to_size(off, ref.shape[-2:]))
            patch = branch.head(ref)
            pasted = paste(
                warped, patch, [b if k else None for b, k in zip(ref_box, keep, strict=True)]
            )
            out[f"ref_feat_{name}"], out[f"warped_{name}"] = feat, warped
            out[f"head_{name}"], out[f"aligned_{name}"] = patch, pasted
            aligned.append(pasted)

        if lr_centre is None:
            lr_centre = torch.stack(
                [lr[i, :, t:b, left:right] for i, (t, b, left, right) in enumerate(boxes[-1])]
            )
        fuses = [rest.fuse, *self.extra_fuse]
        per_stage = len(rest.blocks) // len(fuses)
        x, modulation = h, None
        for k, (name, fuse, feats) in enumerate(zip(names, fuses, aligned, strict=True)):
            x = fuse(torch.cat([x, feats], dim=1))
            out[f"fused_{name}"] = x
            if modulation is None:
                modulation = rest.predictor(lr_centre, refs[-1], x)
            for block in rest.blocks[k * per_stage : (k + 1) * per_stage]:
                x = block(x, modulation)
            out[f"trunk_{k}"] = x
        body = rest.body_out(x)
        # The global skip adds the AdaSTN-aligned LR features h (as ECCV).
        up = rest.upsampler(body + h)
        out.update(modulation=modulation, body_out=body, up=up, sr=rest.tail(up))
        return out

    def forward(
        self, lr: torch.Tensor, refs: Sequence[torch.Tensor], ref_boxes: Sequence[Boxes]
    ) -> torch.Tensor:
        return self.forward_trace(lr, refs, ref_boxes)["sr"]


class SelfDZSRpp(ZoomPlusPlus):
    """SelfDZSR++: one reference, the tele view of the LR's central 1/scale (``refs = [tele]``)."""

    label = "SelfDZSR++"

    def __init__(
        self,
        scale: int = 4,
        n_feats: int = 64,
        n_blocks: int = 16,
        drop_prob: float = 0.3,
        paste_prob: float = 0.3,
        match_elements: int = 1 << 24,
    ):
        super().__init__(scale, (scale,), n_feats, n_blocks, drop_prob, paste_prob, match_elements)


register(
    ModelSpec(
        name="selfdzsr-pp",
        task="zoom",
        build=SelfDZSRpp,
        scales=(2, 4),
        default_scale=4,
        summary="SelfDZSR++ (TPAMI 2024): dual-zoom Ref-based SR, 2.04 M params + 1.11 M matcher",
    )
)
