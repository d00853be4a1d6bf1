"""Adversarial training: discriminators and the vanilla, LSGAN and relativistic-average losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv_block(cin, cout, stride, norm=True):
    layers = [nn.Conv2d(cin, cout, 3, stride, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, True))
    return layers


class VGGDiscriminator(nn.Module):
    """SRGAN/ESRGAN-style: strided conv blocks, then global pooling (any input size)."""

    def __init__(self, in_ch: int = 3, nf: int = 64):
        super().__init__()
        chans = [nf, nf, 2 * nf, 2 * nf, 4 * nf, 4 * nf, 8 * nf, 8 * nf]
        layers = _conv_block(in_ch, chans[0], 1, norm=False)
        for i in range(1, len(chans)):
            layers += _conv_block(chans[i - 1], chans[i], 2 if i % 2 else 1)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(chans[-1], 100),
            nn.LeakyReLU(0.2, True),
            nn.Linear(100, 1),
        )

    def forward(self, x):
        return self.head(self.features(x))


class PatchDiscriminator(nn.Module):
    """PatchGAN (pix2pix, 70x70 receptive field): one logit per overlapping patch."""

    def __init__(self, in_ch: int = 3, nf: int = 64, n_layers: int = 3):
        super().__init__()
        layers = [nn.Conv2d(in_ch, nf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = nf
        for i in range(1, n_layers + 1):
            out = nf * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [
                nn.Conv2d(ch, out, 4, stride, 1, bias=False),
                nn.BatchNorm2d(out),
                nn.LeakyReLU(0.2, True),
            ]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


DISCRIMINATORS = {"vgg": VGGDiscriminator, "patch": PatchDiscriminator}
GAN_KINDS = ("vanilla", "lsgan", "ragan")


def _target_loss(kind: str, logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if kind == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def generator_adv_loss(kind: str, d_fake: torch.Tensor, d_real: torch.Tensor) -> torch.Tensor:
    """Adversarial loss of the generator (the real logits are detached)."""
    if kind == "ragan":
        d_real = d_real.detach()
        return 0.5 * (
            _target_loss(kind, d_real - d_fake.mean(), False)
            + _target_loss(kind, d_fake - d_real.mean(), True)
        )
    return _target_loss(kind, d_fake, True)


def discriminator_loss(kind: str, d_fake: torch.Tensor, d_real: torch.Tensor) -> torch.Tensor:
    """Loss of the discriminator (the fake logits come from detached outputs)."""
    if kind == "ragan":
        return 0.5 * (
            _target_loss(kind, d_real - d_fake.mean(), True)
            + _target_loss(kind, d_fake - d_real.mean(), False)
        )
    return 0.5 * (_target_loss(kind, d_real, True) + _target_loss(kind, d_fake, False))


class Adversarial(nn.Module):
    """The generator's GAN term; the trainer owns the discriminator and steps it."""

    def __init__(self, discriminator: nn.Module, kind: str = "ragan"):
        super().__init__()
        if kind not in GAN_KINDS:
            raise ValueError(f"unknown GAN kind '{kind}'")
        self.discriminator = discriminator
        self.kind = kind

    def forward(self, sr, hr, lr=None):
        return generator_adv_loss(self.kind, self.discriminator(sr), self.discriminator(hr))

    def discriminator_step_loss(self, sr, hr):
        return discriminator_loss(
            self.kind, self.discriminator(sr.detach()), self.discriminator(hr)
        )
