"""ZSSR: "Zero-Shot" Super-Resolution using Deep Internal Learning (Shocher, Cohen, Irani, CVPR 2018).

An image-specific network is trained at test time on the test image alone: random augmented
crops of the image ("HR fathers") are downscaled ("LR sons", with the bicubic kernel or a given
SR kernel) and the network learns to undo that, then super-resolves the image itself.

The recipe of the paper and its official code (configs.py defaults):
- network: 8 conv 3x3 layers, 64 channels, ReLU, no biases, weights N(0, 0.1 / fan_in), learning
  the residual over the bicubic upscaling of the son; L1 loss; Adam at 1e-3;
- fathers: 128x128 crops; with p = 0.05 the image as is, p = 0.45 an exact 90-degree rotation
  and/or mirror, else an affine warp (scale U(0.5, 1) with aspect jitter σ 0.25, any rotation,
  shear σ 0.1); here the crop centres are drawn in proportion to the local gradient magnitude
  (KernelGAN's crop sampler), so flat sky is seen less often than texture;
- learning-rate policy: every 60 iterations (after at least 256 at a rate) a line is fitted to
  the reconstruction errors of the last 256 iterations (measured every 50); when the fitted slope
  is not clearly negative (``-1.5 * slope < std(slope)``) the rate drops tenfold; training stops
  below 9e-6 or after 3000 iterations;
- output: x8 geometric self-ensemble (median), each member and the median back-projected
  10 times;
- with a given (possibly asymmetric) kernel, the recipe of KernelGAN's ZSSR
  (``ZSSRforKernelGAN/zssr_configs.py``): fathers are plain crops (no warps, rotations or
  mirrors) at uniform positions, the L1 loss is weighted per pixel by the local gradient
  magnitude (5x5 sum, mean 1), no ensemble and 2 back-projections;
- large factors go in steps (e.g. x4 = x2 then x4), each output joining the fathers' sources;
  steps may be anisotropic, as in the official gradual x2 (``GRADUAL_X2``: x1 x1.5, x1.5 x1,
  x1.5, x1.5 x2, x2 x1.5, x2, with 6-12 back-projections); the network carries over from step
  to step with a fresh Adam (the official code keeps Adam's moments: see ``_train``);
- fathers' crops: ``crop_sampling="official"`` places them as the official code does (uniform,
  reaching into black past the border of small or shrunk images); the default keeps them inside.

Speed (2 CPU cores): fathers are made a chunk at a time by one batched ``grid_sample`` and
batched resizes; evaluation runs channels-last in ``inference_mode`` and full-image passes are
tiled with an exact margin (training runs channels-last on CUDA only: see ``channels_last``).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoomsr.errors import ZoomsrError
from zoomsr.models.registry import ModelSpec, register
from zoomsr.models.zeroshot.kernels import align_kernel
from zoomsr.ops.degrade.kernels import blur_downsample
from zoomsr.ops.resize import axis_order, resize_axes

Progress = Callable[[Iterable, str], Iterable]


@dataclass
class ZSSRConfig:
    """ZSSR hyper-parameters; defaults are the official configs.py ones unless noted."""

    iterations: int = 3000  # most iterations per scale step
    min_iterations: int = 256  # at one learning rate before it may drop
    learning_rate: float = 1e-3
    min_learning_rate: float = 9e-6  # training stops below this
    lr_change_ratio: float = 1.5
    lr_check_every: int = 60
    lr_slope_range: int = 256
    test_every: int = 50
    test_max_side: int = (
        256  # reconstruction test on at most this LR centre crop (speed; not official)
    )
    width: int = 64
    depth: int = 8
    init_variance: float = 0.1
    crop_size: int = 128
    batch_size: int = 1  # fathers per iteration (official: 1)
    chunk: int = 32  # fathers made per batched augmentation call
    noise_std: float = 0.0  # noise added to the sons (real, noisy images)
    leave_as_is_probability: float = 0.05
    no_interpolate_probability: float = 0.45
    min_scale: float = 0.5
    scale_diff_sigma: float = 0.25
    shear_sigma: float = 0.1
    # Where fathers' crops lie. None: "gradient" with the bicubic kernel (zoomsr), "uniform"
    # with a given one (KernelGAN's ZSSR); "official": the official random_augment placement.
    crop_sampling: str | None = None
    augment: bool | None = None  # warps/rotations of fathers; None: with the bicubic kernel only
    loss_map: bool | None = None  # gradient-weighted L1; None: with a given kernel only
    allow_rotation: bool | None = None  # None: with the bicubic kernel only
    ensemble: bool | None = None  # None: with the bicubic kernel only
    # Back-projections of the output, one count or one per scale step.
    back_projection: int | tuple[int, ...] | None = None  # None: 10 (bicubic) or 2 (given kernel)
    # Scale of each step over the input: a factor or a (vertical, horizontal) pair.
    scale_steps: tuple[float | tuple[float, float], ...] | None = None  # None: default_scale_steps
    tile: int = 512  # HR tile side for full-image passes
    # Training layout; None: channels-last on CUDA only. On 2 AVX2 cores (one thread) NCHW
    # trained 15% faster; full-image passes always run channels-last (1.5x faster there).
    channels_last: bool | None = None
    seed: int = 0


# gradient: centres drawn by gradient magnitude, footprint kept inside the image (zoomsr);
# uniform: centres uniform, footprint kept inside; official: the official random_augment, whose
# crops of small or shrunk images reach past the border into black.
CROP_SAMPLINGS = ("gradient", "uniform", "official")


def make_config(**overrides) -> ZSSRConfig:
    names = {f.name for f in fields(ZSSRConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ZoomsrError(
            f"unknown ZSSR option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
    cfg = ZSSRConfig(**overrides)
    if cfg.crop_sampling not in (None, *CROP_SAMPLINGS):
        raise ZoomsrError(
            f"ZSSR crop_sampling must be one of {', '.join(CROP_SAMPLINGS)},"
            f" not '{cfg.crop_sampling}'"
        )
    if cfg.iterations < 1:
        raise ZoomsrError(f"ZSSR needs at least one iteration, got {cfg.iterations}")
    return cfg


def with_kernel_defaults(cfg: ZSSRConfig, given: bool) -> ZSSRConfig:
    """``cfg`` with the choices it leaves open (None) made for the bicubic kernel or, when
    ``given``, for a given kernel (KernelGAN's ZSSR)."""

    def pick(value, default):
        return default if value is None else value

    return replace(
        cfg,
        crop_sampling=pick(cfg.crop_sampling, "uniform" if given else "gradient"),
        augment=pick(cfg.augment, not given),
        loss_map=pick(cfg.loss_map, given),
        allow_rotation=pick(cfg.allow_rotation, not given),
        ensemble=pick(cfg.ensemble, not given),
        back_projection=pick(cfg.back_projection, 2 if given else 10),
    )


# The official X2_GRADUAL_IDEAL_CONF (configs.py): six anisotropic steps up to x2 with their
# back-projection counts; "~0.3 dB better results, 6x runtime" (official README).
GRADUAL_X2 = {
    "scale_steps": ((1.0, 1.5), (1.5, 1.0), (1.5, 1.5), (1.5, 2.0), (2.0, 1.5), (2.0, 2.0)),
    "back_projection": (6, 6, 8, 10, 10, 12),
}


def as_pair(scale: float | Sequence[float]) -> tuple[float, float]:
    """A scale as a (vertical, horizontal) pair."""
    if isinstance(scale, (int, float)):
        return float(scale), float(scale)
    sy, sx = scale
    return float(sy), float(sx)


def describe_scale(scale: tuple[float, float]) -> str:
    sy, sx = scale
    return f"x{sy:g}" if sy == sx else f"x{sy:g}x{sx:g}"


def default_scale_steps(scale: float) -> tuple[float, ...]:
    """One jump up to x2; beyond, equal ratios of at most 2 (x4 = 2, 4; x8 = 2, 4, 8)."""
    n = max(1, math.ceil(math.log2(scale) - 1e-9))
    return tuple(round(scale ** ((i + 1) / n), 6) for i in range(n))


# --------------------------------------------------------------------------------- network


class ZSSRNet(nn.Module):
    """Plain conv net (no biases) that adds a residual to the bicubic upscaling it is given."""

    def __init__(
        self,
        channels: int = 3,
        width: int = 64,
        depth: int = 8,
        init_variance: float = 0.1,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        sizes = [channels] + [width] * (depth - 1) + [channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in itertools.pairwise(sizes)
        )
        with torch.no_grad():
            for conv in self.convs:
                fan_in = conv.in_channels * 9
                std = math.sqrt(init_variance / fan_in)
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * std)

    @property
    def radius(self) -> int:
        return len(self.convs)  # each 3x3 layer sees one more pixel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for conv in self.convs[:-1]:
            h = F.relu(conv(h), inplace=True)
        return x + self.convs[-1](h)


# ------------------------------------------------------------------------------- resizing


def resize(
    x: torch.Tensor, scale: float | tuple[float, float], size: tuple[int, int]
) -> torch.Tensor:
    """MATLAB bicubic resize with both the scale (one, or one per axis) and the output size given.

    ZSSR's fractional steps (x1.5 of a 85-pixel son into a 128-pixel father) need both:
    the size alone would stretch the scale and the scale alone would miss the size.
    """
    scales = as_pair(scale)
    # The smaller scale first; an isotropic upscale goes columns first.
    order = (1, 0) if scales[0] == scales[1] > 1 else axis_order(scales)
    return resize_axes(x, size, scales, order)


class Downscaler:
    """LR from HR at one ZSSR step: bicubic ``imresize`` or a given (aligned) SR kernel."""

    def __init__(
        self,
        scale: float | tuple[float, float],
        kernel: np.ndarray | None,
        device: torch.device,
    ):
        self.scale = as_pair(scale)
        self.kernel = None
        if kernel is not None:
            sy, sx = self.scale
            if sy != sx or abs(sy - round(sy)) > 1e-6:
                raise ZoomsrError(
                    f"a kernel needs an integer scale step, not {describe_scale(self.scale)}"
                )
            k = align_kernel(np.asarray(kernel, dtype=np.float32), round(sy))
            self.kernel = torch.from_numpy(k).to(device)

    def __call__(self, hr: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        sy, sx = self.scale
        if size is None:
            size = (math.ceil(hr.shape[-2] / sy), math.ceil(hr.shape[-1] / sx))
        if self.kernel is None:
            return resize(hr, (1.0 / sy, 1.0 / sx), size)
        return blur_downsample(hr, self.kernel, round(sy))[..., : size[0], : size[1]]


# --------------------------------------------------------------------------- father sampling


@dataclass
class _Source:
    image: torch.Tensor  # (1, C, H, W) on the device; plus the loss map as a last channel
    base_scale: float  # its scale relative to the input
    cdf: torch.Tensor | None  # crop-centre distribution (H*W,), or None for uniform


def _box_sum(x: torch.Tensor, win: int) -> torch.Tensor:
    """Sum over a ``win x win`` window (clipped at the borders), by integral image: O(1) per pixel."""
    r = win // 2
    h, w = x.shape
    ii = F.pad(x.cumsum(0).cumsum(1), (1, 0, 1, 0))
    y0, y1 = (torch.arange(h) - r).clamp(0, h), (torch.arange(h) + r + 1).clamp(0, h)
    x0, x1 = (torch.arange(w) - r).clamp(0, w), (torch.arange(w) + r + 1).clamp(0, w)
    return ii[y1][:, x1] - ii[y0][:, x1] - ii[y1][:, x0] + ii[y0][:, x0]


def gradient_loss_map(image: torch.Tensor, window: int = 5) -> torch.Tensor:
    """KernelGAN's ZSSR loss weights ``(1, 1, H, W)``: gradient magnitude of the luma summed over
    ``window x window``, zero within ``ceil(window / 2)`` pixels of the border, mean 1."""
    x = image[0].double().cpu()
    gray = (x * x.new_tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0) if len(x) == 3 else x[0]
    gy, gx = torch.gradient(gray)
    weights = _box_sum(torch.sqrt(gx * gx + gy * gy), window)
    margin = (window + window % 2) // 2
    inner = torch.zeros_like(weights)
    inner[margin:-margin, margin:-margin] = weights[margin:-margin, margin:-margin]
    inner = inner / (inner.sum() / inner.numel()).clamp_min(1e-12)
    return inner[None, None].to(image.device, torch.float32)


def _gradient_cdf(image: torch.Tensor, crop: int) -> torch.Tensor:
    """Crop-centre distribution (cumulative): gradient magnitude summed over half a crop, 10% uniform."""
    gray = image.mean(dim=1, keepdim=True).float().cpu()
    gy = F.pad(gray[..., 2:, :] - gray[..., :-2, :], (0, 0, 1, 1), mode="replicate") / 2
    gx = F.pad(gray[..., :, 2:] - gray[..., :, :-2], (1, 1, 0, 0), mode="replicate") / 2
    p = _box_sum(torch.sqrt(gx * gx + gy * gy)[0, 0].double(), max(1, crop // 2) | 1).flatten()
    p = 0.9 * p / p.sum().clamp_min(1e-12) + 0.1 / p.numel()
    return torch.cumsum(p, 0)


def official_crop_centres(
    a_inv: np.ndarray,
    rel: np.ndarray,
    affine: np.ndarray,
    size: tuple[int, int],
    crop: int,
    u: np.ndarray,
) -> np.ndarray:
    """Source (x, y) of each crop's centre as the official ``random_augment`` places it.

    There the image is centred, transformed by A (``a_inv`` is its inverse, per crop), shifted
    by ``-shift`` with ``shift = u * max(rel * size - crop, 0)`` (``u`` uniform in [0, 1), two per
    crop) and moved back by half its size; the crop is the output's top-left ``crop x crop``.
    Inverting that for the crop's centre pixel gives ``A^-1 (half + shift - size / 2) + size / 2``.
    Without interpolation (``~affine``) half sizes and shifts are whole pixels, as there.
    """
    wh = np.array([size[1], size[0]], dtype=np.float64)[None]
    shift = u * np.clip(np.asarray(rel, np.float64)[:, None] * wh - crop, 0, None)
    mid = np.broadcast_to(wh / 2.0, shift.shape).copy()
    exact = ~np.asarray(affine, bool)
    shift[exact], mid[exact] = np.round(shift[exact]), np.round(mid[exact])
    half = (crop - 1) / 2.0
    return np.einsum("nij,nj->ni", a_inv, half + shift - mid) + mid


class FatherSampler:
    """Augmented crops ("HR fathers") of the image and of earlier outputs, a chunk at a time."""

    def __init__(self, cfg: ZSSRConfig, crop: int, generator: torch.Generator):
        # Open choices default to the bicubic-kernel recipe. With ``loss_map`` the fathers
        # carry their loss weights as a last channel.
        self.cfg = with_kernel_defaults(cfg, given=False)
        self.crop = crop
        self.gen = generator
        self.sources: list[_Source] = []

    def add_source(self, image: torch.Tensor, base_scale: float) -> None:
        cdf = _gradient_cdf(image, self.crop) if self.cfg.crop_sampling == "gradient" else None
        if self.cfg.loss_map:
            image = torch.cat([image, gradient_loss_map(image)], 1)
        self.sources.append(_Source(image, base_scale, cdf))

    def _rand(self, n: int) -> np.ndarray:
        return torch.rand(n, generator=self.gen, dtype=torch.float64).numpy()

    def _randn(self, n: int) -> np.ndarray:
        return torch.randn(n, generator=self.gen, dtype=torch.float64).numpy()

    def sample(self, n: int, max_scale: float) -> torch.Tensor:
        """``n`` fathers ``(n, C, crop, crop)`` in [0, 1] (``C + 1`` with the loss map last)."""
        cfg = self.cfg
        r = self._rand(n)
        p_leave, p_exact = (cfg.leave_as_is_probability, cfg.no_interpolate_probability)
        p_leave, p_exact = (p_leave, p_exact) if cfg.augment else (1.0, 0.0)
        leave = r < p_leave
        affine = r >= p_leave + p_exact
        scale = np.where(leave, 1.0, cfg.min_scale + self._rand(n) * (max_scale - cfg.min_scale))
        bases = np.array([s.base_scale for s in self.sources])
        # The smallest source at least as large as the wanted scale (official random_augment).
        src = np.array([int(np.argmax(bases > s - 1e-6)) for s in scale])
        rel = np.where(affine, scale / bases[src], 1.0)
        diff = np.where(affine, self._randn(n) * cfg.scale_diff_sigma, 0.0)
        flip = np.sign(self._randn(n))
        reflect = np.where(leave, 1.0, flip) if cfg.allow_rotation else np.ones(n)
        quarter = torch.randint(4, (n,), generator=self.gen).numpy()
        theta = np.where(
            affine, self._rand(n) * 2 * math.pi, np.where(leave, 0.0, quarter * math.pi / 2)
        )
        theta = theta if cfg.allow_rotation else np.zeros(n)
        shear = np.where(affine[:, None], self._randn(2 * n).reshape(n, 2) * cfg.shear_sigma, 0.0)

        # A maps source offsets (x, y) from the crop centre to output offsets.
        sx, sy = reflect * (rel + diff / 2), rel - diff / 2
        c, s = np.cos(theta), np.sin(theta)
        rot = np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], -2)
        sh = np.stack(
            [np.stack([np.ones(n), shear[:, 0]], -1), np.stack([shear[:, 1], np.ones(n)], -1)], -2
        )
        a = sh @ rot @ (np.eye(2)[None] * np.stack([sx, sy], -1)[:, None, :])
        a_inv = np.linalg.inv(a)
        a_inv = np.where(affine[:, None, None], a_inv, np.round(a_inv))  # exact for 90° turns

        out = torch.empty(
            n,
            self.sources[0].image.shape[1],
            self.crop,
            self.crop,
            device=self.sources[0].image.device,
        )
        half = (self.crop - 1) / 2.0
        for k in np.unique(src):
            sel = np.nonzero(src == k)[0]
            source = self.sources[k]
            h, w = source.image.shape[-2:]
            if cfg.crop_sampling == "official":
                u = self._rand(2 * len(sel)).reshape(-1, 2)
                centre = official_crop_centres(
                    a_inv[sel], rel[sel], affine[sel], (h, w), self.crop, u
                )
                out[torch.from_numpy(sel)] = self._warp(source.image, a_inv[sel], centre, h, w)
                continue
            centre = self._centres(source, len(sel), h, w)
            # Keep the (unrotated) footprint inside the image where the image is big enough.
            reach = half / np.minimum(np.abs(sx[sel]), np.abs(sy[sel]))[:, None]
            lo, hi = reach, np.array([w - 1.0, h - 1.0])[None] - reach
            mid = np.array([(w - 1) / 2.0, (h - 1) / 2.0])[None]
            centre = np.where(hi >= lo, np.clip(centre, lo, np.maximum(lo, hi)), mid)
            # Exact crops sample pixel centres: the centre sits on the grid of (crop - 1) / 2.
            frac = half % 1.0
            exact = ~affine[sel]
            centre[exact] = np.floor(centre[exact] - frac + 0.5) + frac
            out[torch.from_numpy(sel)] = self._warp(source.image, a_inv[sel], centre, h, w)
        if cfg.loss_map:
            out[:, :-1].clamp_(0, 1)
            out[:, -1:].clamp_(min=0)
            return out
        return out.clamp_(0, 1)

    def _centres(self, source: _Source, n: int, h: int, w: int) -> np.ndarray:
        if source.cdf is None:
            return self._rand(2 * n).reshape(n, 2) * np.array([w - 1.0, h - 1.0])
        u = torch.rand(n, generator=self.gen, dtype=torch.float64) * source.cdf[-1]
        idx = torch.searchsorted(source.cdf, u).clamp_(max=h * w - 1).numpy()
        jitter = self._rand(2 * n).reshape(n, 2) - 0.5
        return np.stack([idx % w, idx // w], -1).astype(np.float64) + jitter

    def _warp(self, image, a_inv: np.ndarray, centre: np.ndarray, h: int, w: int) -> torch.Tensor:
        n = len(centre)
        half = (self.crop - 1) / 2.0
        t = torch.arange(self.crop, dtype=torch.float64) - half
        offs = torch.stack(torch.meshgrid(t, t, indexing="xy"), -1)  # (crop, crop, 2) as (x, y)
        src = torch.einsum("nij,hwj->nhwi", torch.from_numpy(a_inv), offs)
        src = src + torch.from_numpy(centre)[:, None, None, :]
        size = torch.tensor([w, h], dtype=torch.float64)
        grid = ((2 * src + 1) / size - 1).to(image.device, torch.float32)
        return F.grid_sample(
            image.expand(n, -1, -1, -1),
            grid,
            mode="bicubic",
            padding_mode="zeros",
            align_corners=False,
        )


def back_project(
    sr: torch.Tensor, lr: torch.Tensor, down: Downscaler, iterations: int
) -> torch.Tensor:
    """Iterative back-projection: add the bicubic upscaling of what ``down(sr)`` misses of ``lr``."""
    for _ in range(iterations):
        err = lr - down(sr, tuple(lr.shape[-2:]))
        sr = (sr + resize(err, down.scale, tuple(sr.shape[-2:]))).clamp(0, 1)
    return sr


# ------------------------------------------------------------------------------- the method


@dataclass
class ZSSRReport:
    """What one ZSSR run did, per scale step."""

    scale_steps: list[float] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    final_learning_rate: list[float] = field(default_factory=list)
    reconstruction_mse: list[list[float]] = field(default_factory=list)
    losses: list[list[float]] = field(default_factory=list)  # training L1, every iteration
    train_seconds: float = 0.0
    output_seconds: float = 0.0

    @property
    def total_iterations(self) -> int:
        return sum(self.iterations)


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def _undo_dihedral(y: torch.Tensor, k: int) -> torch.Tensor:
    y = y.flip(-1) if k >= 4 else y
    return torch.rot90(y, -(k % 4), dims=(-2, -1))


def _median(stack: torch.Tensor) -> torch.Tensor:
    """numpy's median over dim 0 (the mean of the two middle values for an even count)."""
    s = torch.sort(stack, dim=0).values
    n = s.shape[0]
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


class ZSSR(nn.Module):
    """ZSSR as a SISR "model": ``forward(lr)`` trains on ``lr`` and returns its SR.

    ``kernel``: the SR kernel of the final scale (None: bicubic); :meth:`upscale` takes one kernel
    per scale step. ``options`` is the :class:`ZSSRConfig` (``config`` is left to the registry).
    The device is the module's (``.to(device)``); the last run's :class:`ZSSRReport` is kept
    in ``last_report``.
    """

    def __init__(self, scale: float = 2, kernel: np.ndarray | None = None, **config):
        super().__init__()
        self.scale = scale
        self.options = make_config(**config)
        self.kernel = kernel
        self.last_report: ZSSRReport | None = None
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._device_anchor.device

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        steps = self.options.scale_steps
        if self.kernel is not None and steps is None:
            steps = (float(self.scale),)
        kernels = [None] * (len(steps) - 1) + [self.kernel] if steps else None
        return self.upscale(lr, steps=steps, kernels=kernels)

    def upscale(
        self,
        lr: torch.Tensor,
        steps: Sequence[float | tuple[float, float]] | None = None,
        kernels: Sequence[np.ndarray | None] | None = None,
        progress: Progress = lambda it, _desc: it,
    ) -> torch.Tensor:
        """Super-resolve ``(1, C, h, w)`` in [0, 1] by ``self.scale``; returns it on the CPU.

        ``steps``: the scale of each step over the input, a factor or a (vertical, horizontal)
        pair (default: the options' or :func:`default_scale_steps`).
        """
        if lr.dim() != 4 or lr.shape[0] != 1:
            raise ZoomsrError(f"ZSSR takes one image (1, C, h, w), got {tuple(lr.shape)}")
        steps = steps or self.options.scale_steps or default_scale_steps(self.scale)
        steps = tuple(as_pair(s) for s in steps)
        if any(abs(s - self.scale) > 1e-6 for s in steps[-1]):
            raise ZoomsrError(f"ZSSR scale steps {steps} must end at the scale x{self.scale:g}")
        kernels = list(kernels) if kernels is not None else [None] * len(steps)
        if len(kernels) != len(steps):
            raise ZoomsrError(f"{len(kernels)} kernels for {len(steps)} scale steps")
        bp = self.options.back_projection
        if isinstance(bp, Sequence) and len(bp) != len(steps):
            raise ZoomsrError(f"{len(bp)} back-projection counts for {len(steps)} scale steps")
        with torch.enable_grad():
            return _Run(self.options, lr, steps, kernels, self.device, progress).run(self)


class _Run:
    """One ZSSR run on one image (state of the training loop)."""

    def __init__(self, cfg, lr, steps, kernels, device, progress):
        self.cfg = cfg = with_kernel_defaults(cfg, any(k is not None for k in kernels))
        self.device = device
        self.progress = progress
        self.input = lr.to(device=device, dtype=torch.float32)
        self.steps = steps
        self.kernels = kernels
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.report = ZSSRReport()

    def _crop_size(self) -> int:
        # Not larger than the image, except as the official code does it: there small images'
        # crops reach into black.
        if self.cfg.crop_sampling == "official":
            return self.cfg.crop_size
        return max(4, min(self.cfg.crop_size, *self.input.shape[-2:]))

    def run(self, owner: ZSSR) -> torch.Tensor:
        cfg = self.cfg
        channels = self.input.shape[1]
        self.net = ZSSRNet(channels, cfg.width, cfg.depth, cfg.init_variance, self.gen)
        self.net = self.net.to(self.device)
        use_cl = cfg.channels_last if cfg.channels_last is not None else self.device.type == "cuda"
        self.train_format = torch.channels_last if use_cl else torch.contiguous_format
        self.net = self.net.to(memory_format=self.train_format)
        crop = self._crop_size()
        self.sampler = FatherSampler(cfg, crop, self.gen)
        self.sampler.add_source(self.input, 1.0)
        out = self.input
        for i, (sf, kernel) in enumerate(zip(self.steps, self.kernels, strict=True)):
            self.down = Downscaler(sf, kernel, self.device)
            self.sf, self.step_index = sf, i
            # Crops whose sons have an integer size keep father and son on one grid.
            s = sf[0]
            integer = sf[0] == sf[1] and abs(s - round(s)) < 1e-6
            step_crop = crop - crop % round(s) if integer else crop
            self.sampler.crop = max(step_crop, math.ceil(max(sf)))
            t0 = time.perf_counter()
            # Fathers come from sources at least as large as the drawn scale, which is at most
            # the smaller factor of the last step done (official random_augment).
            self._train(max_scale=min(([(1.0, 1.0), *self.steps])[i]))
            t1 = time.perf_counter()
            out = self._final_output().clone()  # a normal tensor again, to train on
            self.report.train_seconds += t1 - t0
            self.report.output_seconds += time.perf_counter() - t1
            self.sampler.add_source(out, min(sf))
        owner.last_report = self.report
        return out.cpu()

    # ---------------------------------------------------------------------------- training

    def _sons(self, fathers: torch.Tensor) -> torch.Tensor:
        """Net inputs: each father downscaled (plus noise), then bicubic-upscaled back."""
        sons = self.down(fathers)
        if self.cfg.noise_std > 0:
            noise = torch.randn(sons.shape, generator=self.noise_gen).to(sons)
            sons = (sons + noise * self.cfg.noise_std).clamp(0, 1)
        return resize(sons, self.sf, tuple(fathers.shape[-2:]))

    def _next_chunk(self, max_scale: float) -> list[tuple[torch.Tensor, ...]]:
        """A chunk of (net input, father, loss weights or None) batches, made at once; popped
        from the end."""
        b = self.cfg.batch_size
        fathers = self.sampler.sample(self.cfg.chunk * b, max_scale)
        weights = None
        if self.cfg.loss_map:
            fathers, weights = fathers[:, :-1], fathers[:, -1:]
        inputs = self._sons(fathers)
        fmt = self.train_format
        batches = [
            (
                inputs[j : j + b].contiguous(memory_format=fmt),
                fathers[j : j + b].contiguous(memory_format=fmt),
                None if weights is None else weights[j : j + b],
            )
            for j in range(0, len(fathers), b)
        ]
        return batches[::-1]

    def _train(self, max_scale: float) -> None:
        cfg = self.cfg
        # A fresh Adam each step. The official code keeps its Adam moments across steps; here
        # that wrecked the gradual x2 (Set5 bird after its x1.5 x1 step: RGB PSNR 44.2 dB against
        # the resized HR, 47.5 with a fresh Adam; 38.7 dB Y at the end, one jump 41.7).
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.learning_rate)
        lr_now, last_change = cfg.learning_rate, 0
        rec_steps: list[int] = []
        rec_mse: list[float] = []
        queue: list[tuple[torch.Tensor, ...]] = []
        losses: list[torch.Tensor] = []  # kept on the device: no sync per iteration
        it = 0
        for it in self.progress(range(cfg.iterations), f"zssr {describe_scale(self.sf)}"):
            if not queue:
                queue = self._next_chunk(max_scale)
            x, target, weights = queue.pop()
            if weights is None:
                loss = F.l1_loss(self.net(x), target)
            else:
                loss = ((self.net(x) - target).abs() * weights).mean()
            losses.append(loss.detach())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if it % cfg.test_every == 0:
                rec_steps.append(it)
                rec_mse.append(self._reconstruction_mse())
            # Learning-rate policy (official learning_rate_policy).
            if (it + 1) % cfg.lr_check_every == 0 and it - last_change > cfg.min_iterations:
                k = max(3, cfg.lr_slope_range // cfg.test_every)
                slope, std = _slope_and_std(rec_steps[-k:], rec_mse[-k:])
                if -cfg.lr_change_ratio * slope < std:
                    lr_now /= 10
                    last_change = it
                    for group in opt.param_groups:
                        group["lr"] = lr_now
            if lr_now < cfg.min_learning_rate:
                break
        sy, sx = self.sf
        self.report.scale_steps.append(sy if sy == sx else self.sf)
        self.report.iterations.append(it + 1)
        self.report.final_learning_rate.append(lr_now)
        self.report.reconstruction_mse.append(rec_mse)
        self.report.losses.append(torch.stack(losses).cpu().tolist())

    def _test_region(self) -> torch.Tensor:
        side = self.cfg.test_max_side
        h, w = self.input.shape[-2:]
        top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
        return self.input[..., top : top + min(h, side), left : left + min(w, side)]

    @torch.inference_mode()
    def _reconstruction_mse(self) -> float:
        """How well the net rebuilds (a centre crop of) the input from its own son."""
        region = self._test_region()
        rec = self._net_at(self._sons(region)).clamp(0, 1)
        return float(F.mse_loss(rec, region))

    # ------------------------------------------------------------------------------ output

    @torch.inference_mode()
    def _net_at(self, x: torch.Tensor) -> torch.Tensor:
        """The net on a full-size (already upscaled) image, tiled with an exact margin."""
        tile, m = self.cfg.tile, self.net.radius
        h, w = x.shape[-2:]
        cl = torch.channels_last
        if max(h, w) <= tile + 2 * m:
            return self.net(x.contiguous(memory_format=cl)).contiguous()
        out = torch.empty_like(x)
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                t0, l0 = max(0, top - m), max(0, left - m)
                t1, l1 = min(h, top + tile + m), min(w, left + tile + m)
                y = self.net(x[..., t0:t1, l0:l1].contiguous(memory_format=cl))
                out[..., top : min(h, top + tile), left : min(w, left + tile)] = y[
                    ...,
                    top - t0 : top - t0 + min(tile, h - top),
                    left - l0 : left - l0 + min(tile, w - left),
                ]
        return out

    def _upscale_once(self, lr: torch.Tensor) -> torch.Tensor:
        sy, sx = self.sf
        size = (math.ceil(lr.shape[-2] * sy - 1e-9), math.ceil(lr.shape[-1] * sx - 1e-9))
        return self._net_at(resize(lr, self.sf, size)).clamp(0, 1)

    def _back_project(self, sr: torch.Tensor) -> torch.Tensor:
        count = self.cfg.back_projection
        if isinstance(count, Sequence):
            count = count[self.step_index]
        return back_project(sr, self.input, self.down, count)

    @torch.inference_mode()
    def _final_output(self) -> torch.Tensor:
        # Quarter turns would swap an anisotropic step's axes: then only half turns and mirrors.
        members = range(0, 8, 1 if self.sf[0] == self.sf[1] else 2)
        members = members if self.cfg.ensemble else range(1)
        outs = []
        for k in members:
            y = _undo_dihedral(self._upscale_once(_dihedral(self.input, k)), k)
            outs.append(self._back_project(y))
        sr = outs[0] if len(outs) == 1 else _median(torch.stack(outs))
        return self._back_project(sr)


def _slope_and_std(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope of y(x) and its standard error (numpy.polyfit(..., cov=True))."""
    if len(x) < 4:  # polyfit's covariance needs more points than parameters + 2
        return -math.inf, 0.0
    (slope, _), cov = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1, cov=True)
    return float(slope), float(math.sqrt(max(cov[0, 0], 0.0)))


register(
    ModelSpec(
        name="zssr",
        task="zeroshot",
        build=ZSSR,
        scales=tuple(range(2, 9)),
        summary="ZSSR: a small CNN trained on the input image itself at test time (no weights)",
    )
)
