"""Simulated multi-camera captures made from one high-resolution photo.

The photo plays the telephoto camera: cropped to a multiple of the ratio, it is the **GT**. The
wide camera's **LR** (the centre crop of the wide shot covering the tele's field of view) is a
degraded downscale of the GT by the zoom ratio ``r``: optical blur, sensor sampling, a small
misalignment, a colour shift, sensor noise and JPEG, each drawn at random and written to
``meta.json``. The **Ref** is the GT pixels of the centre ``1/r`` of the LR's view, at the LR's
pixel size. For three cameras (``refs=(2, 4)``), the middle camera is a degraded 2x downscale
of the GT (``View2x``) and Ref2x its centre half; Ref4x is the GT's centre quarter.

Everything is a pure function of the seed (an explicit ``torch.Generator``; no global RNG).
Degradations are written here rather than taken from a library because what matters is the
record of every drawn parameter, which general augmentation libraries do not give.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import torch
import torch.nn.functional as F

from zoomsr.errors import DataError, ZoomsrError
from zoomsr.io import list_images, read_image
from zoomsr.metrics.regions import centre_box
from zoomsr.ops.color import quantize
from zoomsr.ops.degrade import anisotropic_gaussian_kernel, blur, jpeg_compress
from zoomsr.ops.resize import imresize


@dataclass(frozen=True)
class DegradationRanges:
    """Ranges the per-camera degradation parameters are drawn from (uniform unless stated).

    Blur sigmas are in pixels of the sharper image *per unit of downscale factor* (a x4 camera
    gets 4x these), so the blur relative to the LR pixel is the same at every ratio.
    """

    blur_sigma: tuple[float, float] = (0.1, 0.35)
    shift: float = 1.0  # max |translation| in LR pixels
    rotation_deg: float = 0.3  # max |rotation|
    zoom: float = 0.005  # max |scale - 1|
    gain: tuple[float, float] = (0.92, 1.08)  # per channel
    gamma: tuple[float, float] = (0.93, 1.07)  # per channel
    shot: tuple[float, float] = (1e-4, 2e-3)  # log-uniform; variance per unit of signal
    jpeg_quality: tuple[int, int] = (75, 95)  # inclusive


# --------------------------------------------------------------------------- random draws


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]`` (both inclusive)."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


def derive_seed(seed: int, name: str) -> int:
    """A stable per-item seed: hashlib, because Python's ``hash`` of a str changes per process."""
    return int(hashlib.sha256(f"{seed}/{name}".encode()).hexdigest()[:15], 16)


# --------------------------------------------------------------------------- degradations


def anisotropic_gaussian(sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """A normalised ``(k, k)`` Gaussian with axes ``sigma_x``, ``sigma_y`` rotated by ``theta``,
    ``k = 2 ceil(3 max σ) + 1``."""
    size = 2 * math.ceil(3 * max(sigma_x, sigma_y)) + 1
    return anisotropic_gaussian_kernel(size, sigma_x, sigma_y, theta)


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return blur(x[None], kernel)[0]


def _affine(x: torch.Tensor, matrix: list[list[float]], mode: str = "bilinear") -> torch.Tensor:
    """Sample ``x`` at ``A @ (col, row, 1)`` for every output pixel (reflected border)."""
    _, h, w = x.shape
    a = torch.tensor(matrix, dtype=torch.float32)
    gy, gx = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    sx = a[0, 0] * gx + a[0, 1] * gy + a[0, 2]
    sy = a[1, 0] * gx + a[1, 1] * gy + a[1, 2]
    grid = torch.stack([(2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1], dim=-1)[None]
    return F.grid_sample(x[None], grid, mode=mode, padding_mode="reflection", align_corners=False)[
        0
    ]


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    return jpeg_compress(x[None], quality)[0]


def degrade(
    sharp: torch.Tensor, factor: int, g: torch.Generator, ranges: DegradationRanges
) -> tuple[torch.Tensor, dict]:
    """A simulated lesser-zoom camera image of ``sharp`` (3, H, W): ``(image, parameters)``.

    Order follows the capture: lens blur, sensor sampling (MATLAB bicubic by ``1/factor``),
    misalignment (affine warp around the centre), colour (per-channel gain, then gamma),
    shot + read noise, JPEG. The image is on the 8-bit grid, as the file will store it.
    """
    rg = ranges
    sig = [_uniform(g, *rg.blur_sigma) * factor for _ in range(2)]
    theta = _uniform(g, 0.0, math.pi)
    x = _blur(sharp, anisotropic_gaussian(sig[0], sig[1], theta))
    x = imresize(x, 1 / factor).clamp(0, 1)

    _, h, w = x.shape
    tx, ty = _uniform(g, -rg.shift, rg.shift), _uniform(g, -rg.shift, rg.shift)
    angle = _uniform(g, -rg.rotation_deg, rg.rotation_deg)
    zoom = 1 + _uniform(g, -rg.zoom, rg.zoom)
    # Rotate and scale about the image centre, then translate: source = R·(p - c)/zoom + c + t.
    cx, cy = (w - 1) / 2, (h - 1) / 2
    ca, sa = math.cos(math.radians(angle)) / zoom, math.sin(math.radians(angle)) / zoom
    matrix = [
        [ca, -sa, cx - ca * cx + sa * cy + tx],
        [sa, ca, cy - sa * cx - ca * cy + ty],
    ]
    x = _affine(x, matrix)

    gains = [_uniform(g, *rg.gain) for _ in range(3)]
    gammas = [_uniform(g, *rg.gamma) for _ in range(3)]
    x = (x.clamp(0, 1) * torch.tensor(gains).view(3, 1, 1)).clamp(0, 1)
    x = x ** torch.tensor(gammas).view(3, 1, 1)

    # Signal-dependent Gaussian noise, variance = shot·x + read (Brooks et al. 2019, CVPR):
    # the read variance follows their log-linear fit to real sensors.
    shot = math.exp(_uniform(g, math.log(rg.shot[0]), math.log(rg.shot[1])))
    read = math.exp(2.18 * math.log(shot) + 1.20 + 0.26 * float(torch.randn((), generator=g)))
    noise = torch.randn(x.shape, generator=g) * torch.sqrt(shot * x + read)
    x = quantize(x + noise)

    quality = _randint(g, *rg.jpeg_quality)
    x = _jpeg(x, quality)
    params = {
        "downscale": {"factor": factor, "method": "matlab_bicubic"},
        "blur": {"type": "anisotropic_gaussian", "sigma_x": sig[0], "sigma_y": sig[1], "theta": theta,
                 "size": 2 * math.ceil(3 * max(sig)) + 1, "on": "sharp image, before downscale"},
        "warp": {"tx": tx, "ty": ty, "rotation_deg": angle, "zoom": zoom, "matrix": matrix,
                 "convention": "output pixel (col,row) samples input at matrix @ (col,row,1); bilinear, reflect"},
        "colour": {"gain": gains, "gamma": gammas, "formula": "clip(gain*x)**gamma, per RGB channel"},
        "noise": {"shot": shot, "read": read, "formula": "x + N(0, shot*x + read) on [0,1] values"},
        "jpeg": {"quality": quality, "codec": f"opencv {cv2.__version__}"},
    }  # fmt: skip
    return x, params


def _at_zoom(matrix: list[list[float]], zoom: int) -> torch.Tensor:
    """An LR-pixel affine (2 x 3) as a 3 x 3 affine on the pixels of an image ``zoom`` x larger:
    pixel centres map as ``x_z = zoom (x_lr + 1/2) - 1/2``."""
    m = torch.eye(3, dtype=torch.float64)
    m[:2] = torch.tensor(matrix, dtype=torch.float64)
    c = (zoom - 1) / 2
    s = torch.tensor([[zoom, 0, c], [0, zoom, c], [0, 0, 1]], dtype=torch.float64)
    return s @ m @ torch.linalg.inv(s)


def in_lr_frame(image: torch.Tensor, meta: dict, zoom: int | None = None) -> torch.Tensor | None:
    """A camera image of a simulated capture warped into the LR's geometry; ``None`` when the
    sample records no misalignment (not simulated).

    The official test data are the tele (GT and its centre, the Ref) *aligned to the wide* by
    optical flow (selfdzsr_eccv2022 §4), as ``zoomsr zoom`` aligns a real tele by homography.
    A simulated capture knows every camera's misalignment exactly, so its test inputs and GT
    can be put in that frame exactly. ``image`` is ``(C, zH, zW)`` float in [0, 1] at ``zoom``
    x the LR sampling (default the ratio: the GT); another zoom is the ``View{zoom}x`` camera,
    whose own recorded warp is undone first.
    """
    try:
        cameras = meta["simulation"]["cameras"]
        ratio = int(meta["ratio"])
        zoom = ratio if zoom is None else int(zoom)
        m = _at_zoom(cameras["LR"]["warp"]["matrix"], zoom)
        if zoom != ratio:  # the view sampled its sharp image at its own warp: invert that one
            own = torch.eye(3, dtype=torch.float64)
            own[:2] = torch.tensor(cameras[f"View{zoom}x"]["warp"]["matrix"], dtype=torch.float64)
            m = torch.linalg.inv(own) @ m
    except (KeyError, TypeError):
        return None
    # Bicubic keeps the GT's detail; the border is reflected, as the LR's was.
    return _affine(image.float(), m[:2].tolist(), mode="bicubic").clamp(0, 1)


# --------------------------------------------------------------------------- one capture


def check_refs(ratio: int, refs: Sequence[int] = ()) -> tuple[int, ...]:
    """The zoom levels of the references, widest first and ending with ``ratio`` (``()`` = dual)."""
    if isinstance(ratio, float) and not ratio.is_integer():
        raise ZoomsrError(f"simulated zoom ratio must be an integer (2, 3, 4, ...), got {ratio}")
    ratio = int(ratio)
    if ratio < 2:
        raise ZoomsrError(f"zoom ratio must be at least 2 for a simulated capture, got {ratio}")
    refs = tuple(int(a) for a in refs) or (ratio,)
    if refs[-1] != ratio:
        raise ZoomsrError(
            f"refs {list(refs)} must end with the zoom ratio {ratio} (e.g. 2,{ratio})"
        )
    if any(b <= a for a, b in itertools.pairwise(refs)) or refs[0] < 2:
        raise ZoomsrError(f"refs {list(refs)} must increase and start at 2 or more")
    if any(ratio % a for a in refs):
        raise ZoomsrError(f"every ref zoom must divide the ratio {ratio}, got {list(refs)}")
    return refs


def ref_names(refs: Sequence[int]) -> list[str]:
    """File stems of the references: ``Ref`` for two cameras, ``Ref2x``, ``Ref4x``, ... for more."""
    return ["Ref"] if len(refs) == 1 else [f"Ref{a}x" for a in refs]


def lr_multiple(refs: Sequence[int]) -> int:
    """The LR size must be a multiple of this so every centre box is whole and exactly centred."""
    return math.lcm(*(2 * a for a in refs))


def simulate_capture(
    photo: torch.Tensor,
    ratio: int,
    refs: tuple[int, ...] = (),
    seed: int = 0,
    max_size: int | None = None,
    ranges: DegradationRanges | None = None,
) -> dict:
    """Simulate a dual (``refs=()``) or multi-camera capture from a photo (3, H, W) in [0, 1].

    Returns ``{stem: image}`` for the files of a sample folder (``LR``, ``GT``, ``Ref`` or
    ``Ref2x``/``Ref4x``, and ``View2x`` = the whole middle-camera image at 2x the LR size), all on
    the 8-bit grid, plus ``"meta"``: ratio, refs, sizes, each Ref's box ``[top, bottom, left,
    right]`` in LR pixels, the photo crop and every drawn degradation parameter. With
    ``max_size``, GT is a random crop of at most that many pixels per side.
    """
    refs = check_refs(ratio, refs)
    ratio = refs[-1]
    ranges = ranges or DegradationRanges()
    if photo.ndim != 3 or photo.shape[0] != 3:
        raise DataError(f"a photo must be (3, H, W) RGB, got {tuple(photo.shape)}")
    g = torch.Generator().manual_seed(int(seed))

    # GT = a crop of the photo whose LR is a multiple of lr_multiple (exact centred boxes).
    step = ratio * lr_multiple(refs)
    _, ph, pw = photo.shape
    limit = max_size or max(ph, pw)
    gh, gw = (min(n, limit) // step * step for n in (ph, pw))
    if gh == 0 or gw == 0:
        raise DataError(
            f"photo of {pw}x{ph} px is too small for ratio {ratio} (needs at least {step} px per side)"
        )
    top, left = _randint(g, 0, ph - gh), _randint(g, 0, pw - gw)
    gt = quantize(photo[:, top : top + gh, left : left + gw].float())
    h, w = gh // ratio, gw // ratio

    images: dict[str, torch.Tensor] = {}
    cameras: dict[str, dict] = {}
    images["LR"], cameras["LR"] = degrade(gt, ratio, g, ranges)
    views = {ratio: gt}
    for a in refs[:-1]:
        views[a], cameras[f"View{a}x"] = degrade(gt, ratio // a, g, ranges)
        images[f"View{a}x"] = views[a]
    images["GT"] = gt

    boxes = {}
    for a, name in zip(refs, ref_names(refs), strict=True):
        b = centre_box(h, w, a)  # the centre 1/a of the LR's view, in LR pixels
        boxes[name] = [b.top, b.top + b.height, b.left, b.left + b.width]
        images[name] = views[a][
            :, a * b.top : a * (b.top + b.height), a * b.left : a * (b.left + b.width)
        ].contiguous()

    images["meta"] = {
        "format": "zoomsr.zoom_sample",
        "version": 1,
        "source": "simulated",
        "layout": "dual" if len(refs) == 1 else "multi",
        "ratio": ratio,
        "refs": list(refs),
        "lr_size": [h, w],
        "gt_size": [gh, gw],
        "ref_boxes": boxes,
        "box_format": "[top, bottom, left, right) in LR pixels",
        "views": {f"View{a}x": a for a in refs[:-1]},
        "simulation": {
            "seed": int(seed),
            "photo_size": [ph, pw],
            "photo_box": [top, top + gh, left, left + gw],
            "ranges": asdict(ranges),
            "cameras": cameras,
        },
    }
    return images


# --------------------------------------------------------------------------- a folder


def simulate_dataset(
    photos_dir: str | Path,
    out_dir: str | Path,
    ratio: int,
    refs: tuple[int, ...] = (),
    seed: int = 0,
    crop: int | None = None,
    overwrite: bool = False,
    progress: Callable[[Iterable, str], Iterable] | None = None,
) -> list[Path]:
    """One sample folder ``out_dir/<photo stem>/`` per photo; returns the folders written.

    ``crop`` is the largest GT side (a random crop, recorded in meta.json). Photo ``i`` uses the
    seed ``derive_seed(seed, stem)``, so adding a photo changes no other sample. Refuses a
    non-empty ``out_dir`` unless ``overwrite``. Everything is checked before anything is written.
    """
    from zoomsr.data.zoom import write_zoom_sample

    refs = check_refs(ratio, refs)
    photos = list_images(photos_dir)
    stems = [p.stem for p in photos]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise DataError(f"several photos named '{dupes[0]}' in '{photos_dir}'; rename one")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ZoomsrError(f"output '{out}' is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ZoomsrError(f"output folder '{out}' is not empty (pass --overwrite to write into it)")
    if crop is not None and crop < refs[-1] * lr_multiple(refs):
        raise ZoomsrError(f"crop {crop} is too small for ratio {refs[-1]}")

    written = []
    for path in (progress or (lambda it, _d: it))(photos, "simulate"):
        img = read_image(path)
        color = img.color.expand(3, -1, -1) if img.is_gray else img.color
        sample = simulate_capture(color, refs[-1], refs, derive_seed(seed, path.stem), crop)
        meta = sample.pop("meta")
        meta["simulation"]["photo"] = path.name
        meta["simulation"]["dataset_seed"] = int(seed)
        written.append(write_zoom_sample(out / path.stem, sample, meta))
    return written
