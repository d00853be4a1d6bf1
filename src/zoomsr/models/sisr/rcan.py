"""RCAN (Zhang et al., ECCV 2018), with EDSR-PyTorch's layer names."""

from __future__ import annotations

from torch import nn

from zoomsr.models.layers import ChannelAttention, MeanShiftFrame, Upsampler, conv
from zoomsr.models.registry import ModelSpec, register


class RCAB(nn.Module):
    """Residual channel attention block. (The official res_scale is stored but never applied.)"""

    def __init__(self, n_feats: int, reduction: int):
        super().__init__()
        self.body = nn.Sequential(
            conv(n_feats, n_feats, 3),
            nn.ReLU(True),
            conv(n_feats, n_feats, 3),
            ChannelAttention(n_feats, reduction),
        )

    def forward(self, x):
        return self.body(x) + x


class ResidualGroup(nn.Module):
    def __init__(self, n_feats: int, reduction: int, n_resblocks: int):
        super().__init__()
        self.body = nn.Sequential(
            *[RCAB(n_feats, reduction) for _ in range(n_resblocks)], conv(n_feats, n_feats, 3)
        )

    def forward(self, x):
        return self.body(x) + x


class RCAN(MeanShiftFrame):
    def __init__(
        self,
        scale: int = 4,
        n_resgroups: int = 10,
        n_resblocks: int = 20,
        n_feats: int = 64,
        reduction: int = 16,
        rgb_range: float = 255.0,
    ):
        super().__init__(scale, rgb_range)
        self.head = nn.Sequential(conv(3, n_feats, 3))
        self.body = nn.Sequential(
            *[ResidualGroup(n_feats, reduction, n_resblocks) for _ in range(n_resgroups)],
            conv(n_feats, n_feats, 3),
        )
        self.tail = nn.Sequential(Upsampler(scale, n_feats), conv(n_feats, 3, 3))


register(
    ModelSpec(
        name="rcan",
        task="sisr",
        build=RCAN,
        scales=(2, 3, 4, 8),
        summary="RCAN: 10 groups x 20 channel-attention blocks, 64 channels (15.4-15.6 M params)",
        config={"n_resgroups": 10, "n_resblocks": 20, "n_feats": 64, "reduction": 16},
    )
)
