"""SelfDZSR (Zhang et al., ECCV 2022): self-supervised dual-zoom reference-based SR.

The test-time network (reference §3.3-3.6): Student matching warps Ref features onto the LR
grid, the Ref's own features are pasted at its LR footprint, a Ref AdaSTN refines them, and the
restoration module fuses them with the AdaSTN-aligned LR features.

``forward(lr, refs, ref_boxes) -> sr`` with ``refs = [ref]``: the Ref has the LR's pixel size
and shows the box ``ref_boxes[0] = (top, bottom, left, right)`` of the LR at ``scale`` x its
resolution (the tele centre crop of the official test loader). Whole captures need tiling and
a Ref window search on top of this (not here); :meth:`SelfDZSR.forward_trace` takes the
separate Ref crops that needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoomsr.errors import ZoomsrError
from zoomsr.models.registry import ModelSpec, register
from zoomsr.models.zoom.adastn import make_align
from zoomsr.models.zoom.draws import batch_rand
from zoomsr.models.zoom.matching import (
    FEATURE_STRIDE,
    RefEncoder,
    RefPatchHead,
    StudentExtractor,
    correspondence_offsets,
    offsets_to_image,
    paste,
    ref_warp,
)
from zoomsr.models.zoom.restoration import Restoration

Box = Sequence[int]


class SelfDZSR(nn.Module):
    """ECCV SelfDZSR restoration network plus its frozen Student matcher.

    Submodules: ``matcher`` (Student), ``ref_encoder``, ``ref_warp`` (deformable conv),
    ``ref_head`` (pasted Ref features), ``align`` (three LR AdaSTNs, P = 0 at test),
    ``ref_align`` (the Ref AdaSTN) and ``restoration``. In training mode the LR AdaSTNs drop to
    P = 0 with probability ``drop_prob`` and the paste happens with probability ``paste_prob``,
    per sample, drawn from the ``generator`` passed to :meth:`forward_trace`.

    Ablation switches (paper §5.4 / Table 5; defaults are the published model): ``align``
    replaces every AdaSTN by a plain deformable conv (``deform``) or nothing (``none``);
    ``matching=False`` skips the correspondence (Ref features used unwarped, zero offsets);
    ``use_ref=False`` zeroes every Ref input, the same network without a reference.
    """

    in_channels = 3

    def __init__(
        self,
        scale: int = 4,
        n_feats: int = 64,
        n_blocks: int = 16,
        drop_prob: float = 0.3,
        paste_prob: float = 0.3,
        match_elements: int = 1 << 24,
        align: str = "adastn",
        matching: bool = True,
        use_ref: bool = True,
    ):
        super().__init__()
        self.scale = scale
        self.matching, self.use_ref = matching, use_ref
        self.drop_prob = drop_prob
        self.paste_prob = paste_prob
        self.match_elements = match_elements
        self.matcher = StudentExtractor()
        self.ref_encoder = RefEncoder(n_feats)
        self.ref_warp = ref_warp(n_feats)
        self.ref_head = RefPatchHead(scale, n_feats)
        self.align = nn.ModuleList(make_align(align, n_feats, drop_at_test=True) for _ in range(3))
        self.ref_align = make_align(align, n_feats, drop_at_test=False)
        self.restoration = Restoration(scale, n_feats, n_blocks)

    def _check_box(self, lr: torch.Tensor, ref: torch.Tensor, box: Box | None) -> Box | None:
        if box is None:
            return None
        top, bottom, left, right = (int(v) for v in box)
        h, w = lr.shape[-2:]
        s = self.scale
        if (bottom - top) * s != ref.shape[-2] or (right - left) * s != ref.shape[-1]:
            raise ZoomsrError(
                f"Ref box {tuple(box)} must span the Ref size / {s} = "
                f"{ref.shape[-2] // s}x{ref.shape[-1] // s} LR pixels"
            )
        if top < 0 or left < 0 or bottom > h or right > w:
            raise ZoomsrError(f"Ref box {tuple(box)} lies outside the {h}x{w} LR image")
        return top, bottom, left, right

    def _check_boxes(
        self, lr: torch.Tensor, ref: torch.Tensor, box: Box | Sequence[Box] | torch.Tensor | None
    ) -> list[Box] | None:
        """One checked box per sample: ``box`` is one box for the batch or one per sample
        (a sequence of boxes or an N x 4 tensor, as training draws a window per sample)."""
        if box is None:
            return None
        if isinstance(box, torch.Tensor):
            per_sample = box.ndim == 2
        else:
            first = box[0] if len(box) else None
            per_sample = isinstance(first, Sequence) or (
                isinstance(first, torch.Tensor) and first.ndim == 1
            )
        boxes = list(box) if per_sample else [box] * lr.shape[0]
        if len(boxes) != lr.shape[0]:
            raise ZoomsrError(f"got {len(boxes)} Ref boxes for a batch of {lr.shape[0]}")
        return [self._check_box(lr, ref, b) for b in boxes]

    def forward_trace(
        self,
        lr: torch.Tensor,
        ref: torch.Tensor,
        box: Box | Sequence[Box] | torch.Tensor | None,
        *,
        match_ref: torch.Tensor | None = None,
        lr_centre: torch.Tensor | None = None,
        guide_lr: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """The SR image and its intermediates, by name (``sr`` is the output).

        The Ref plays three roles; the official tiled test gives them different crops:
        - ``match_ref``: the Ref window matched and warped onto this LR (the LR's size;
          default ``ref``);
        - ``ref``: pasted at ``box`` (its footprint in this LR, ``scale`` x smaller than ``ref``;
          one box for the batch or one per sample; ``None``: no paste) and, with ``lr_centre``
          (the LR region it shows; default the LR at ``box``), the input of the modulation
          encoder;
        - ``guide_lr``: the auxiliary LR of training, matched instead of the LR and the AdaSTN
          guide (default: the LR, as at test).
        """
        match_ref = ref if match_ref is None else match_ref
        if not self.use_ref:  # ablation: the same network, told nothing by the Ref
            ref, match_ref = torch.zeros_like(ref), torch.zeros_like(match_ref)
        match_lr = lr if guide_lr is None else guide_lr
        if match_ref.shape != lr.shape or match_lr.shape != lr.shape:
            raise ZoomsrError(
                f"SelfDZSR matches a Ref window of the LR's size {tuple(lr.shape[-2:])}, got "
                f"{tuple(match_ref.shape[-2:])}; crop the Ref to that size first"
            )
        if lr.shape[-2] % FEATURE_STRIDE or lr.shape[-1] % FEATURE_STRIDE:
            raise ZoomsrError(f"SelfDZSR needs LR sides divisible by 4, got {tuple(lr.shape[-2:])}")
        checked = self._check_boxes(lr, ref, box)
        if lr_centre is None:
            if checked is None:
                raise ZoomsrError("SelfDZSR needs the Ref box or the LR centre it shows")
            lr_centre = torch.stack(
                [lr[i, :, t:b, left:right] for i, (t, b, left, right) in enumerate(checked)]
            )
        n = lr.shape[0]

        with torch.no_grad():  # the Student is frozen and the argmax has no gradient
            feat_lr, feat_ref = self.matcher(match_lr, match_ref)
            if self.matching:
                offsets = correspondence_offsets(feat_lr, feat_ref, self.match_elements)
            else:
                n, _, fh, fw = feat_lr.shape
                offsets = feat_lr.new_zeros(n, 18, fh, fw)
        ref_warped = self.ref_warp(self.ref_encoder(match_ref), offsets_to_image(offsets))

        rest = self.restoration
        h = rest.embed(lr)
        guide = h if guide_lr is None else rest.embed(guide_lr)
        for block in self.align:  # P = 0 dropout: drawn per sample and per block (§3.2)
            centre = None
            if self.training:
                centre = batch_rand(n, generator).to(lr.device) < self.drop_prob
            h = block(h, guide, centre)

        patch = self.ref_head(ref)
        boxes: list[Box | None] = checked if checked is not None else [None] * n
        if self.training and checked is not None:  # paste with probability paste_prob
            keep = (batch_rand(n, generator) < self.paste_prob).tolist()
            boxes = [b if k else None for b, k in zip(checked, keep, strict=True)]
        ref_feat = self.ref_align(paste(ref_warped, patch, boxes), guide)

        fused = rest.fuse_features(h, ref_feat)
        modulation = rest.predictor(lr_centre, ref, fused)
        sr = rest.decode(h, fused, modulation)
        return {
            "feat_lr": feat_lr,
            "feat_ref": feat_ref,
            "offsets": offsets,
            "ref_warped": ref_warped,
            "ref_patch": patch,
            "h": h,
            "ref_feat": ref_feat,
            "fused": fused,
            "modulation": modulation,
            "sr": sr,
        }

    def forward(
        self, lr: torch.Tensor, refs: Sequence[torch.Tensor], ref_boxes: Sequence[Box]
    ) -> torch.Tensor:
        if len(refs) != 1 or len(ref_boxes) != 1:
            raise ZoomsrError(f"SelfDZSR takes one reference, got {len(refs)}")
        return self.forward_trace(lr, refs[0], ref_boxes[0])["sr"]


register(
    ModelSpec(
        name="selfdzsr",
        task="zoom",
        build=SelfDZSR,
        scales=(2, 4),
        default_scale=4,
        summary="SelfDZSR (ECCV 2022): dual-zoom Ref-based SR, 2.05 M params + 1.11 M matcher",
    )
)
