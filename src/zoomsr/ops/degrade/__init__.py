"""Image degradations for blind SR training: blur kernels, resampling, noise, JPEG and the
BSRGAN / Real-ESRGAN pipelines (see docs/degradations.md).

Everything works on batched float tensors ``(N, C, H, W)`` in [0, 1] and draws its randomness
from an explicit ``torch.Generator``.
"""

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
)

__all__ = [
    "anisotropic_gaussian_kernel",
    "blur",
    "blur_downsample",
    "gaussian_covariance",
    "gaussian_kernel_from_covariance",
    "generalized_gaussian_kernel",
    "isotropic_gaussian_kernel",
    "motion_kernel",
    "pad_kernel",
    "plateau_kernel",
    "sinc_kernel",
]
