"""SDFlow training (registry task ``flow``): EXPERIMENTAL, unpaired LR and HR photos.

The paper's loss equations could not be read (``sdflow_reference.md`` §6). The objective here is
built from what the flows define exactly, plus the leads §6 lists; every term is a named weight of
the ``flow:`` config section and a term of weight 0 is not computed. Sources:

[inferred] from the official code (exact likelihoods of the flows):
  nll_hr   bits/dim of the HR image: -(log|det| of HR + HF flow + log N(z_h'; 0, I)) / D_HR, no
           density for z_c (as the official ``HRFlow.forward``).
  nll_lr   bits/dim of the LR image given its content E(x_LR): -(log|det f_LR| + log|det f_Deg| +
           log GMM(z_d')) / D_LR with z_d = f_LR(x_LR) - E(x_LR). [assumption: E(x_LR) is treated
           as given, its gradient flows through z_d as in the official ``DegFlow`` call.]
  Bits/dim count 8-bit bins: images are dequantised (k + u) / 256 by the dataset
  (``flow.dequantize``) and log(128) per dimension converts model-space ([-1, 1]) densities.
[3rd-party lead, unverified] (an unofficial reimplementation; §6):
  content             L1 between low-passed content decodes g(z_c) = f_LR^-1(z_c) (zero
                      degradation) and low-passed BD(HR) (bicubic x1/4) resp. the LR image.
                      [ours: ``flow.content_hr_lowpass: false`` compares the HR pair unfiltered]
  content_perceptual  VGG L1 of the same decodes (``flow.perceptual_layer``).
  domain              least-squares GAN on content latents with a latent discriminator of its own
                      (Adam ``flow.d_lr``, stepped in ``after_step``). [assumption: both sides are
                      trained to fool it (SR feeds E(x_LR) to the HR flow, downscaling feeds the
                      HR z_c to the LR flow); its architecture (3 convs, no norm) is ours.]
  latent_reg, deg_reg the beta1 / beta2 regularisers: mean z_c² of both sides; mean (z_LR - sg(z_c))².
[assumption] (ours):
  mmd        RBF-kernel MMD² between 3x3 content-latent patches of both sides (a discriminator-free
             alternative to ``domain``).
  pixel_sr   L1 between low-passed BD(SR sample at ``flow.tau``) and the low-passed LR.
  pixel_ds   L1 between the low-passed downscaled sample and low-passed BD(HR).
  perceptual VGG L1 of the same two pairs (unpaired data: no sharper target exists).
Not implemented: image-space discriminators (3rd-party "backward" GAN terms) and any staged
schedule (3rd-party: backward terms after 50k iterations); set weights per run instead.
Gradient clipping: ``optim.grad_clip`` of the engine (3rd-party: 1.0); it clips the flows, not
the latent discriminator, whose learning rate stays constant (the engine schedules its own
optimizers only).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from zoomsr.errors import ZoomsrError
from zoomsr.train.config import TrainConfig
from zoomsr.train.tasks import Batch, Task, validate_on_benchmark

# The terms of the objective, in the order they are computed and logged.
TERMS = (
    "nll_hr",
    "nll_lr",
    "content",
    "content_perceptual",
    "domain",
    "mmd",
    "latent_reg",
    "deg_reg",
    "pixel_sr",
    "pixel_ds",
    "perceptual",
)
LOG_BIN = math.log(128)  # an 8-bit bin is 2/256 wide in model space [-1, 1]


class LatentDiscriminator(nn.Module):
    """Patch discriminator on content latents (N x 3 x h x w -> N x 1 x h x w). Ours: no norm
    layers (no batch statistics to synchronise), LeakyReLU 0.2."""

    def __init__(self, channels: int = 3, width: int = 64):
        super().__init__()
        act = nn.LeakyReLU(0.2)
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            act,
            nn.Conv2d(width, width, 3, padding=1),
            act,
            nn.Conv2d(width, width, 3, padding=1),
            act,
            nn.Conv2d(width, 1, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def gaussian_lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """5x5 Gaussian blur per channel, reflect padding (the 3rd-party LPF; ours to choose)."""
    t = torch.arange(5, dtype=x.dtype, device=x.device) - 2
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    kernel = (k[:, None] * k[None, :]).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def rbf_mmd(a: torch.Tensor, b: torch.Tensor, max_points: int = 512) -> torch.Tensor:
    """Biased MMD² with RBF kernels (bandwidths 0.5..4 per dimension) between the 3x3 patches of
    two latent batches, taken on a regular grid of at most ``max_points`` each (deterministic)."""

    def points(z: torch.Tensor) -> torch.Tensor:
        p = F.unfold(z, 3).transpose(1, 2).reshape(-1, z.shape[1] * 9)
        stride = max(1, math.ceil(len(p) / max_points))
        return p[::stride]

    pa, pb = points(a), points(b)
    dim = pa.shape[1]
    both = torch.cat([pa, pb])
    d2 = torch.cdist(both, both).square() / dim
    k = sum(torch.exp(-d2 / (2 * s**2)) for s in (0.5, 1.0, 2.0, 4.0))
    n = len(pa)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


class FlowTask(Task):
    """SDFlow's four networks trained together on unpaired LR/HR patches (module docstring)."""

    def __init__(self, cfg: TrainConfig, model: nn.Module, device: torch.device):
        from zoomsr.models.flow.sdflow import SDFlow

        if not isinstance(model, SDFlow):
            raise ZoomsrError(f"model '{cfg.model.name}' has no flow training recipe")
        f = cfg.flow
        self.cfg, self.model, self.device = cfg, model, device
        self.weights = {name: float(getattr(f, name)) for name in TERMS}
        bad = [k for k, v in self.weights.items() if v < 0 or not math.isfinite(v)]
        if bad:
            raise ZoomsrError(f"flow.{bad[0]} must be a finite weight >= 0")
        if not any(self.weights.values()):
            raise ZoomsrError("every flow.* loss weight is 0: nothing to train")
        if f.tau < 0:
            raise ZoomsrError(f"flow.tau must be >= 0, got {f.tau}")
        if f.lpf_sigma <= 0:
            raise ZoomsrError(f"flow.lpf_sigma must be > 0, got {f.lpf_sigma}")
        self.discriminator = None
        self.d_optimizer = None
        if self.weights["domain"] > 0:
            self.discriminator = LatentDiscriminator(3, f.d_channels).to(device).train()
            self.d_optimizer = torch.optim.Adam(
                self.discriminator.parameters(), lr=f.d_lr, betas=tuple(cfg.optim.betas)
            )
        self.perceptual = None
        if self.weights["content_perceptual"] > 0 or self.weights["perceptual"] > 0:
            from zoomsr.losses.perceptual import Perceptual

            self.perceptual = Perceptual(
                layers=(f.perceptual_layer,),
                backbone=f.backbone,
                criterion="l1",
                feature_scale=f.feature_scale,
            ).to(device)
            self.perceptual.requires_grad_(False)
            import re

            block = re.fullmatch(r"relu(\d)_\d", f.perceptual_layer)
            need = 2 ** (int(block.group(1)) - 1) if block else 1
            lr_patch = cfg.data.train.patch // cfg.model.scale
            if lr_patch < need:
                raise ZoomsrError(
                    f"the perceptual terms compare LR-size images at {f.perceptual_layer}, which "
                    f"needs them at least {need}px; the LR patch is {lr_patch}px: raise "
                    f"data.train.patch to {need * cfg.model.scale} or pick an earlier layer"
                )
        # Noise of the pixel terms' samples: one stream for the run, in state.pt; each process
        # keeps its samples' share of the global batch's draws (as ZoomTask's BatchDraws).
        self.rng = torch.Generator().manual_seed(cfg.run.seed)
        self.rank, self.world = 0, 1
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None
        self._d_loss: Callable | None = None

    @property
    def unused_parameters(self) -> bool:
        # Without both likelihoods some networks (the HF flow, the Deg flow) get no gradient.
        w = self.weights
        return not (w["nll_hr"] > 0 and w["nll_lr"] > 0)

    def distribute(self, rank: int, world: int, wrap: Callable) -> None:
        self.rank, self.world = rank, world
        if self.discriminator is not None:
            self._d_loss = wrap({"discriminator": self.discriminator}, self._discriminator_loss)

    # -- data -----------------------------------------------------------------------------

    def dataset(self) -> torch.utils.data.Dataset:
        from zoomsr.data.unpaired import UnpairedTrainSet

        d = self.cfg.data
        if not d.train.lr or not d.train.hr:
            raise ZoomsrError(
                "flow training needs unpaired photos: set data.train.lr (a folder of real LR "
                "images) and data.train.hr (folders of HR images)"
            )
        if d.train.degradation != "bicubic" or d.train.zoom:
            raise ZoomsrError(
                "flow training learns the degradation itself: leave data.train.degradation "
                "and data.train.zoom unset"
            )
        scale, patch = self.cfg.model.scale, d.train.patch
        if patch % (2 * scale) or patch < 4 * scale:
            raise ZoomsrError(
                f"data.train.patch {patch} must be a multiple of {2 * scale} and at least "
                f"{4 * scale} (the flows need even LR patches of at least 4 pixels)"
            )
        return UnpairedTrainSet.from_folders(
            [d.train.lr],
            list(d.train.hr),
            scale,
            patch,
            seed=self.cfg.run.seed,
            flip=d.flip,
            rot90=d.rot90,
            dequantize=self.cfg.flow.dequantize,
        )

    def param_groups(self) -> dict[str, tuple[list[nn.Parameter], float]]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return {"model": (params, self.cfg.optim.lr)}

    # -- objective ------------------------------------------------------------------------

    def _randn(self, shape) -> torch.Tensor:
        n = shape[0]
        full = torch.randn((n * self.world, *shape[1:]), generator=self.rng)
        return full[self.rank :: self.world]

    def _randint(self, high: int, n: int) -> torch.Tensor:
        return torch.randint(high, (n * self.world,), generator=self.rng)[self.rank :: self.world]

    def _vgg(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.perceptual(x, target)

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        from zoomsr.models.flow.flows import CONTENT_CHANNELS
        from zoomsr.models.flow.sdflow import to_model_space
        from zoomsr.ops.resize import imresize

        lr, hr = (t.to(self.device, non_blocking=True) for t in batch)
        w, m, f = self.weights, self.model, self.cfg.flow
        on = {k for k, v in w.items() if v > 0}
        x_lr, x_hr = to_model_space(lr), to_model_space(hr)
        lpf = lambda t: gaussian_lowpass(t, f.lpf_sigma)  # noqa: E731
        if self.discriminator is not None:  # the flows' step must not train D
            self.discriminator.requires_grad_(False)
        terms: dict[str, torch.Tensor] = {}

        # Forward passes first: ActNorm's data-dependent init happens in the first forward.
        hr_side = on & {"content", "content_perceptual", "domain", "mmd", "latent_reg"}
        hr_side |= on & {"pixel_ds", "perceptual"}
        z_c_hr = None
        if "nll_hr" in on:
            lat = m.hr_forward(x_hr)
            z_c_hr = lat.z_c
            ll = lat.log_likelihood / x_hr[0].numel()
            terms["nll_hr"] = ((LOG_BIN - ll) / math.log(2)).mean()
        elif hr_side:
            z_c_hr = m.hr_flow.content(x_hr)
        lr_side = on - {"nll_hr", "pixel_ds"}
        z_c_lr = m.content(x_lr) if lr_side else None
        if on & {"nll_lr", "deg_reg"}:
            z_lr, logdet_lr = m.lr_forward(x_lr)
            if "nll_lr" in on:
                z_dp, logdet_deg = m.deg_forward(z_lr - z_c_lr, z_c_lr)
                ll = (logdet_lr + logdet_deg + m.deg_flow.log_prior(z_dp)) / x_lr[0].numel()
                terms["nll_lr"] = ((LOG_BIN - ll) / math.log(2)).mean()
            if "deg_reg" in on:
                terms["deg_reg"] = (z_lr - z_c_lr.detach()).square().mean()

        bd = None
        if on & {"content", "content_perceptual", "pixel_ds", "perceptual"}:
            with torch.no_grad():
                bd = imresize(hr, 1 / self.cfg.model.scale)  # BD(y): float, differentiable path
        if on & {"content", "content_perceptual"}:
            g_hr = (m.lr_flow.reverse(z_c_hr) + 1) / 2  # f_LR^-1(z_c), z_d = 0, in [0, 1]
            g_lr = (m.lr_flow.reverse(z_c_lr) + 1) / 2
            if "content" in on:
                # BD(HR) is clean, so its side may be compared unfiltered: the filter exists for
                # the noisy real LR, and on the HR side it leaves z_c's high frequencies free.
                lpf_hr = lpf if f.content_hr_lowpass else (lambda t: t)
                terms["content"] = F.l1_loss(lpf_hr(g_hr), lpf_hr(bd)) + F.l1_loss(
                    lpf(g_lr), lpf(lr)
                )
            if "content_perceptual" in on:
                terms["content_perceptual"] = self._vgg(g_hr, bd) + self._vgg(g_lr, lr)
        if "domain" in on:
            d_lr, d_hr = self.discriminator(z_c_lr), self.discriminator(z_c_hr)
            # LSGAN, D labels HR content 1 and LR content 0; both sides are trained to swap them.
            terms["domain"] = 0.5 * (
                F.mse_loss(d_lr, torch.ones_like(d_lr)) + F.mse_loss(d_hr, torch.zeros_like(d_hr))
            )
            self._last = (z_c_hr.detach(), z_c_lr.detach())
        if "mmd" in on:
            terms["mmd"] = rbf_mmd(z_c_hr, z_c_lr)
        if "latent_reg" in on:
            terms["latent_reg"] = z_c_hr.square().mean() + z_c_lr.square().mean()

        if on & {"pixel_sr", "perceptual"}:
            n, _, h, wd = z_c_lr.shape
            noise = self._randn((n, 48 - CONTENT_CHANNELS, h, wd))
            sr = (m.sr_from_content(z_c_lr, f.tau, noise=noise) + 1) / 2
            sr_down = imresize(sr, 1 / self.cfg.model.scale)
            if "pixel_sr" in on:
                terms["pixel_sr"] = F.l1_loss(lpf(sr_down), lpf(lr))
        if on & {"pixel_ds", "perceptual"}:
            n, _, h, wd = z_c_hr.shape
            noise = self._randn((n, 4 * CONTENT_CHANNELS, h // 2, wd // 2))
            k = self._randint(len(m.deg_flow.means), n)
            ds = (m.lr_from_content(z_c_hr, f.tau, noise=noise, component=k)[0] + 1) / 2
            if "pixel_ds" in on:
                terms["pixel_ds"] = F.l1_loss(lpf(ds), lpf(bd))
        if "perceptual" in on:
            terms["perceptual"] = self._vgg(sr_down, lr) + self._vgg(ds, bd)

        total = sum(w[k] * terms[k] for k in TERMS if k in terms)
        return total, {k: float(v.detach()) for k, v in terms.items()}

    # -- the latent discriminator ---------------------------------------------------------

    def _discriminator_loss(self, z_hr: torch.Tensor, z_lr: torch.Tensor) -> torch.Tensor:
        d_hr, d_lr = self.discriminator(z_hr), self.discriminator(z_lr)
        return 0.5 * (
            F.mse_loss(d_hr, torch.ones_like(d_hr)) + F.mse_loss(d_lr, torch.zeros_like(d_lr))
        )

    def after_step(self) -> dict[str, float]:
        if self.discriminator is None or self._last is None:
            return {}
        self.discriminator.requires_grad_(True)
        d_loss = (self._d_loss or self._discriminator_loss)(*self._last)
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        self._last = None
        return {"D_latent": float(d_loss.detach())}

    # -- validation and state -------------------------------------------------------------

    def validate(self, model: nn.Module) -> dict[str, float] | None:
        """SR at tau = 0 on ``data.val.path`` (a benchmark folder; its LR is whatever that
        folder holds, bicubic by default, which is not SDFlow's target domain)."""
        return validate_on_benchmark(self.cfg, model, self.device)

    def state_dict(self) -> dict:
        state = {"rng": self.rng.get_state()}
        if self.discriminator is not None:
            state["discriminator"] = self.discriminator.state_dict()
            state["d_optimizer"] = self.d_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if "rng" in state:
            self.rng.set_state(state["rng"])
        if self.discriminator is not None:
            if state.get("discriminator") is None:
                raise ZoomsrError(
                    "cannot resume: the run trained no latent discriminator (flow.domain was 0); "
                    "start a new --out"
                )
            self.discriminator.load_state_dict(state["discriminator"])
            self.d_optimizer.load_state_dict(state["d_optimizer"])
