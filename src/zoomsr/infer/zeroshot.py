"""Zero-shot jobs on image files: ZSSR upscaling and KernelGAN kernel estimation.

``--kernel`` for ZSSR is nothing (bicubic), a ``.npy`` SR kernel (as ``zoomsr kernel`` writes
it), or ``auto``: KernelGAN estimates the kernel of the input first (x2; x4 as x2 then x4 with
the x2 kernel applied twice, as KernelGAN runs ZSSR).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from zoomsr.atomic import atomic_write
from zoomsr.errors import ZoomsrError
from zoomsr.io import read_image, write_image
from zoomsr.ops.resize import imresize

Progress = Callable[[Iterable, str], Iterable]
KERNEL_SUFFIX = ".npy"
MAX_KERNEL_SIZE = 101
KERNELGAN_SCALES = (2, 4)


# ------------------------------------------------------------------------------- kernel files


def load_kernel(path: str | Path) -> np.ndarray:
    """A 2-D SR kernel from a ``.npy`` file, normalised to sum 1; a clear error otherwise."""
    path = Path(path)
    if path.suffix.lower() != KERNEL_SUFFIX:
        raise ZoomsrError(
            f"kernel file '{path}' must be a NumPy .npy array (as 'zoomsr kernel' writes)"
        )
    if not path.is_file():
        raise ZoomsrError(f"kernel file '{path}' does not exist")
    try:
        k = np.load(path, allow_pickle=False)
    except (ValueError, OSError):
        raise ZoomsrError(f"cannot read kernel '{path}': not a NumPy .npy array") from None
    if k.ndim != 2 or not np.issubdtype(k.dtype, np.number):
        raise ZoomsrError(f"kernel '{path}' must be a 2-D array of numbers, got shape {k.shape}")
    if not 1 <= max(k.shape) <= MAX_KERNEL_SIZE:
        raise ZoomsrError(
            f"kernel '{path}' is {k.shape[0]}x{k.shape[1]}; at most {MAX_KERNEL_SIZE} taps a side"
        )
    k = k.astype(np.float64)
    if not np.isfinite(k).all():
        raise ZoomsrError(f"kernel '{path}' holds NaN or infinite values")
    if k.sum() <= 1e-8:
        raise ZoomsrError(f"kernel '{path}' sums to {k.sum():.3g}; an SR kernel sums to 1")
    return (k / k.sum()).astype(np.float32)


def save_kernel(path: str | Path, kernel: np.ndarray) -> Path:
    path = Path(path)
    if path.suffix.lower() != KERNEL_SUFFIX:
        raise ZoomsrError(f"kernel output '{path}' must end in .npy")
    return atomic_write(path, lambda tmp: np.save(tmp, np.asarray(kernel, dtype=np.float32)))


def kernel_picture(kernel: np.ndarray, cell: int = 16, peak: float | None = None) -> np.ndarray:
    """An RGB uint8 heat map of a kernel (viridis, 0 to ``peak`` or its maximum), ``cell`` px a tap."""
    k = np.clip(np.asarray(kernel, dtype=np.float64), 0, None)
    peak = peak if peak is not None else k.max()
    k = np.clip(k / peak, 0, 1) if peak > 0 else k
    gray = np.round(k * 255).astype(np.uint8)
    gray = np.repeat(np.repeat(gray, cell, 0), cell, 1)
    return cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_VIRIDIS), cv2.COLOR_BGR2RGB)


def save_kernel_picture(path: str | Path, kernel: np.ndarray, overwrite: bool = True) -> Path:
    rgb = torch.from_numpy(kernel_picture(kernel)).permute(2, 0, 1).float() / 255
    return write_image(path, rgb, overwrite=overwrite)


# ---------------------------------------------------------------------------------- KernelGAN


def estimate_kernel(
    lr: torch.Tensor,
    scale: int,
    *,
    iterations: int | None = None,
    runs: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: Progress = lambda it, _desc: it,
):
    """KernelGAN's SR kernel of ``lr`` ``(1, C, h, w)`` at x2 or x4, and its report
    (``runs`` restarts, None: the model's default; see ``models.zeroshot.kernelgan``)."""
    from zoomsr.models.zeroshot.kernelgan import estimate_kernel as _estimate

    if scale not in KERNELGAN_SCALES:
        raise ZoomsrError(
            f"KernelGAN estimates x2 and x4 kernels; --scale {scale} is not supported"
        )
    config = {"seed": seed} | ({"iterations": iterations} if iterations is not None else {})
    config |= {"runs": runs} if runs is not None else {}
    return _estimate(lr, scale, device=device, progress=progress, **config)


def kernel_file(
    src: str | Path,
    dst: str | Path,
    scale: int,
    *,
    plot: str | Path | None = None,
    iterations: int | None = None,
    runs: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: Progress = lambda it, _desc: it,
) -> tuple[np.ndarray, Path]:
    """Estimate the kernel of image ``src``; write it as ``dst`` (.npy) and optionally a picture."""
    dst = Path(dst)
    if dst.suffix.lower() != KERNEL_SUFFIX:
        raise ZoomsrError(f"kernel output '{dst}' must end in .npy")
    if scale not in KERNELGAN_SCALES:
        raise ZoomsrError(
            f"KernelGAN estimates x2 and x4 kernels; --scale {scale} is not supported"
        )
    if plot is not None and Path(plot).suffix.lower() not in (
        ".png",
        ".jpg",
        ".jpeg",
        ".tif",
        ".tiff",
        ".bmp",
        ".webp",
    ):
        raise ZoomsrError(f"--plot '{plot}' must be an image file name, e.g. K.png")
    image = read_image(src)
    kernel, _report = estimate_kernel(
        image.color[None],
        scale,
        iterations=iterations,
        runs=runs,
        seed=seed,
        device=device,
        progress=progress,
    )
    path = save_kernel(dst, kernel)
    if plot is not None:
        save_kernel_picture(plot, kernel, overwrite=True)
    return kernel, path


# --------------------------------------------------------------------------------------- ZSSR


@dataclass
class ZeroShotOptions:
    """How ZSSR is run on a file: kernel (None: bicubic; a .npy path; "auto") and budgets."""

    kernel: str | None = None
    iterations: int | None = None  # ZSSR's most iterations per scale step (None: 3000)
    kernel_iterations: int | None = None  # KernelGAN's (None: 3000)
    seed: int = 0
    gradual: bool = False  # x2 in the official six anisotropic steps (bicubic kernel only)


def check_options(opts: ZeroShotOptions, scale: int) -> np.ndarray | None:
    """Validate before any work; returns the loaded kernel of a kernel file."""
    if opts.iterations is not None and opts.iterations < 1:
        raise ZoomsrError(f"--iterations must be at least 1, got {opts.iterations}")
    if opts.gradual and (scale != 2 or opts.kernel is not None):
        raise ZoomsrError(
            "--gradual is the official x2 schedule for the bicubic kernel: "
            "use it with --scale 2 and without --kernel"
        )
    if opts.kernel is None:
        return None
    if opts.kernel == "auto":
        if scale not in KERNELGAN_SCALES:
            raise ZoomsrError(f"--kernel auto (KernelGAN) supports x2 and x4, not x{scale}")
        return None
    return load_kernel(opts.kernel)


def zssr_upscale(
    model,
    lr: torch.Tensor,
    opts: ZeroShotOptions | None = None,
    progress: Progress = lambda it, _desc: it,
    kernel: np.ndarray | None = None,
) -> torch.Tensor:
    """ZSSR of ``lr`` ``(1, C, h, w)`` with ``model`` (a registered ``zssr``); returns the SR on the CPU.

    ``kernel``: an already loaded kernel (else ``opts.kernel`` is read).
    """
    from zoomsr.models.zeroshot.kernels import analytic_x4_kernel
    from zoomsr.models.zeroshot.zssr import GRADUAL_X2

    opts = opts or ZeroShotOptions()
    scale = int(model.scale)
    if kernel is None:
        kernel = check_options(opts, scale)
    if opts.iterations is not None or opts.seed != model.options.seed:
        model.options = replace(
            model.options, iterations=opts.iterations or model.options.iterations, seed=opts.seed
        )
    if opts.gradual:
        model.options = replace(model.options, **GRADUAL_X2)
    if opts.kernel == "auto":
        k2, _ = estimate_kernel(
            lr,
            2,
            iterations=opts.kernel_iterations,
            seed=opts.seed,
            device=model.device,
            progress=progress,
        )
        steps, kernels = (
            ((2.0,), [k2]) if scale == 2 else ((2.0, 4.0), [k2, analytic_x4_kernel(k2)])
        )
    elif kernel is not None:
        steps, kernels = (float(scale),), [kernel]
    else:
        steps, kernels = None, None
    return model.upscale(lr, steps=steps, kernels=kernels, progress=progress)


def zssr_file(
    model,
    src: str | Path,
    dst: str | Path,
    opts: ZeroShotOptions | None = None,
    *,
    overwrite: bool = False,
    inputs=(),
    progress: Progress = lambda it, _desc: it,
    kernel: np.ndarray | None = None,
) -> Path:
    """Read ``src``, ZSSR it (alpha by bicubic), write ``dst`` atomically in the same form."""
    image = read_image(src)
    sr = zssr_upscale(model, image.color[None], opts, progress, kernel)[0]
    alpha = None
    if image.alpha is not None:
        alpha = imresize(image.alpha, size=tuple(sr.shape[-2:])).clamp(0, 1)
    return write_image(
        dst, image.replace(sr.clamp(0, 1), alpha), overwrite=overwrite, inputs=inputs
    )
