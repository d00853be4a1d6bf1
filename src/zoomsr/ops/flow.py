"""Dense optical flow with OpenCV's DIS (Kroeger et al. 2016).

DIS is used instead of a learned flow network (PWC-Net in the SelfDZSR code) because it needs no
weights, runs on any CPU and is good enough for the small residual misalignment between an LR
patch and its downsampled GT. Flows are ``(2, H, W)`` float32 tensors in pixels, channel 0 = dx,
channel 1 = dy, in the *backward* convention of :func:`zoomsr.ops.warp.flow_warp`.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from zoomsr.ops.color import to_gray

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def _gray_uint8(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) uint8 luma, the input DIS accepts."""
    g = to_gray(x.detach().to("cpu", torch.float32))[0]
    return np.ascontiguousarray((g.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy())


def dis_flow(a: torch.Tensor, b: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """The flow that brings ``b`` onto ``a``: ``flow_warp(b, dis_flow(a, b)) ≈ a``.

    ``a`` and ``b`` are ``(C, H, W)`` or batches ``(N, C, H, W)`` (C = 1 or 3) in [0, 1] of the
    same size; the result is ``(2, H, W)`` or ``(N, 2, H, W)`` on ``a``'s device. OpenCV's
    ``calc(I0, I1)`` returns the flow with ``I0(p) ≈ I1(p + flow(p))``, which is exactly the
    backward-warp convention, so ``a`` is passed first.
    """
    if a.shape != b.shape:
        raise ValueError(f"dis_flow needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim == 4:
        return torch.stack([dis_flow(x, y, preset) for x, y in zip(a, b, strict=True)])
    if a.ndim != 3:
        raise ValueError(f"dis_flow expects (C, H, W) or (N, C, H, W), got {tuple(a.shape)}")
    dis = cv2.DISOpticalFlow_create(PRESETS[preset])
    flow = dis.calc(_gray_uint8(a), _gray_uint8(b), None)  # (H, W, 2): dx, dy
    return torch.from_numpy(flow).permute(2, 0, 1).contiguous().to(a.device)
