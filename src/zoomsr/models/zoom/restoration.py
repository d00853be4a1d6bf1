"""SelfDZSR restoration module: fusion, modulated residual body, sub-pixel upsampler.

The LR features ``h`` (after AdaSTN alignment) and the warped Ref features are fused by one conv;
16 residual blocks then scale their input channel-wise by ``1 + MLP(v)``, where ``v`` is a
global vector that the :class:`ModulationEncoder` computes from the LR centre, the Ref and the
fused features. Reference: selfdzsr_reference.md §3.5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoomsr.models.layers import DIV2K_RGB_MEAN, Upsampler, conv


class RGBMeanShift(nn.Conv2d):
    """Adds (sign=+1) or subtracts (sign=-1) the DIV2K RGB mean: a frozen depthwise 1x1 conv.

    Depthwise (3 weights + 3 biases), unlike :class:`zoomsr.models.layers.MeanShift`, because
    that is the SelfDZSR layout: its checkpoints store these six values and its published
    parameter counts include them.
    """

    def __init__(self, sign: int = -1, mean: tuple[float, float, float] = DIV2K_RGB_MEAN):
        super().__init__(3, 3, kernel_size=1, groups=3)
        self.weight.data = torch.ones(3, 1, 1, 1)
        self.bias.data = sign * torch.tensor(mean)
        self.requires_grad_(False)


class ModulatedResBlock(nn.Module):
    """``x + conv(ReLU(conv(x * (1 + MLP(v)))))``: the skip adds the *unmodulated* input."""

    def __init__(self, n_feats: int = 64, mlp_feats: int = 4):
        super().__init__()
        self.body = nn.Sequential(
            conv(n_feats, n_feats, 3), nn.ReLU(inplace=True), conv(n_feats, n_feats, 3)
        )
        # 1x1 convs act on the N x C x 1 x 1 modulation vector; no sigmoid (official behaviour).
        self.mlp = nn.Sequential(
            nn.Conv2d(n_feats, mlp_feats, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mlp_feats, n_feats, 1),
        )

    def forward(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return x + self.body(x * self.mlp(v) + x)


class ModulationEncoder(nn.Module):
    """Global modulation vector ``v`` (N x C x 1 x 1) from (LR centre, Ref, fused features).

    The LR centre (the LR region the Ref shows) is upsampled to the Ref size and stacked with the
    Ref; the fused features are resized to the same grid; a strided conv stack and a global
    average pool reduce them to one vector per image.
    """

    def __init__(self, n_feats: int = 64, n_down: int = 4):
        super().__init__()
        self.shift = RGBMeanShift(-1)
        self.image_head = nn.Sequential(conv(6, n_feats, 3), nn.ReLU(inplace=True))
        layers: list[nn.Module] = [conv(2 * n_feats, n_feats, 3), nn.ReLU(inplace=True)]
        for _ in range(n_down):
            layers += [nn.Conv2d(n_feats, n_feats, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.body = nn.Sequential(*layers)

    def forward(
        self, lr_centre: torch.Tensor, ref: torch.Tensor, fused: torch.Tensor
    ) -> torch.Tensor:
        size = ref.shape[-2:]
        up = F.interpolate(lr_centre, size=size, mode="bilinear", align_corners=True)
        e = self.image_head(torch.cat([self.shift(up), self.shift(ref)], dim=1))
        fused = F.interpolate(fused, size=size, mode="bilinear", align_corners=True)
        return self.body(torch.cat([e, fused], dim=1))


class Restoration(nn.Module):
    """LR head, fusion with the Ref features, modulated body, upsampler and tail.

    Use :meth:`embed` for ``h = head(lr)`` (it also feeds the AdaSTNs outside this module), then
    :meth:`forward` with the aligned ``h`` and the Ref features.
    """

    def __init__(self, scale: int = 4, n_feats: int = 64, n_blocks: int = 16):
        super().__init__()
        self.head = nn.Sequential(RGBMeanShift(-1), conv(3, n_feats, 3))
        self.fuse = nn.Sequential(conv(2 * n_feats, n_feats, 3), nn.LeakyReLU(0.1, inplace=True))
        self.predictor = ModulationEncoder(n_feats)
        self.blocks = nn.ModuleList(ModulatedResBlock(n_feats) for _ in range(n_blocks))
        self.body_out = conv(n_feats, n_feats, 3)
        self.upsampler = Upsampler(scale, n_feats)
        self.tail = nn.Sequential(conv(n_feats, 3, 3), RGBMeanShift(+1))

    def embed(self, lr: torch.Tensor) -> torch.Tensor:
        return self.head(lr)

    def fuse_features(self, h: torch.Tensor, ref_feat: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([h, ref_feat], dim=1))

    def decode(self, h: torch.Tensor, fused: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """SR image from the aligned LR features, the fused features and the modulation vector."""
        x = fused
        for block in self.blocks:
            x = block(x, v)
        # Global skip adds the AdaSTN-aligned LR features h, not the fused features.
        return self.tail(self.upsampler(self.body_out(x) + h))

    def forward(
        self, h: torch.Tensor, ref_feat: torch.Tensor, lr_centre: torch.Tensor, ref: torch.Tensor
    ) -> torch.Tensor:
        fused = self.fuse_features(h, ref_feat)
        return self.decode(h, fused, self.predictor(lr_centre, ref, fused))
