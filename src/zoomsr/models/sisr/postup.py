"""``postup``: the course's exercise model (post-upsampling with a global bicubic residual).

5x5 conv 32 - ReLU - 3x3 conv 64 - ReLU - 3x3 conv (64 s^2) - PixelShuffle(s) - 3x3 conv 3,
plus the bicubic-upsampled input.
"""

from __future__ import annotations

from torch import nn

from zoomsr.models.layers import conv
from zoomsr.models.registry import ModelSpec, register
from zoomsr.ops.resize import imresize


class PostUpsampling(nn.Module):
    in_channels = 3

    def __init__(self, scale: int = 2, filters=(32, 64)):
        super().__init__()
        self.scale = scale
        n1, n2 = filters
        self.body = nn.Sequential(
            conv(3, n1, 5),
            nn.ReLU(True),
            conv(n1, n2, 3),
            nn.ReLU(True),
            conv(n2, n2 * scale * scale, 3),
            nn.PixelShuffle(scale),
            conv(n2, 3, 3),
        )

    def forward(self, x):
        return imresize(x, self.scale) + self.body(x)


register(
    ModelSpec(
        name="postup",
        task="sisr",
        build=PostUpsampling,
        scales=(2, 3, 4),
        summary="course exercise: 3 convs + PixelShuffle + conv, global bicubic residual",
    )
)
