"""The early CNNs: SRCNN, FSRCNN, ESPCN and VDSR.

As in their papers they work on the Y channel (MATLAB YCbCr); colour (Cb, Cr) is upsampled
bicubically. SRCNN and VDSR refine a bicubic pre-upsampling; FSRCNN (deconvolution) and ESPCN
(sub-pixel convolution) upsample at the end.
"""

from __future__ import annotations

from torch import nn

from zoomsr.models.layers import LumaModel, conv
from zoomsr.models.registry import ModelSpec, register
from zoomsr.ops.resize import imresize


class SRCNN(LumaModel):
    """Dong et al. 2014, the 9-5-5 variant (64 and 32 filters)."""

    def __init__(self, scale: int = 2, kernels=(9, 5, 5), filters=(64, 32)):
        super().__init__(scale)
        k1, k2, k3 = kernels
        n1, n2 = filters
        self.body = nn.Sequential(
            conv(1, n1, k1), nn.ReLU(True), conv(n1, n2, k2), nn.ReLU(True), conv(n2, 1, k3)
        )

    def forward_y(self, y):
        return self.body(imresize(y, self.scale))


class FSRCNN(LumaModel):
    """Dong et al. 2016: feature extraction, shrinking, m mapping layers, expanding, deconvolution."""

    def __init__(self, scale: int = 2, d: int = 56, s: int = 12, m: int = 4):
        super().__init__(scale)
        layers = [conv(1, d, 5), nn.PReLU(d), conv(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [conv(s, s, 3), nn.PReLU(s)]
        layers += [conv(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        # A 9x9 deconvolution whose output is exactly scale x the input size.
        self.deconv = nn.ConvTranspose2d(d, 1, 9, stride=scale, padding=4, output_padding=scale - 1)

    def forward_y(self, y):
        return self.deconv(self.body(y))


class ESPCN(LumaModel):
    """Shi et al. 2016: two tanh conv layers and a sub-pixel convolution at LR resolution."""

    def __init__(self, scale: int = 2, filters=(64, 32)):
        super().__init__(scale)
        n1, n2 = filters
        self.body = nn.Sequential(
            conv(1, n1, 5),
            nn.Tanh(),
            conv(n1, n2, 3),
            nn.Tanh(),
            conv(n2, scale * scale, 3),
            nn.PixelShuffle(scale),
        )

    def forward_y(self, y):
        return self.body(y)


class VDSR(LumaModel):
    """Kim et al. 2016: 20 3x3 conv layers of 64 channels learning the bicubic residual."""

    def __init__(self, scale: int = 2, depth: int = 20, n_feats: int = 64):
        super().__init__(scale)
        layers = [conv(1, n_feats, 3), nn.ReLU(True)]
        for _ in range(depth - 2):
            layers += [conv(n_feats, n_feats, 3), nn.ReLU(True)]
        layers.append(conv(n_feats, 1, 3))
        self.body = nn.Sequential(*layers)

    def forward_y(self, y):
        up = imresize(y, self.scale)
        return up + self.body(up)


for _name, _cls, _summary in (
    ("srcnn", SRCNN, "SRCNN 9-5-5 on Y, bicubic pre-upsampling (57 K params)"),
    ("fsrcnn", FSRCNN, "FSRCNN (56, 12, 4) on Y, deconvolution upsampling"),
    ("espcn", ESPCN, "ESPCN on Y, sub-pixel convolution"),
    ("vdsr", VDSR, "VDSR: 20 layers on Y, global residual over bicubic"),
):
    register(ModelSpec(name=_name, task="sisr", build=_cls, scales=(2, 3, 4), summary=_summary))
