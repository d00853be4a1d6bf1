"""Image degradations for blind SR training: blur kernels, resampling, noise, JPEG and the
BSRGAN / Real-ESRGAN pipelines (see docs/degradations.md).

Everything works on batched float tensors ``(N, C, H, W)`` in [0, 1] and draws its randomness
from an explicit ``torch.Generator``. Modules: ``kernels`` (blur kernels, per-sample blur),
``resample``, ``noise``, ``camera`` (unprocess/process sensor noise), ``jpeg``, and the presets
``bsrgan``, ``realesrgan`` and ``pipelines`` (registry, ``div2krk``).

    lr, record = degrade(hr, "bsrgan", scale=4, seed=0)
"""

from zoomsr.ops.degrade.bsrgan import BSRGANConfig, bsrgan
from zoomsr.ops.degrade.camera import camera_noise, process, random_camera, unprocess
from zoomsr.ops.degrade.jpeg import jpeg_compress, jpeg_uint8
from zoomsr.ops.degrade.kernels import (
    anisotropic_gaussian_kernel,
    blur,
    blur_downsample,
    gaussian_covariance,
    gaussian_kernel_from_covariance,
    generalized_gaussian_kernel,
    isotropic_gaussian_kernel,
    motion_kernel,
    pad_kernel,
    plateau_kernel,
    sinc_kernel,
    truncate_kernel,
)
from zoomsr.ops.degrade.noise import (
    correlated_gaussian_noise,
    gaussian_noise,
    heteroscedastic_noise,
    poisson_noise,
    sensor_noise_levels,
)
from zoomsr.ops.degrade.pipelines import PRESETS, Degradation, DIV2KRKConfig, degrade, div2krk
from zoomsr.ops.degrade.realesrgan import RealESRGANConfig, StageConfig, realesrgan
from zoomsr.ops.degrade.resample import RESIZE_MODES, resize

__all__ = [
    "PRESETS",
    "RESIZE_MODES",
    "BSRGANConfig",
    "DIV2KRKConfig",
    "Degradation",
    "RealESRGANConfig",
    "StageConfig",
    "anisotropic_gaussian_kernel",
    "blur",
    "blur_downsample",
    "bsrgan",
    "camera_noise",
    "correlated_gaussian_noise",
    "degrade",
    "div2krk",
    "gaussian_covariance",
    "gaussian_kernel_from_covariance",
    "gaussian_noise",
    "generalized_gaussian_kernel",
    "heteroscedastic_noise",
    "isotropic_gaussian_kernel",
    "jpeg_compress",
    "jpeg_uint8",
    "motion_kernel",
    "pad_kernel",
    "plateau_kernel",
    "poisson_noise",
    "process",
    "random_camera",
    "realesrgan",
    "resize",
    "sensor_noise_levels",
    "sinc_kernel",
    "truncate_kernel",
    "unprocess",
]
