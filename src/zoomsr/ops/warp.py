"""Backward warping by a dense flow, with the validity mask SelfDZSR++ uses (reference §2.6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MASK_THRESHOLD = 0.999  # a warped ones channel above this counts as fully inside the source


def flow_warp(x: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``x`` at ``p + flow(p)`` for every output pixel ``p`` (bilinear, zeros outside).

    ``x`` is ``(C, H, W)`` or ``(N, C, H, W)``; ``flow`` is ``(2, H, W)`` or ``(N, 2, H, W)`` in
    pixels (dx, dy). Returns ``(warped, mask)``: the warped image (not multiplied by the mask)
    and a binary ``(1 | N, 1, H, W)`` float mask that is 1 where the whole bilinear footprint came
    from inside ``x``, i.e. a warped ones channel > 0.999, as in the SelfDZSR++ code.

    Pixel centres are exact (``align_corners=False`` with the flow scaled by ``2/W``); the official
    code scales it by ``2/(W-1)``, which stretches the flow by ``W/(W-1)`` (about 2 % on 48 px).
    """
    single = x.ndim == 3
    if single:
        x, flow = x[None], flow[None]
    n, _, h, w = x.shape
    if flow.shape != (n, 2, h, w):
        raise ValueError(
            f"flow must be {(n, 2, h, w)} for x {tuple(x.shape)}, got {tuple(flow.shape)}"
        )
    ys = torch.arange(h, device=x.device, dtype=x.dtype)
    xs = torch.arange(w, device=x.device, dtype=x.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    # Pixel p -> normalised coordinate (2p + 1) / size - 1 (align_corners=False).
    sx = (2 * (gx + flow[:, 0].to(x.dtype)) + 1) / w - 1
    sy = (2 * (gy + flow[:, 1].to(x.dtype)) + 1) / h - 1
    grid = torch.stack([sx, sy], dim=-1)
    ones = torch.ones_like(x[:, :1])
    out = F.grid_sample(
        torch.cat([x, ones], 1), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    warped, mask = out[:, :-1], (out[:, -1:] > MASK_THRESHOLD).to(x.dtype)
    return (warped[0], mask[0]) if single else (warped, mask)
