"""SDFlow's four flows (reference §2, §4): HR flow with its HF flow, LR flow, Deg flow.

All of them work in model space ([-1, 1] images) and return exact log-determinants in nats,
summed per sample. The latent layout follows the official code so that converted checkpoints
give the official numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoomsr.models.flow.layers import (
    FlowSequence,
    FlowStep,
    gaussian_log_prob,
    gaussian_sample,
    squeeze,
    transition,
    unsqueeze,
    zero_logdet,
)
from zoomsr.models.flow.rrdb import SLOPE, ConditionNet

Tensor = torch.Tensor

CONTENT_CHANNELS = 3  # z_c: the first 3 of the 48 HR latent channels (official split_size)


class ConditionalFlow(nn.Module):
    """z <-> z' given a condition (§3 "Conditional flow", paper: HF flow and Deg flow).

    u = ConditionNet(cond) (64 ch); with ``squeezes`` (Deg flow) u is space-to-depth'ed and
    projected back to 64 ch by a 1x1 conv + LeakyReLU, z is squeezed and passes a transition
    block. Then ``n_steps`` conditional flow steps, the last one without coupling.
    """

    def __init__(
        self,
        channels: int,
        cond_in: int,
        n_steps: int,
        n_rrdb: int,
        squeezes: bool = False,
        hidden: int = 64,
        cond_channels: int = 64,
    ):
        super().__init__()
        self.squeezes = squeezes
        self.cond_net = ConditionNet(cond_in, n_rrdb, cond_channels)
        if squeezes:
            self.cond_proj = nn.Conv2d(4 * cond_channels, cond_channels, 1)
            channels *= 4
            self.transition = transition(channels)
        self.steps = FlowSequence(
            FlowStep(channels, cond_channels, coupling=i < n_steps - 1, hidden=hidden)
            for i in range(n_steps)
        )

    def condition(self, cond: Tensor) -> Tensor:
        u = self.cond_net(cond)
        if self.squeezes:
            u = F.leaky_relu(self.cond_proj(squeeze(u)), SLOPE)
        return u

    def forward(self, z: Tensor, cond: Tensor, logdet: Tensor | None = None):
        """(z', logdet + log|det ∂z'/∂z|)."""
        logdet = zero_logdet(z) if logdet is None else logdet
        u = self.condition(cond)
        if self.squeezes:
            z, logdet = self.transition(squeeze(z), logdet)
        return self.steps(z, logdet, u)

    def reverse(self, z: Tensor, cond: Tensor) -> Tensor:
        u = self.condition(cond)
        z = self.steps.reverse(z, u)
        if self.squeezes:
            z = unsqueeze(self.transition.reverse(z))
        return z


class FlowLevel(nn.Module):
    """One HR-flow level: squeeze (x2 down), transition block, ``n_steps`` flow steps."""

    def __init__(self, c_in: int, n_steps: int, hidden: int = 64):
        super().__init__()
        channels = 4 * c_in
        self.transition = transition(channels)
        self.steps = FlowSequence(FlowStep(channels, hidden=hidden) for _ in range(n_steps))

    def forward(self, x: Tensor, logdet: Tensor):
        z, logdet = self.transition(squeeze(x), logdet)
        return self.steps(z, logdet)

    def reverse(self, z: Tensor) -> Tensor:
        return unsqueeze(self.transition.reverse(self.steps.reverse(z)))


@dataclass
class HRLatents:
    """What the HR flow makes of an HR image (model space)."""

    z_c: Tensor  # content, N x 3 x H/4 x W/4
    z_h: Tensor  # high-frequency part before the HF flow, N x 45 x H/4 x W/4
    z_h_prime: Tensor  # HF-flow output, N(0, I) under the model
    logdet_levels: Tensor  # log|det ∂(z_c, z_h)/∂x|, per sample
    logdet: Tensor  # log|det ∂(z_c, z_h')/∂x| = levels + HF flow
    log_prior: Tensor  # Σ log N(z_h'; 0, I)

    @property
    def z(self) -> Tensor:
        """The 48-channel latent before the split."""
        return torch.cat([self.z_c, self.z_h], 1)

    @property
    def log_likelihood(self) -> Tensor:
        """The official ``HRFlow.forward`` value: logdet + log N(z_h'), no density for z_c."""
        return self.logdet + self.log_prior


class HRFlow(nn.Module):
    """f_HR and f_HF (official ``HRFlow``, ``hrnet.pth``): HR image <-> (z_c, z_h').

    Two levels take 3 x H x W to 48 x H/4 x W/4; z_c = channels 0..2, z_h = 3..47; the HF flow
    maps z_h to z_h' conditioned on (a detached) z_c (§4).
    """

    def __init__(
        self,
        n_steps: int = 16,
        hf_steps: int = 8,
        hf_rrdbs: int = 8,
        hidden: int = 64,
        cond_channels: int = 64,
    ):
        super().__init__()
        self.levels = nn.ModuleList([FlowLevel(3, n_steps, hidden), FlowLevel(12, n_steps, hidden)])
        self.hf = ConditionalFlow(
            48 - CONTENT_CHANNELS,
            CONTENT_CHANNELS,
            hf_steps,
            hf_rrdbs,
            hidden=hidden,
            cond_channels=cond_channels,
        )

    def _levels(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logdet = zero_logdet(x)
        for level in self.levels:
            x, logdet = level(x, logdet)
        return x, logdet

    def content(self, x: Tensor) -> Tensor:
        """z_c alone (the downscaling path; the HF flow would only feed the likelihood)."""
        return self._levels(x)[0][:, :CONTENT_CHANNELS]

    def forward(self, x: Tensor) -> HRLatents:
        z, levels = self._levels(x)
        z_c, z_h = z[:, :CONTENT_CHANNELS], z[:, CONTENT_CHANNELS:]
        # The HF likelihood must not train the HR flow through the condition (official detach).
        z_h_prime, logdet = self.hf(z_h, z_c.detach(), levels)
        zero = z_h_prime.new_zeros(())
        prior = gaussian_log_prob(z_h_prime, zero, zero).sum(dim=(1, 2, 3))
        return HRLatents(z_c, z_h, z_h_prime, levels, logdet, prior)

    def reverse(self, z_c: Tensor, z_h_prime: Tensor) -> Tensor:
        z_h = self.hf.reverse(z_h_prime, z_c.detach())
        z = torch.cat([z_c, z_h], 1)
        for level in reversed(self.levels):
            z = level.reverse(z)
        return z


class LRFlow(nn.Module):
    """f_LR (official ``ContentFlow``, ``contentnet.pth``): LR image <-> z_LR, same shape.

    squeeze, transition, ``n_steps`` flow steps, transition, unsqueeze; LR sides must be even.
    """

    def __init__(self, n_steps: int = 16, hidden: int = 64):
        super().__init__()
        self.transition_in = transition(12)
        self.steps = FlowSequence(FlowStep(12, hidden=hidden) for _ in range(n_steps))
        self.transition_out = transition(12)

    def forward(self, x: Tensor, logdet: Tensor | None = None):
        logdet = zero_logdet(x) if logdet is None else logdet
        z, logdet = self.transition_in(squeeze(x), logdet)
        z, logdet = self.steps(z, logdet)
        z, logdet = self.transition_out(z, logdet)
        return unsqueeze(z), logdet

    def reverse(self, z: Tensor) -> Tensor:
        z = self.transition_out.reverse(squeeze(z))
        return unsqueeze(self.transition_in.reverse(self.steps.reverse(z)))


class DegFlow(ConditionalFlow):
    """f_Deg (official ``DegFlow``, ``degnet.pth``): z_d (3 x h x w) <-> z_d' (12 x h/2 x w/2)
    given z_c, with a 16-component scalar Gaussian mixture as base density (§4)."""

    def __init__(
        self,
        n_steps: int = 8,
        n_rrdb: int = 4,
        n_gaussians: int = 16,
        hidden: int = 64,
        cond_channels: int = 64,
    ):
        super().__init__(
            CONTENT_CHANNELS,
            CONTENT_CHANNELS,
            n_steps,
            n_rrdb,
            squeezes=True,
            hidden=hidden,
            cond_channels=cond_channels,
        )
        self.means = nn.Parameter(torch.randn(n_gaussians))
        self.log_stds = nn.Parameter(torch.zeros(n_gaussians))

    def log_prior(self, z: Tensor) -> Tensor:
        """Σ over elements of log[(1/K) Σ_k N(z; μ_k, σ_k²)] (independent per element, as the
        official density)."""
        per_k = gaussian_log_prob(z.unsqueeze(-1), self.means, self.log_stds)
        return (torch.logsumexp(per_k, -1) - math.log(len(self.means))).sum(dim=(1, 2, 3))

    def sample_base(self, shape, component: Tensor, eps: Tensor | None) -> Tensor:
        """One mixture component per image for all its elements (as the official sampler)."""
        mean = self.means[component].view(-1, 1, 1, 1)
        log_std = self.log_stds[component].view(-1, 1, 1, 1)
        return gaussian_sample(mean, log_std, eps).expand(shape)
