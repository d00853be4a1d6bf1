"""EDSR and EDSR-baseline (Lim et al., CVPR-W 2017), with EDSR-PyTorch's layer names.

Inputs and outputs are RGB in [0, 1]; internally the network works on 0..``rgb_range`` as the
official code does, so official checkpoints load unchanged (see zoomsr.convert.edsr_pytorch).
"""

from __future__ import annotations

from torch import nn

from zoomsr.models.layers import MeanShiftFrame, ResBlock, Upsampler, conv
from zoomsr.models.registry import ModelSpec, register


class EDSR(MeanShiftFrame):
    def __init__(
        self,
        scale: int = 4,
        n_resblocks: int = 16,
        n_feats: int = 64,
        res_scale: float = 1.0,
        rgb_range: float = 255.0,
    ):
        super().__init__(scale, rgb_range)
        self.head = nn.Sequential(conv(3, n_feats, 3))
        self.body = nn.Sequential(
            *[ResBlock(n_feats, 3, res_scale) for _ in range(n_resblocks)],
            conv(n_feats, n_feats, 3),
        )
        self.tail = nn.Sequential(Upsampler(scale, n_feats), conv(n_feats, 3, 3))


register(
    ModelSpec(
        name="edsr-baseline",
        task="sisr",
        build=EDSR,
        scales=(2, 3, 4),
        summary="EDSR-baseline: 16 residual blocks, 64 channels (1.4-1.5 M params)",
        config={"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0},
    )
)
register(
    ModelSpec(
        name="edsr",
        task="sisr",
        build=EDSR,
        scales=(2, 3, 4),
        summary="EDSR: 32 residual blocks, 256 channels, residual scaling 0.1 (40-43 M params)",
        config={"n_resblocks": 32, "n_feats": 256, "res_scale": 0.1},
    )
)
