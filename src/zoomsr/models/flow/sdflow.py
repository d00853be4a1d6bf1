"""SDFlow (Sun & Chen, TPAMI 2024, arXiv 2310.04964): unpaired real-world x4 super-resolution
and downscaling with normalizing flows (reference ``sdflow_reference.md``).

Public API (images in [0, 1], NCHW): ``upscale(lr, tau)`` samples an SR image, ``downscale(hr,
tau)`` a real-world LR image; ``tau`` is the sampling temperature (0: the mode of the HF latent;
the official scripts use 0.8). Noise comes from ``generator`` or is given as a standard-normal
``noise`` tensor (scaled by ``tau`` here), so recorded draws can be replayed.

The flows themselves (``hr_forward``, ``lr_forward``, ``deg_forward`` and the ``*_flow``
submodules) work in the official model space [-1, 1] and return exact log-determinants.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

import torch
from torch import nn

from zoomsr.errors import ZoomsrError
from zoomsr.models.flow.encoder import LRContentEncoder
from zoomsr.models.flow.flows import CONTENT_CHANNELS, DegFlow, HRFlow, HRLatents, LRFlow
from zoomsr.models.flow.layers import gaussian_sample
from zoomsr.models.registry import ModelSpec, register

Tensor = torch.Tensor

# The downscaling script pads HR images at the bottom/right with this RGB colour (§5).
DS_PAD_RGB = (124, 116, 104)
DS_MULTIPLE = 8


@dataclass
class SDFlowConfig:
    """Repeat counts and widths; the defaults are the official model (14.10 M parameters).

    The parity fixture's reduced model is ``hr_steps=2, hf_steps=2, hf_rrdbs=1, lr_steps=2,
    deg_steps=2, deg_rrdbs=1, encoder_blocks=2``.
    """

    hr_steps: int = 16  # flow steps per HR-flow level (2 levels)
    hf_steps: int = 8  # conditional steps of the HF flow, the last one without coupling
    hf_rrdbs: int = 8  # RRDBs in the HF flow's condition net
    lr_steps: int = 16  # flow steps of the LR flow
    deg_steps: int = 8  # conditional steps of the Deg flow
    deg_rrdbs: int = 4  # RRDBs in the Deg flow's condition net
    encoder_blocks: int = 16  # FM-ResBlocks of the LR content encoder
    n_gaussians: int = 16  # components of the Deg base mixture
    hidden: int = 64  # coupling / injector network width
    cond_channels: int = 64  # condition-net width (RRDB growth stays 32)

    @classmethod
    def from_dict(cls, config: dict) -> SDFlowConfig:
        names = [f.name for f in dataclasses.fields(cls)]
        for key in config:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ZoomsrError(f"unknown SDFlow config key '{key}'{hint}")
        return cls(**config)


def to_model_space(x: Tensor) -> Tensor:
    return x * 2 - 1


def from_model_space(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clamped; NaNs become mid-grey (the official scripts draw random
    values for them)."""
    return torch.nan_to_num((x + 1) / 2, nan=0.5).clamp(0, 1)


def _check_image(x: Tensor, what: str, multiple: int, min_side: int) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ZoomsrError(f"SDFlow needs an N x 3 x H x W {what}, got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple or min(h, w) < min_side:
        rule = f"multiples of {multiple}, at least {min_side}" if multiple > 1 else f">= {min_side}"
        raise ZoomsrError(f"SDFlow needs {what} sides {rule}; got {h}x{w}")


def _draw_eps(
    shape, tau: float, generator: torch.Generator | None, noise: Tensor | None, device
) -> Tensor | None:
    """tau·noise, noise ~ N(0, I) from one ``randn`` call on ``generator`` unless given (a
    generator seeded as the official script gives its draws); None at tau ≈ 0 (official rule)."""
    if tau < 1e-6:
        return None
    if noise is None:
        where = generator.device if generator is not None else device
        noise = torch.randn(shape, generator=generator, device=where)
    elif tuple(noise.shape) != tuple(shape):
        raise ZoomsrError(f"SDFlow noise must be {tuple(shape)}, got {tuple(noise.shape)}")
    return tau * noise.to(device)


class SDFlow(nn.Module):
    """The four networks of SDFlow: ``lr_encoder`` (E, LR -> z_c), ``hr_flow`` (f_HR and f_HF),
    ``lr_flow`` (f_LR) and ``deg_flow`` (f_Deg). z_LR = f_LR(x_LR) = z_c + z_d (§2).

    SR: z_c = E(lr); z_h' ~ N(0, tau²); sr = f_HR⁻¹(z_c, f_HF⁻¹(z_h' | z_c)).
    Downscaling: z_c from f_HR(hr); one mixture component k per image, z_d' = μ_k + σ_k·eps;
    lr = f_LR⁻¹(z_c + f_Deg⁻¹(z_d' | z_c)).
    """

    def __init__(self, config: SDFlowConfig | None = None, scale: int = 4):
        super().__init__()
        if scale != 4:
            raise ZoomsrError(f"SDFlow is a x4 model (two HR-flow levels); got scale {scale}")
        cfg = config or SDFlowConfig()
        self.cfg, self.scale = cfg, scale
        widths = dict(hidden=cfg.hidden, cond_channels=cfg.cond_channels)
        self.lr_encoder = LRContentEncoder(cfg.encoder_blocks)
        self.hr_flow = HRFlow(cfg.hr_steps, cfg.hf_steps, cfg.hf_rrdbs, **widths)
        self.lr_flow = LRFlow(cfg.lr_steps, cfg.hidden)
        self.deg_flow = DegFlow(cfg.deg_steps, cfg.deg_rrdbs, cfg.n_gaussians, **widths)

    # -- flows in model space -----------------------------------------------------------------

    def content(self, lr: Tensor) -> Tensor:
        """z_c of a model-space LR image (the LR content feature extractor)."""
        return self.lr_encoder(lr)

    def hr_forward(self, hr: Tensor) -> HRLatents:
        return self.hr_flow(hr)

    def lr_forward(self, lr: Tensor) -> tuple[Tensor, Tensor]:
        """(z_LR, log|det ∂z_LR/∂x_LR|)."""
        return self.lr_flow(lr)

    def deg_forward(self, z_d: Tensor, z_c: Tensor) -> tuple[Tensor, Tensor]:
        """(z_d', log|det ∂z_d'/∂z_d|); ``deg_flow.log_prior(z_d')`` adds the mixture density."""
        return self.deg_flow(z_d, z_c)

    def sr_from_content(
        self,
        z_c: Tensor,
        tau: float = 0.0,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Model-space SR image for content latents z_c (N x 3 x h x w -> N x 3 x 4h x 4w)."""
        shape = (z_c.shape[0], 48 - CONTENT_CHANNELS, *z_c.shape[-2:])
        eps = _draw_eps(shape, tau, generator, noise, z_c.device)
        z_h_prime = gaussian_sample(z_c.new_zeros(shape), z_c.new_zeros(()), eps)
        return self.hr_flow.reverse(z_c, z_h_prime)

    def lr_from_content(
        self,
        z_c: Tensor,
        tau: float = 0.0,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        component: Tensor | int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(model-space LR image, its degradation latent z_d) for content latents z_c.

        Draw order from ``generator``: the noise (if tau > 0), then the components.
        """
        n, _, h, w = z_c.shape
        shape = (n, 4 * CONTENT_CHANNELS, h // 2, w // 2)
        eps = _draw_eps(shape, tau, generator, noise, z_c.device)
        k = len(self.deg_flow.means)
        if component is None:
            where = generator.device if generator is not None else z_c.device
            component = torch.randint(k, (n,), generator=generator, device=where)
        component = torch.as_tensor(component, device=z_c.device).long().reshape(-1)
        if component.numel() not in (1, n) or component.min() < 0 or component.max() >= k:
            raise ZoomsrError(f"SDFlow components must be one or {n} integers in 0..{k - 1}")
        component = component.expand(n)
        z_d = self.deg_flow.reverse(self.deg_flow.sample_base(shape, component, eps), z_c)
        return self.lr_flow.reverse(z_c + z_d), z_d

    # -- images in [0, 1] ---------------------------------------------------------------------

    def upscale(
        self,
        lr: Tensor,
        tau: float = 0.0,
        *,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """x4 SR sample of ``lr`` (N x 3 x h x w, any h, w >= 2); ``noise``: N x 45 x h x w."""
        _check_image(lr, "LR", 1, 2)
        z_c = self.content(to_model_space(lr))
        return from_model_space(self.sr_from_content(z_c, tau, generator, noise))

    def downscale(
        self,
        hr: Tensor,
        tau: float = 0.0,
        *,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
        component: Tensor | int | None = None,
    ) -> Tensor:
        """x1/4 real-world LR sample of ``hr`` (sides multiples of 4).

        As the official script, the HR is padded at the bottom/right to a multiple of 8 with
        RGB (124, 116, 104) and the LR cropped back. ``noise``: N x 12 x H'/8 x W'/8 (H', W'
        the padded size); ``component``: the mixture component per image (random if None).
        """
        _check_image(hr, "HR", 4, 12)  # the Deg flow needs >= 2x2 latents
        h, w = hr.shape[-2:]
        x = to_model_space(hr)
        pad_h, pad_w = -h % DS_MULTIPLE, -w % DS_MULTIPLE
        if pad_h or pad_w:
            fill = torch.tensor(DS_PAD_RGB, dtype=x.dtype, device=x.device) / 255 * 2 - 1
            canvas = fill.view(1, 3, 1, 1).expand(x.shape[0], 3, h + pad_h, w + pad_w).clone()
            canvas[:, :, :h, :w] = x
            x = canvas
        z_c = self.hr_flow.content(x)
        lr, _ = self.lr_from_content(z_c, tau, generator, noise, component)
        return from_model_space(lr[:, :, : h // 4, : w // 4])

    def forward(self, lr: Tensor) -> Tensor:
        """The single-image SR signature: the tau = 0 SR image."""
        return self.upscale(lr, 0.0)


def build_sdflow(scale: int = 4, **config) -> SDFlow:
    return SDFlow(SDFlowConfig.from_dict(config), scale)


register(
    ModelSpec(
        name="sdflow",
        task="flow",
        build=build_sdflow,
        scales=(4,),
        default_scale=4,
        summary="SDFlow (TPAMI 2024): unpaired real-world x4 SR and downscaling flows, 14.10 M params",
    )
)

__all__ = ["SDFlow", "SDFlowConfig", "build_sdflow", "from_model_space", "to_model_space"]
