"""Invertible building blocks of SDFlow (reference ``sdflow_reference.md`` §3).

Every invertible layer has ``forward(x, logdet, cond=None) -> (y, logdet)``, where ``logdet`` is
the running per-sample sum of log|det J| in nats (shape ``(N,)``), and ``reverse(y, cond=None)
-> x``. The log-determinants are exact (closed form per layer), never estimated.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor

FLOW_SLOPE = 0.01  # LeakyReLU slope inside coupling / injector nets (§3, quirk 11)
LOG_2PI = math.log(2 * math.pi)


def squeeze(x: Tensor) -> Tensor:
    """The official "checkboard" squeeze is plain space-to-depth (§3, quirk 10)."""
    return F.pixel_unshuffle(x, 2)


def unsqueeze(x: Tensor) -> Tensor:
    return F.pixel_shuffle(x, 2)


def zero_logdet(x: Tensor) -> Tensor:
    return x.new_zeros(x.shape[0])


class ActNorm(nn.Module):
    """y = exp(log_scale)·(x + loc), per channel (§3 "ActNorm").

    The first forward in training mode sets loc and log_scale from the batch statistics (Glow's
    data-dependent init; averaged over ranks under ``torch.distributed``) and flips
    ``initialized``. Converted checkpoints carry ``initialized = 1``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, channels, 1, 1))
        # Identity until the data-dependent init; the official code starts at log_scale = 1.
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        stats = torch.stack([x.mean((0, 2, 3)), x.square().mean((0, 2, 3))])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(stats)
            stats /= torch.distributed.get_world_size()
        mean, var = stats[0], stats[1] - stats[0].square()
        var = torch.where(var < 1e-4, torch.ones_like(var), var)  # flat channels keep scale 1
        self.loc.copy_(-mean.view_as(self.loc))
        self.log_scale.copy_(-torch.log(var.sqrt() + 1e-6).view_as(self.log_scale))
        self.initialized.fill_(1)

    def forward(self, x: Tensor, logdet: Tensor, cond: Tensor | None = None):
        if self.training and not self.initialized:
            self._initialize(x)
        h, w = x.shape[-2:]
        return torch.exp(self.log_scale) * (x + self.loc), logdet + h * w * self.log_scale.sum()

    def reverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        return y * torch.exp(-self.log_scale) - self.loc


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution in Glow's LU form (§3 "Invertible 1x1 conv").

    W = P · (L ⊙ strict-lower + I) · (U ⊙ strict-upper + diag(sign · exp(w_s))); the permutation
    ``perm`` and ``sign`` are fixed buffers, log|det W| = Σ w_s per pixel.
    """

    def __init__(self, channels: int):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels))
        p, lower, upper = torch.linalg.lu(q)
        diag = torch.diagonal(upper)
        self.register_buffer("perm", p)
        self.register_buffer("sign", torch.sign(diag))
        self.w_l = nn.Parameter(lower)
        self.w_s = nn.Parameter(torch.log(diag.abs()))
        self.w_u = nn.Parameter(torch.triu(upper, 1))
        ones = torch.ones(channels, channels)
        # Constants (the official checkpoints store them; the converter checks them).
        self.register_buffer("lower_mask", torch.tril(ones, -1), persistent=False)
        self.register_buffer("upper_mask", torch.triu(ones, 1), persistent=False)
        self.register_buffer("eye", torch.eye(channels), persistent=False)

    def weight(self) -> Tensor:
        lower = self.w_l * self.lower_mask + self.eye
        upper = self.w_u * self.upper_mask + torch.diag(self.sign * torch.exp(self.w_s))
        return self.perm @ lower @ upper

    def forward(self, x: Tensor, logdet: Tensor, cond: Tensor | None = None):
        h, w = x.shape[-2:]
        y = F.conv2d(x, self.weight()[:, :, None, None])
        return y, logdet + h * w * self.w_s.sum()

    def reverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        return F.conv2d(y, torch.linalg.inv(self.weight())[:, :, None, None])


class ZeroConv(nn.Module):
    """Zero-initialised 3x3 conv whose output is scaled by exp(3·logs) (§3, quirk 13)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.logs = nn.Parameter(torch.zeros(1, c_out, 1, 1))
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * torch.exp(3 * self.logs)


class CouplingNet(nn.Module):
    """The coupling / injector network (§3 "Coupling network"): reflect 3x3, 1x1, ZeroConv."""

    def __init__(self, c_in: int, c_out: int, hidden: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, hidden, 3, padding=1, padding_mode="reflect")
        self.conv2 = nn.Conv2d(hidden, hidden, 1)
        self.out = ZeroConv(hidden, c_out)
        for conv in (self.conv1, self.conv2):
            nn.init.xavier_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = F.leaky_relu(self.conv1(x), FLOW_SLOPE)
        x = F.leaky_relu(self.conv2(x), FLOW_SLOPE)
        return self.out(x)


def _scale_shift(h: Tensor) -> tuple[Tensor, Tensor]:
    """Even channels -> bounded log-scale 0.318·atan(2·raw) in (-0.5, 0.5), odd -> shift."""
    return 0.318 * torch.atan(2 * h[:, 0::2]), h[:, 1::2]


class AffineCoupling(nn.Module):
    """x_b -> (x_b + t)·exp(s), with (s, t) from [x_a, cond]; x_a = first floor(C/2) channels."""

    def __init__(self, channels: int, cond_channels: int = 0, hidden: int = 64):
        super().__init__()
        self.split = channels // 2
        self.net = CouplingNet(self.split + cond_channels, 2 * (channels - self.split), hidden)

    def _params(self, x_a: Tensor, cond: Tensor | None):
        return _scale_shift(self.net(x_a if cond is None else torch.cat([x_a, cond], 1)))

    def forward(self, x: Tensor, logdet: Tensor, cond: Tensor | None = None):
        x_a, x_b = x[:, : self.split], x[:, self.split :]
        s, t = self._params(x_a, cond)
        y_b = (x_b + t) * torch.exp(s)
        return torch.cat([x_a, y_b], 1), logdet + s.sum(dim=(1, 2, 3))

    def reverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        y_a, y_b = y[:, : self.split], y[:, self.split :]
        s, t = self._params(y_a, cond)
        return torch.cat([y_a, y_b * torch.exp(-s) - t], 1)


class AffineInjector(nn.Module):
    """All channels -> (x + t)·exp(s), with (s, t) from the condition only (§3 "injector")."""

    def __init__(self, channels: int, cond_channels: int, hidden: int = 64):
        super().__init__()
        self.net = CouplingNet(cond_channels, 2 * channels, hidden)

    def forward(self, x: Tensor, logdet: Tensor, cond: Tensor | None = None):
        s, t = _scale_shift(self.net(cond))
        return (x + t) * torch.exp(s), logdet + s.sum(dim=(1, 2, 3))

    def reverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        s, t = _scale_shift(self.net(cond))
        return y * torch.exp(-s) - t


class FlowSequence(nn.ModuleList):
    """Invertible layers applied in order, reversed in the opposite order."""

    def forward(self, x: Tensor, logdet: Tensor, cond: Tensor | None = None):
        for layer in self:
            x, logdet = layer(x, logdet, cond)
        return x, logdet

    def reverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        for layer in reversed(self):
            y = layer.reverse(y, cond)
        return y


class TransitionStep(nn.Module):
    """ActNorm then invertible 1x1 (§3 "Transition step"); two make a transition block."""

    def __init__(self, channels: int):
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.invconv = InvConv1x1(channels)

    def forward(self, x: Tensor, logdet: Tensor, cond: Tensor | None = None):
        x, logdet = self.actnorm(x, logdet)
        return self.invconv(x, logdet)

    def reverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.actnorm.reverse(self.invconv.reverse(y))


def transition(channels: int, n: int = 2) -> FlowSequence:
    return FlowSequence([TransitionStep(channels) for _ in range(n)])


class FlowStep(nn.Module):
    """ActNorm -> inv 1x1 -> [injector(cond)] -> [coupling(x_a, cond)] (§3 "Flow step").

    ``cond_channels = 0``: unconditional step (no injector). ``coupling=False``: the last step
    of a conditional flow.
    """

    def __init__(
        self, channels: int, cond_channels: int = 0, coupling: bool = True, hidden: int = 64
    ):
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.invconv = InvConv1x1(channels)
        self.injector = AffineInjector(channels, cond_channels, hidden) if cond_channels else None
        self.coupling = AffineCoupling(channels, cond_channels, hidden) if coupling else None

    def forward(self, x: Tensor, logdet: Tensor, cond: Tensor | None = None):
        x, logdet = self.actnorm(x, logdet)
        x, logdet = self.invconv(x, logdet)
        if self.injector is not None:
            x, logdet = self.injector(x, logdet, cond)
        if self.coupling is not None:
            x, logdet = self.coupling(x, logdet, cond)
        return x, logdet

    def reverse(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        if self.coupling is not None:
            y = self.coupling.reverse(y, cond)
        if self.injector is not None:
            y = self.injector.reverse(y, cond)
        return self.actnorm.reverse(self.invconv.reverse(y))


# -- base densities (§3 "Gaussian helpers") -------------------------------------------------------


def gaussian_log_prob(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Element-wise log N(x; mean, exp(log_std)²), with the official 1e-6 in the variance."""
    return -0.5 * (2 * log_std + (x - mean) ** 2 / (torch.exp(2 * log_std) + 1e-6) + LOG_2PI)


def gaussian_sample(mean: Tensor, log_std: Tensor, eps: Tensor | None) -> Tensor:
    """mean + (std + 1e-6)·eps, eps ~ N(0, tau²); the mean itself at tau = 0 (``eps=None``)."""
    if eps is None:
        return mean
    return mean + (torch.exp(log_std) + 1e-6) * eps
