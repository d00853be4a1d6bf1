"""KernelGAN: blind SR kernel estimation with an internal GAN (Bell-Kligler, Shocher, Irani, NeurIPS 2019).

A deep *linear* generator G downscales crops of the test image by 2; a patch discriminator D
tells G's output patches from the image's own patches. Patches recur across scales in natural
images, so the G that fools D downscales with the image's SR kernel, which is read off G's
weights (G is linear: its layers compose into one 13x13 kernel).

The published recipe (paper and official code):
- G: 6 conv layers without biases or activations, kernels 7, 5, 3, 1, 1, 1, 64 channels, the
  last one with stride 2; each colour channel is downscaled alone. Input crops 64x64.
- D: 7x7 conv, five 1x1 conv + BatchNorm + ReLU blocks, 1x1 conv + sigmoid, spectral norm on the
  convs, 64 channels: a map of real/fake scores for 7x7 patches. Adversarial loss: L1 to 1 / 0.
- constraints on the kernel k: sum to one (L1, λ 0.5), boundaries (L1 of k under a mask that
  weighs the outer ring, λ 0.5), centred (MSE of the centre of mass, λ 0 -> 1), sparse
  (mean |k|^0.2, λ 0 -> 5), and at the start similarity to bicubic downscaling (MSE of G's
  output to the bicubic one, λ 5). Once that MSE stays low for 3 iterations, every 200
  iterations λ_bicubic /= 100 (down to 5e-6); below 5e-3 the centred and sparse terms switch on.
  The bicubic downscaling here is per channel, as the paper describes; the official code's
  convolution sums the three channels into each (sefibk/KernelGAN issues 28 and 47), so its
  "low" (MSE < 0.4) is taken here as relative MSE < 0.15 (see ``bicubic_loss_to_start``).
- Adam (β1 0.5), lr 2e-4 for both, / 10 every 750 iterations; 3000 iterations.
- crops: G's and D's crop centres drawn in proportion to the density of strong gradients;
  Gaussian noise (σ 1/255) on D's inputs.
- the kernel: taps below 0.75 x the 41st largest are zeroed, then renormalised and aligned.
  x4: the x2 kernel applied twice (analytic).

Restarts (zoomsr, not in the paper): one run's estimate depends on its seed. G starts near zero
(six layers of small weights) and sometimes never leaves it: the run ends with G's output ~0 and
a kernel made of noise. Other runs land on kernels of different widths, and ZSSR punishes a
too-wide kernel hard (it learns to over-sharpen). ``estimate_kernel(runs=N)`` trains N seeds,
drops runs that never came close to bicubic downscaling (dead G), and returns the medoid: the
kernel most similar (NCC) to the others. ``runs=1`` is the published recipe.

Speed: G's forward applies the composed 13x13 kernel (one small strided conv per channel)
instead of the six layers; the function of the weights, and so the gradients and the training,
are the same as the layer-by-layer net's (:meth:`DeepLinearGenerator.forward_layerwise`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoomsr.errors import ZoomsrError
from zoomsr.models.zeroshot.kernels import (
    align_kernel,
    analytic_x4_kernel,
    bicubic_kernel,
    kernel_similarity,
    zeroize_negligible,
)
from zoomsr.ops.resize import imresize

Progress = Callable[[Iterable, str], Iterable]

DEFAULT_RUNS = 3  # restarts per estimate (see the module notes); 1 is the published recipe


@dataclass
class KernelGANConfig:
    """KernelGAN hyper-parameters (the official configs.py / learner.py defaults)."""

    iterations: int = 3000
    crop: int = 64  # G's input crop
    g_structure: tuple[int, ...] = (7, 5, 3, 1, 1, 1)
    g_channels: int = 64
    d_channels: int = 64
    d_layers: int = 7
    d_kernel: int = 7
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta1: float = 0.5
    lr_decay_every: int = 750
    lr_decay: float = 10.0
    lambda_sum2one: float = 0.5
    lambda_bicubic: float = 5.0
    lambda_boundaries: float = 0.5
    lambda_centralized_end: float = 1.0
    lambda_sparse_end: float = 5.0
    lambda_update_every: int = 200
    # G counts as "similar to bicubic" below this MSE relative to the bicubic output's energy
    # (official: 0.4 absolute, on a target that sums the 3 channels, i.e. about 0.15 relative;
    # an absolute 0.4 on the per-channel target would be met by G = 0 at the start).
    bicubic_loss_to_start: float = 0.15
    lambda_bicubic_decay: float = 100.0
    lambda_bicubic_min: float = 5e-6
    n_filtering: int = 40  # taps kept by the final clean-up
    shave_edges: int = 10  # border pixels dropped first (synthetic images' padding effects)
    seed: int = 0


def make_config(**overrides) -> KernelGANConfig:
    names = {f.name for f in fields(KernelGANConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ZoomsrError(f"unknown KernelGAN option(s) {', '.join(unknown)}")
    cfg = KernelGANConfig(**overrides)
    if cfg.iterations < 1:
        raise ZoomsrError(f"KernelGAN needs at least one iteration, got {cfg.iterations}")
    return cfg


# -------------------------------------------------------------------------------- networks


class DeepLinearGenerator(nn.Module):
    """G: a stack of linear convs (no bias, no activation), the last with stride ``scale``."""

    def __init__(self, structure=(7, 5, 3, 1, 1, 1), channels: int = 64, scale: int = 2):
        super().__init__()
        sizes = [1] + [channels] * (len(structure) - 1) + [1]
        self.convs = nn.ModuleList(
            nn.Conv2d(sizes[i], sizes[i + 1], k, bias=False) for i, k in enumerate(structure)
        )
        self.scale = scale
        self.kernel_size = sum(k - 1 for k in structure) + 1
        for conv in self.convs:
            nn.init.xavier_normal_(conv.weight, 0.1)

    def kernel(self) -> torch.Tensor:
        """The equivalent correlation kernel ``(k, k)``: G's response to an impulse, flipped."""
        delta = self.convs[0].weight.new_ones(1, 1, 1, 1)
        h = F.conv2d(delta, self.convs[0].weight, padding=self.kernel_size - 1)
        for conv in self.convs[1:]:
            h = F.conv2d(h, conv.weight)
        return h[0, 0].flip(0, 1)

    def apply_kernel(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        y = F.conv2d(x.reshape(n * c, 1, h, w), k[None, None], stride=self.scale)
        return y.reshape(n, c, *y.shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply_kernel(x, self.kernel())

    def forward_layerwise(self, x: torch.Tensor) -> torch.Tensor:
        """The published evaluation, layer by layer (slower; the same function)."""
        n, c, h, w = x.shape
        y = x.reshape(n * c, 1, h, w)
        for conv in self.convs[:-1]:
            y = conv(y)
        y = F.conv2d(y, self.convs[-1].weight, stride=self.scale)
        return y.reshape(n, c, *y.shape[-2:])


class PatchDiscriminator(nn.Module):
    """D: 7x7 conv, 1x1 conv+BN+ReLU blocks, 1x1 conv + sigmoid; spectral norm on the convs."""

    def __init__(self, channels: int = 64, layers: int = 7, kernel: int = 7):
        super().__init__()
        sn = nn.utils.spectral_norm
        blocks: list[nn.Module] = [sn(nn.Conv2d(3, channels, kernel))]
        for _ in range(layers - 2):
            blocks += [
                sn(nn.Conv2d(channels, channels, 1)),
                nn.BatchNorm2d(channels),
                nn.ReLU(True),
            ]
        blocks += [sn(nn.Conv2d(channels, 1, 1)), nn.Sigmoid()]
        self.body = nn.Sequential(*blocks)
        self.shave = kernel - 1
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(
                    m.weight_orig if hasattr(m, "weight_orig") else m.weight, 0.1
                )
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


# ------------------------------------------------------------------------- kernel constraints


def penalty_mask(size: int, weight: float = 30.0) -> torch.Tensor:
    """Weights of the boundaries loss: 0 inside, rising towards the rim on the outer ring."""
    z = torch.arange(-(size // 2), size - size // 2, dtype=torch.float64)
    g = torch.exp(-(z**2) / (2.0 * size**2))
    mask = 1.0 - torch.outer(g, g) / torch.outer(g, g).max()
    margin = (size - (size // 2 + size % 2)) // 2 - 1
    if margin > 0:
        mask[margin:-margin, margin:-margin] = 0
    return (weight * mask).float()


def centre_of_mass_t(k: torch.Tensor) -> torch.Tensor:
    idx = torch.arange(k.shape[0], dtype=k.dtype, device=k.device)
    total = k.sum()
    return torch.stack([k.sum(1) @ idx / total, k.sum(0) @ idx / total])


@dataclass
class KernelGANReport:
    """What one KernelGAN run did."""

    iterations: int = 0
    seconds: float = 0.0
    seed: int = 0
    # G's output came close to bicubic downscaling; a run that never does ended with G ~ 0
    prior_met: bool = False
    raw_kernel: np.ndarray | None = None  # G's kernel before the clean-up
    kernel_x2: np.ndarray | None = None
    lambda_bicubic: list[float] = field(default_factory=list)
    # with restarts: every run's report (this one's included) and the chosen run's mean NCC
    # to the other live runs
    runs: list[KernelGANReport] = field(default_factory=list)
    agreement: float | None = None


# ------------------------------------------------------------------------------ crop sampling


def _strong_gradients(gray: torch.Tensor, window: int = 5, percent: float = 0.97) -> torch.Tensor:
    """KernelGAN's loss map: where the strongest 3% of gradients are, blurred by ``window``."""
    gy, gx = torch.gradient(gray)
    maps = []
    for m in (gx.abs(), gy.abs(), torch.sqrt(gx * gx + gy * gy)):
        m = m.clone()
        m[:window], m[-window:], m[:, :window], m[:, -window:] = 0, 0, 0, 0
        vals = torch.sort(m.flatten()).values
        pivot = int(percent * (vals.numel() - 1))
        lo = vals[pivot]
        hi = vals[pivot + 1] if vals[pivot + 1] > lo else lo + 1e-5
        m = m.clamp(lo, hi) - lo
        maps.append(m / m.sum().clamp_min(1e-12))
    total = sum(maps)
    blurred = F.avg_pool2d(total[None, None], window, 1, window // 2, count_include_pad=True)[0, 0]
    return blurred / blurred.mean().clamp_min(1e-12)


def _crop_centres(loss_map: torch.Tensor, crop: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` crop centres (flat indices), in proportion to the loss map summed over half a crop."""
    half = max(1, crop // 2)
    blurred = F.avg_pool2d(loss_map[None, None], half, 1, half // 2, count_include_pad=True)[0, 0]
    blurred = blurred[: loss_map.shape[0], : loss_map.shape[1]]
    prob = torch.zeros_like(blurred)
    if loss_map.shape[0] > 2 * half and loss_map.shape[1] > 2 * half:
        prob[half:-half, half:-half] = blurred[half:-half, half:-half]
    flat = prob.flatten().double()
    flat = flat / flat.sum() if flat.sum() > 0 else torch.full_like(flat, 1.0 / flat.numel())
    return torch.multinomial(flat, n, replacement=True, generator=gen)


def _top_left(centre: int, width: int, size: int, rows: int, cols: int) -> tuple[int, int]:
    row, col = centre // width, centre % width
    top = min(max(0, row - size // 2), rows - size)
    left = min(max(0, col - size // 2), cols - size)
    return top - top % 2, left - left % 2


# ---------------------------------------------------------------------------------- training


class KernelGAN:
    """Estimates the x2 SR kernel of one image; ``run`` returns it aligned (see kernels.py)."""

    def __init__(self, config: KernelGANConfig | None = None, device: str | torch.device = "cpu"):
        self.cfg = config or KernelGANConfig()
        self.device = torch.device(device)
        cfg = self.cfg
        # Spectral norm draws its vectors from the global generator: seed a private copy of it.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.G = DeepLinearGenerator(cfg.g_structure, cfg.g_channels, 2).to(self.device)
            self.D = PatchDiscriminator(cfg.d_channels, cfg.d_layers, cfg.d_kernel).to(self.device)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.g_lr, betas=(cfg.beta1, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.d_lr, betas=(cfg.beta1, 0.999))
        ks = self.G.kernel_size
        self.mask = penalty_mask(ks).to(self.device)
        self.wanted_com = torch.full((2,), ks // 2 + 0.5 * (2 - ks % 2), device=self.device)
        self.bicubic = torch.from_numpy(bicubic_kernel(2)).to(self.device)
        self.lambda_bicubic = cfg.lambda_bicubic
        self.lambda_centralized = 0.0
        self.lambda_sparse = 0.0

    # ------------------------------------------------------------------------------ data

    def _prepare(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[0] != 1 or image.shape[1] not in (1, 3):
            raise ZoomsrError(f"KernelGAN takes one image (1, 3, h, w), got {tuple(image.shape)}")
        x = image.expand(1, 3, *image.shape[-2:]).to(self.device, torch.float32)
        e = self.cfg.shave_edges
        if min(x.shape[-2:]) - 2 * e >= self.cfg.crop + 2:
            x = x[..., e:-e, e:-e]
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        if min(h, w) < self.cfg.crop:
            raise ZoomsrError(
                f"KernelGAN needs an image of at least {self.cfg.crop}x{self.cfg.crop} pixels, "
                f"got {x.shape[-1]}x{x.shape[-2]}"
            )
        return x[..., :h, :w] * 2 - 1  # the official code works in [-1, 1]

    def _crop_plan(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.cfg.iterations
        gray = x[0].mean(0).double().cpu()
        big = _strong_gradients(gray)
        small = _strong_gradients(imresize(gray[None], 0.5)[0])
        small = small.repeat_interleave(2, 0).repeat_interleave(2, 1)[
            : gray.shape[0], : gray.shape[1]
        ]
        return (
            _crop_centres(small, self.cfg.crop, n, self.gen),
            _crop_centres(big, self.d_in, n, self.gen),
        )

    # -------------------------------------------------------------------------- training

    def _constraints(self, g_in: torch.Tensor, g_out: torch.Tensor, k: torch.Tensor):
        down = F.conv2d(
            g_in.reshape(3, 1, *g_in.shape[-2:]), self.bicubic[None, None], stride=2, padding=3
        ).reshape(1, 3, -1, g_in.shape[-1] // 2)
        sh = (down.shape[-1] - g_out.shape[-1]) // 2
        down = down[..., sh : sh + g_out.shape[-2], sh : sh + g_out.shape[-1]]
        loss_bicubic = F.mse_loss(g_out, down)
        sum2one = (1 - k.sum()).abs()
        boundaries = (k * self.mask).abs().mean()
        centralized = F.mse_loss(centre_of_mass_t(k), self.wanted_com)
        sparse = (k.abs() + 1e-12).pow(0.2).mean()
        total = (
            self.lambda_bicubic * loss_bicubic
            + self.cfg.lambda_sum2one * sum2one
            + self.cfg.lambda_boundaries * boundaries
            + self.lambda_centralized * centralized
            + self.lambda_sparse * sparse
        )
        relative = loss_bicubic.detach() / down.pow(2).mean().clamp_min(1e-8)
        return total, float(relative)

    def _step(self, g_in: torch.Tensor, d_in: torch.Tensor) -> float:
        # G: fool D, under the kernel constraints.
        self.opt_g.zero_grad(set_to_none=True)
        k = self.G.kernel()
        g_out = self.G.apply_kernel(g_in, k)
        d_fake = self.D(g_out)
        constraints, loss_bicubic = self._constraints(g_in, g_out, k)
        (F.l1_loss(d_fake, torch.ones_like(d_fake)) + constraints).backward()
        self.opt_g.step()
        # D: the image's patches are real, G's (after its step) fake.
        self.opt_d.zero_grad(set_to_none=True)
        d_real = self.D(d_in)
        with torch.no_grad():
            fake = self.G(g_in)
            fake = fake + torch.randn(fake.shape, generator=self.gen).to(fake) / 255.0
        d_fake = self.D(fake)
        loss_d = 0.5 * (
            F.l1_loss(d_fake, torch.zeros_like(d_fake)) + F.l1_loss(d_real, torch.ones_like(d_real))
        )
        loss_d.backward()
        self.opt_d.step()
        return loss_bicubic

    def run(self, image: torch.Tensor, progress: Progress = lambda it, _desc: it) -> np.ndarray:
        """The aligned x2 kernel of ``image`` ``(1, 3, h, w)`` in [0, 1]; see ``self.report``."""
        cfg = self.cfg
        start = time.perf_counter()
        x = self._prepare(image)
        self.d_in = self.G(torch.zeros(1, 1, cfg.crop, cfg.crop, device=self.device)).shape[-1]
        g_centres, d_centres = self._crop_plan(x)
        rows, cols = x.shape[-2:]
        schedule = _Schedule(cfg)
        self.report = KernelGANReport()
        it = 0
        for it in progress(range(cfg.iterations), "kernelgan"):
            top, left = _top_left(int(g_centres[it]), cols, cfg.crop, rows, cols)
            g_in = x[..., top : top + cfg.crop, left : left + cfg.crop]
            top, left = _top_left(int(d_centres[it]), cols, self.d_in, rows, cols)
            d_in = x[..., top : top + self.d_in, left : left + self.d_in]
            d_in = d_in + torch.randn(d_in.shape, generator=self.gen).to(d_in) / 255.0
            loss_bicubic = self._step(g_in, d_in)
            schedule.update(it, self, loss_bicubic)
        with torch.no_grad():
            raw = self.G.kernel().double().cpu().numpy()
        self.report.iterations = it + 1
        self.report.seed = cfg.seed
        self.report.prior_met = schedule.similar_to_bicubic
        self.report.raw_kernel = raw
        kernel = align_kernel(zeroize_negligible(raw, cfg.n_filtering), 2)
        self.report.kernel_x2 = kernel
        self.report.seconds = time.perf_counter() - start
        return kernel


class _Schedule:
    """The official Learner: learning-rate decay and the switch from bicubic prior to constraints."""

    def __init__(self, cfg: KernelGANConfig):
        self.cfg = cfg
        self.bic_counter = 0
        self.similar_to_bicubic = False
        self.insert_constraints = True

    def update(self, it: int, gan: KernelGAN, loss_bicubic: float) -> None:
        cfg = self.cfg
        if it == 0:
            return
        if it % cfg.lr_decay_every == 0:
            for opt in (gan.opt_g, gan.opt_d):
                for group in opt.param_groups:
                    group["lr"] /= cfg.lr_decay
        if not self.similar_to_bicubic:
            if loss_bicubic < cfg.bicubic_loss_to_start:
                if self.bic_counter >= 2:
                    self.similar_to_bicubic = True
                else:
                    self.bic_counter += 1
            else:
                self.bic_counter = 0
        elif it % cfg.lambda_update_every == 0 and gan.lambda_bicubic > cfg.lambda_bicubic_min:
            gan.lambda_bicubic = max(
                gan.lambda_bicubic / cfg.lambda_bicubic_decay, cfg.lambda_bicubic_min
            )
            gan.report.lambda_bicubic.append(gan.lambda_bicubic)
            if self.insert_constraints and gan.lambda_bicubic < 5e-3:
                gan.lambda_centralized = cfg.lambda_centralized_end
                gan.lambda_sparse = cfg.lambda_sparse_end
                self.insert_constraints = False


def medoid_run(reports: list[KernelGANReport]) -> KernelGANReport:
    """The live run whose kernel is most similar to the other live runs' (all, if none lives)."""
    live = [r for r in reports if r.prior_met] or reports
    if len(live) == 1:
        return live[0]
    similarity = [
        [kernel_similarity(a.kernel_x2, b.kernel_x2) for b in live if b is not a] for a in live
    ]
    best = max(range(len(live)), key=lambda i: sum(similarity[i]))  # first of equals
    live[best].agreement = float(np.mean(similarity[best]))
    return live[best]


def estimate_kernel(
    image: torch.Tensor,
    scale: int = 2,
    device: str | torch.device = "cpu",
    progress: Progress = lambda it, _desc: it,
    runs: int = DEFAULT_RUNS,
    **config,
) -> tuple[np.ndarray, KernelGANReport]:
    """The aligned SR kernel of ``image`` at x2 or x4 (x4: the x2 estimate applied twice).

    ``runs`` KernelGANs with seeds ``seed``, ``seed + 1``, ...; the medoid's kernel is returned
    with its report (``report.runs`` holds every run's).
    """
    if scale not in (2, 4):
        raise ZoomsrError(f"KernelGAN estimates x2 and x4 kernels, not x{scale}")
    if runs < 1:
        raise ZoomsrError(f"KernelGAN needs at least one run, got {runs}")
    cfg = make_config(**config)
    reports = []
    for i in range(runs):
        gan = KernelGAN(replace(cfg, seed=cfg.seed + i), device)
        gan.run(image, progress)
        reports.append(gan.report)
    chosen = medoid_run(reports)
    chosen.runs = reports
    k2 = chosen.kernel_x2
    return (k2 if scale == 2 else analytic_x4_kernel(k2)), chosen
