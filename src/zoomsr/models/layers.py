"""Building blocks shared by the SISR models (EDSR-PyTorch conventions and key names)."""

from __future__ import annotations

import math

import torch
from torch import nn

from zoomsr.ops.color import rgb_to_ycbcr, ycbcr_to_rgb
from zoomsr.ops.resize import imresize

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def conv(in_ch: int, out_ch: int, kernel: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=bias)


class MeanShift(nn.Conv2d):
    """Adds (sign=+1) or subtracts (sign=-1) the dataset mean as a frozen 1x1 conv.

    Kept as a stored conv, as EDSR-PyTorch does, so official checkpoints (which store it) load
    unchanged and fine-tuned values are honoured.
    """

    def __init__(self, rgb_range: float, mean=DIV2K_RGB_MEAN, std=(1.0, 1.0, 1.0), sign: int = -1):
        super().__init__(3, 3, kernel_size=1)
        std_t = torch.tensor(std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std_t.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(mean) / std_t
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    """conv-ReLU-conv, scaled by ``res_scale``, plus the input (EDSR)."""

    def __init__(self, n_feats: int, kernel: int = 3, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(
            conv(n_feats, n_feats, kernel), nn.ReLU(True), conv(n_feats, n_feats, kernel)
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mul(self.res_scale) + x


class Upsampler(nn.Sequential):
    """Sub-pixel upsampling: log2(s) x (conv to 4C, shuffle 2), or conv to 9C, shuffle 3."""

    def __init__(self, scale: int, n_feats: int):
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [conv(n_feats, 4 * n_feats, 3), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [conv(n_feats, 9 * n_feats, 3), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"sub-pixel upsampler supports scales 2^n and 3, not {scale}")
        super().__init__(*layers)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention (RCAN's CALayer)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class LumaModel(nn.Module):
    """Runs a one-channel network on Y and upsamples Cb/Cr bicubically (SRCNN-era recipe).

    Subclasses implement ``forward_y(y_lr) -> y_sr`` on Y in [0, 1] (MATLAB YCbCr).
    """

    in_channels = 3

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward_y(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        if lr.shape[1] == 1:
            return self.forward_y(lr)
        ycc = rgb_to_ycbcr(lr)
        y = self.forward_y(ycc[:, :1])
        cbcr = imresize(ycc[:, 1:], self.scale)
        return ycbcr_to_rgb(torch.cat([y, cbcr], dim=1))


class MeanShiftFrame(nn.Module):
    """EDSR-PyTorch's frame: x rgb_range, subtract the mean, head, body + global skip, tail, add
    the mean, / rgb_range. Subclasses build ``head``, ``body`` and ``tail``. Working on 0..255
    inside keeps official checkpoints exact; callers still see [0, 1]."""

    in_channels = 3

    def __init__(self, scale: int, rgb_range: float = 255.0):
        super().__init__()
        self.scale = scale
        self.rgb_range = rgb_range
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.sub_mean(x * self.rgb_range))
        x = self.body(x) + x
        return self.add_mean(self.tail(x)) / self.rgb_range
