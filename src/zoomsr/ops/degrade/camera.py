"""Camera sensor noise through a simple camera pipeline (Brooks et al. 2019, "Unprocessing
Images for Learned Raw Denoising", CVPR).

:func:`unprocess` turns an sRGB image into the linear Bayer (RGGB) raw a camera would have
recorded — inverse tone curve, inverse gamma, sRGB -> camera colour matrix, inverse white
balance and brightness gains, mosaic —, :func:`process` is its exact inverse with bilinear
demosaicing. Noise added to the raw in between comes out as real processed sensor noise:
signal dependent, correlated across colours and neighbouring pixels, amplified in the dark.

Written here (not taken from a library) because the paper defines it and no maintained
package offers a batched torch version; the camera calibration matrices are the paper's.
Unlike the paper's pipeline, gains are inverted exactly (no highlight-preserving "safe"
gains) so that ``process(unprocess(x))`` differs from ``x`` by demosaicing only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from zoomsr.ops.degrade import _random as rnd
from zoomsr.ops.degrade.noise import heteroscedastic_noise, sensor_noise_levels

# XYZ -> camera matrices of four cameras (the paper's calibration data).
XYZ_TO_CAMS = (
    ((1.0234, -0.2969, -0.2266), (-0.5625, 1.6328, -0.0469), (-0.0703, 0.2188, 0.6406)),
    ((0.4913, -0.0541, -0.0202), (-0.6130, 1.3513, 0.2906), (-0.1564, 0.2151, 0.7183)),
    ((0.8380, -0.2630, -0.0639), (-0.2887, 1.0725, 0.2496), (-0.0627, 0.1427, 0.5438)),
    ((0.6596, -0.2079, -0.0562), (-0.4782, 1.3016, 0.1933), (-0.0970, 0.1581, 0.5181)),
)
# Linear sRGB (D65) -> CIE XYZ.
SRGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
GAMMA = 2.2


def random_camera(g: torch.Generator, n: int) -> dict[str, torch.Tensor]:
    """``n`` random cameras: colour matrix and gains as the paper draws them (float64).

    ``rgb2cam`` ``(n, 3, 3)``: a random convex combination of the four XYZ -> camera matrices
    times sRGB -> XYZ, rows normalised to sum 1; ``rgb_gain = 1 / N(0.8, 0.1)`` (brightness),
    ``red_gain ~ U(1.9, 2.4)``, ``blue_gain ~ U(1.5, 1.9)`` (white balance).
    """
    w = torch.rand((n, len(XYZ_TO_CAMS), 1, 1), generator=g, dtype=torch.float64)
    xyz2cam = (torch.tensor(XYZ_TO_CAMS, dtype=torch.float64) * w).sum(1) / w.sum(1)
    rgb2cam = xyz2cam @ torch.tensor(SRGB_TO_XYZ, dtype=torch.float64)
    rgb2cam = rgb2cam / rgb2cam.sum(-1, keepdim=True)
    brightness = 0.8 + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    return {
        "rgb2cam": rgb2cam,
        "rgb_gain": 1.0 / brightness.clamp(min=0.1),
        "red_gain": rnd.uniform(g, 1.9, 2.4, n),
        "blue_gain": rnd.uniform(g, 1.5, 1.9, n),
    }


def _gains(cam: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-channel (R, G, B) white-balance x brightness gains ``(n, 3, 1, 1)``."""
    one = torch.ones_like(cam["red_gain"])
    wb = torch.stack([cam["red_gain"], one, cam["blue_gain"]], -1)
    return (wb * cam["rgb_gain"][:, None])[..., None, None]


def _colour(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return torch.einsum("nij,njhw->nihw", m.to(x), x)


def mosaic(x: torch.Tensor) -> torch.Tensor:
    """RGGB Bayer planes ``(N, 4, H/2, W/2)`` (R, G on red rows, G on blue rows, B) of ``(N, 3, H, W)``."""
    return torch.stack(
        [x[:, 0, 0::2, 0::2], x[:, 1, 0::2, 1::2], x[:, 1, 1::2, 0::2], x[:, 2, 1::2, 1::2]], 1
    )


def demosaic(raw: torch.Tensor) -> torch.Tensor:
    """Bilinear demosaicing of RGGB planes ``(N, 4, h, w)`` -> ``(N, 3, 2h, 2w)``.

    Each colour's samples are scattered on the full grid and the gaps filled by normalised
    convolution (the bilinear weights), with mirrored borders.
    """
    n, _, h, w = raw.shape
    full = raw.new_zeros(n, 3, 2 * h, 2 * w)
    mask = raw.new_zeros(1, 3, 2 * h, 2 * w)
    for plane, (c, dy, dx) in enumerate(((0, 0, 0), (1, 0, 1), (1, 1, 0), (2, 1, 1))):
        full[:, c, dy::2, dx::2] = raw[:, plane]
        mask[:, c, dy::2, dx::2] = 1
    k = raw.new_tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    weight = k.expand(3, 1, 3, 3)
    num = F.conv2d(F.pad(full, (1, 1, 1, 1), mode="reflect"), weight, groups=3)
    den = F.conv2d(F.pad(mask, (1, 1, 1, 1), mode="reflect"), weight, groups=3)
    # Keep the measured samples exactly; interpolate the others.
    return torch.where(mask.bool(), full, num / den)


def unprocess(x: torch.Tensor, cam: dict[str, torch.Tensor]) -> torch.Tensor:
    """sRGB ``(N, 3, H, W)`` in [0, 1] (``H``, ``W`` even) -> linear RGGB raw ``(N, 4, H/2, W/2)``."""
    y = x.clamp(0, 1)
    y = 0.5 - torch.sin(torch.asin(1.0 - 2.0 * y) / 3.0)  # inverse of smoothstep 3y² - 2y³
    y = y.clamp(min=1e-8) ** GAMMA
    y = _colour(y, cam["rgb2cam"])
    return mosaic(y / _gains(cam).to(y))


def process(raw: torch.Tensor, cam: dict[str, torch.Tensor]) -> torch.Tensor:
    """Linear RGGB raw ``(N, 4, h, w)`` -> sRGB ``(N, 3, 2h, 2w)`` in [0, 1]: the inverse of
    :func:`unprocess` (gains, demosaic, camera -> sRGB matrix, gamma, smoothstep tone curve)."""
    y = demosaic(raw) * _gains(cam).to(raw)
    y = _colour(y, torch.linalg.inv(cam["rgb2cam"]))
    y = y.clamp(1e-8, 1) ** (1 / GAMMA)
    return 3 * y**2 - 2 * y**3


def camera_noise(
    x: torch.Tensor, g: torch.Generator, shot: tuple[float, float] = (1e-4, 1.2e-2)
) -> tuple[torch.Tensor, dict]:
    """Processed sensor noise: ``process(unprocess(x) + noise)`` with a random camera and
    random shot/read noise levels (:func:`~zoomsr.ops.degrade.noise.sensor_noise_levels`) per
    sample. Odd sizes are mirrored to even and cropped back. Returns ``(image, record)``."""
    n, _, h, w = x.shape
    cam = random_camera(g, n)
    shot_var, read_var = sensor_noise_levels(g, n, shot)
    ph, pw = h % 2, w % 2
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
    raw = heteroscedastic_noise(unprocess(xp, cam), shot_var, read_var, g)
    y = process(raw, cam)[..., :h, :w].clamp(0, 1)
    record = {
        "op": "camera_noise",
        "shot": shot_var.tolist(),
        "read": read_var.tolist(),
        "rgb_gain": cam["rgb_gain"].tolist(),
        "red_gain": cam["red_gain"].tolist(),
        "blue_gain": cam["blue_gain"].tolist(),
        "rgb2cam": cam["rgb2cam"].tolist(),
    }
    return y, record
