"""Dual- and triple-zoom samples: the folder layout, training patches and test inputs.

Vocabulary, for a zoom ratio ``r = f_tele / f_wide``:

- **LR**: the centre crop of the wide shot covering the tele's field of view (H x W);
- **GT**: the tele image aligned to LR's geometry (rH x rW);
- **Ref**: the GT pixels of the centre 1/r of the LR's view, so LR's pixel size at r x zoom.

With three cameras (refs ``(2, 4)``), the middle camera's whole image aligned to the LR's view is
``View2x`` (2H x 2W); **Ref2x** is its centre half and **Ref4x** the GT's centre quarter.

A sample folder holds ``LR.png``, ``GT.png``, ``Ref.png`` (dual) or ``Ref2x.png``, ``Ref4x.png``
and ``View2x.png`` (triple), an optional ``mask.png`` (valid GT pixels, GT or LR size) and
``meta.json`` (ratio, refs, Ref boxes in LR pixels as ``[top, bottom, left, right)``, and how
the sample was made). A dataset is a folder of sample folders. The loaders below re-cut the Refs
from GT and the views, so the Ref files are for people and other tools.

Training follows the SelfDZSR code (reference §2.3, §2.4): a random LR patch, the GT (and view)
patches under it, joint flips and transposes, then a *random* window inside the patch playing the
Ref. Every item is a pure function of ``(seed, index)``; images are held as uint8 tensors, so
workers share them and no file stays open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from zoomsr.atomic import write_json
from zoomsr.data.simulate import in_lr_frame
from zoomsr.data.sisr import item_generator, random_dihedral
from zoomsr.errors import DataError
from zoomsr.io import read_image, write_image
from zoomsr.metrics.regions import centre_box
from zoomsr.ops.flow import dis_flow
from zoomsr.ops.warp import flow_warp

META_FILE = "meta.json"


# --------------------------------------------------------------------------- folders on disk


def write_zoom_sample(folder: str | Path, images: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write ``{stem: (3, H, W) image}`` as ``stem.png`` (8-bit, atomic) plus ``meta.json``."""
    folder = Path(folder)
    for stem, image in images.items():
        write_image(folder / f"{stem}.png", image)
    write_json(folder / META_FILE, meta)
    return folder


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    x = x.expand(3, -1, -1) if x.shape[0] == 1 else x
    return torch.round(x * 255).to(torch.uint8).contiguous()


@dataclass
class ZoomSample:
    """One capture held in memory as uint8 ``(C, H, W)`` tensors (cheap to share with workers)."""

    name: str
    lr: torch.Tensor
    gt: torch.Tensor
    ratio: int
    refs: tuple[int, ...]  # zoom of each Ref vs LR, widest first, ending with ratio
    views: dict[int, torch.Tensor] = field(default_factory=dict)  # zoom a -> (3, aH, aW)
    mask: torch.Tensor | None = None  # (1, rH, rW) uint8, 255 = valid GT pixel
    meta: dict = field(default_factory=dict)

    def image(self, zoom: int) -> torch.Tensor:
        """The camera image at ``zoom`` x the LR sampling (1 = LR, ratio = GT)."""
        if zoom == 1:
            return self.lr
        return self.gt if zoom == self.ratio else self.views[zoom]


def read_zoom_sample(folder: str | Path) -> ZoomSample:
    """Decode a sample folder, check its geometry and keep it as uint8 tensors."""
    folder = Path(folder)
    for stem in ("LR", "GT"):
        if not (folder / f"{stem}.png").is_file():
            raise DataError(f"sample folder '{folder}' has no {stem}.png")
    lr = _to_uint8(read_image(folder / "LR.png").color)
    gt = _to_uint8(read_image(folder / "GT.png").color)
    h, w = lr.shape[-2:]
    meta = {}
    if (folder / META_FILE).is_file():
        try:
            meta = json.loads((folder / META_FILE).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"'{folder / META_FILE}' is not valid JSON: {err}") from None
    ratio = int(meta.get("ratio") or round(gt.shape[-2] / h))
    if tuple(gt.shape[-2:]) != (ratio * h, ratio * w):
        raise DataError(
            f"'{folder}': GT is {gt.shape[-1]}x{gt.shape[-2]} but should be {ratio} x the LR "
            f"({w}x{h}) = {ratio * w}x{ratio * h}"
        )
    views_found = {int(p.stem[4:-1]) for p in folder.glob("View*x.png") if p.stem[4:-1].isdigit()}
    refs = tuple(meta.get("refs") or (*sorted(views_found), ratio))
    views = {}
    for a in refs[:-1]:
        path = folder / f"View{a}x.png"
        if not path.is_file():
            raise DataError(f"'{folder}' is a {len(refs)}-camera sample but has no {path.name}")
        views[a] = _to_uint8(read_image(path).color)
        if tuple(views[a].shape[-2:]) != (a * h, a * w):
            raise DataError(f"'{path}' must be {a * w}x{a * h} ({a} x the LR)")
    mask = None
    if (folder / "mask.png").is_file():
        m = read_image(folder / "mask.png").color[:1]
        if tuple(m.shape[-2:]) == (h, w):  # an LR-sized mask: each LR pixel covers r x r GT pixels
            m = m.repeat_interleave(ratio, -2).repeat_interleave(ratio, -1)
        elif tuple(m.shape[-2:]) != tuple(gt.shape[-2:]):
            raise DataError(f"'{folder}/mask.png' must have the size of GT or of LR")
        mask = torch.round(m * 255).to(torch.uint8)
    return ZoomSample(folder.name, lr, gt, ratio, refs, views, mask, meta)


def find_zoom_samples(root: str | Path) -> list[Path]:
    """The sample folders of a dataset folder (or ``[root]`` when it is a sample itself)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder '{root}' does not exist")
    if (root / "LR.png").is_file():
        return [root]
    found = sorted(p for p in root.iterdir() if p.is_dir() and (p / "LR.png").is_file())
    if not found:
        raise DataError(f"no sample folders (with LR.png and GT.png) in '{root}'")
    return found


def load_zoom_pairs(roots: list[str | Path], scale: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(LR, GT) uint8 pairs of zoom captures, for training a single-image model on them."""
    pairs = []
    for sample in load_zoom_samples(*roots):
        if sample.ratio != scale:
            raise DataError(f"'{sample.name}' is a x{sample.ratio} zoom sample, not x{scale}")
        pairs.append((sample.lr, sample.gt))
    return pairs


def load_zoom_samples(*roots: str | Path) -> list[ZoomSample]:
    """Every sample of the dataset folders, decoded once."""
    return [read_zoom_sample(p) for root in roots for p in find_zoom_samples(root)]


# --------------------------------------------------------------------------- training


def _randint(g: torch.Generator, n: int) -> int:
    """An integer in ``[0, n]`` (inclusive)."""
    return int(torch.randint(n + 1, (), generator=g))


def _crop(x: torch.Tensor, s: int, top: int, left: int, size: int) -> torch.Tensor:
    """The ``s*size`` square at ``s*(top, left)`` of an image at ``s`` x the LR sampling."""
    return x[..., s * top : s * (top + size), s * left : s * (left + size)]


def _box(top: int, left: int, size: int) -> torch.Tensor:
    return torch.tensor([top, top + size, left, left + size], dtype=torch.int64)


class ZoomTrainSet(torch.utils.data.Dataset):
    """Dual-zoom training patches as in SelfDZSR (reference §2.3).

    Item ``i`` (sample ``i mod n``, positions and flips from ``(seed, i)``) is a dict of float
    tensors in [0, 1]: ``lr`` (3, p, p), ``gt`` (3, rp, rp), ``ref`` (3, p, p) = the GT pixels
    of a random ``p/r`` LR-pixel window of the patch, ``lr_ref`` (3, p/r, p/r) = the LR pixels of
    that window, ``ref_box`` (4,) int64 = the window ``[top, bottom, left, right)`` in the LR
    patch, ``gt_mask`` (1, rp, rp) when the samples carry masks, and ``name``. Flips of W, of H
    and the H/W transpose are applied to LR and GT together before the window is cut.
    """

    def __init__(
        self,
        samples: list[ZoomSample],
        ratio: int,
        lr_patch: int = 48,
        seed: int = 0,
        augment: bool = True,
    ):
        if lr_patch % ratio:
            raise DataError(f"LR patch {lr_patch} must be a multiple of the ratio {ratio}")
        wrong = [s for s in samples if s.ratio != ratio]
        if wrong:
            raise DataError(
                f"sample '{wrong[0].name}' has zoom ratio {wrong[0].ratio}, not {ratio}"
            )
        self.samples = [s for s in samples if min(s.lr.shape[-2:]) >= lr_patch]
        if not self.samples:
            raise DataError(f"no sample has an LR of at least {lr_patch}x{lr_patch} px")
        self.ratio, self.patch, self.seed, self.augment = ratio, lr_patch, seed, augment
        self.with_mask = any(s.mask is not None for s in self.samples)

    def __len__(self) -> int:
        return 2**62  # indexed by global sample number; the sampler decides the range

    def _patches(self, index: int, zooms: tuple[int, ...]):
        """Generator, sample and the augmented patches of every zoom (1 = LR) under one LR patch."""
        g = item_generator(self.seed, index)
        s = self.samples[index % len(self.samples)]
        p = self.patch
        h, w = s.lr.shape[-2:]
        top, left = _randint(g, h - p), _randint(g, w - p)
        code = int(torch.randint(8, (), generator=g)) if self.augment else 0
        patches = {z: random_dihedral(_crop(s.image(z), z, top, left, p), code) for z in zooms}
        if self.with_mask:
            mask = s.mask if s.mask is not None else torch.full_like(s.gt[:1], 255)
            patches["mask"] = random_dihedral(_crop(mask, s.ratio, top, left, p), code)
        return g, s, patches

    @staticmethod
    def _float(items: dict) -> dict:
        return {
            k: v.float().div(255).contiguous() if v.dtype == torch.uint8 else v
            for k, v in items.items()
        }

    def __getitem__(self, index: int) -> dict:
        r, p = self.ratio, self.patch
        g, s, pt = self._patches(index, (1, r))
        q = p // r
        top, left = _randint(g, p - q), _randint(g, p - q)
        item = {
            "lr": pt[1],
            "gt": pt[r],
            "ref": _crop(pt[r], r, top, left, q),
            "lr_ref": _crop(pt[1], 1, top, left, q),
            "ref_box": _box(top, left, q),
        }
        if "mask" in pt:
            item["gt_mask"] = pt["mask"]
        return {**self._float(item), "name": s.name}


class TripleZoomTrainSet(ZoomTrainSet):
    """Triple-zoom training patches as in SelfTZSR++ (reference §2.4), for refs ``(a, r)``.

    On top of ``lr`` (3, p, p) and ``gt`` (3, rp, rp): a random ``p/a`` LR-pixel window of the
    patch gives ``ref{a}x`` (3, p, p) from the ``View{a}x`` image and ``lr_ref{a}x``; its centred
    ``p/r`` sub-window gives ``ref{r}x`` (3, p, p) from the GT. ``coord_ref{a}x`` and
    ``coord_ref{r}x`` are their ``[top, bottom, left, right)`` in the LR patch. For (2, 4) and
    p = 48 these are the official 24-px and 12-px windows (``coord_ref4x = coord_ref2x`` + 6).
    """

    def __init__(
        self,
        samples: list[ZoomSample],
        refs: tuple[int, int] = (2, 4),
        lr_patch: int = 48,
        seed: int = 0,
        augment: bool = True,
    ):
        a, r = refs
        if lr_patch % r or r % a:
            raise DataError(f"LR patch {lr_patch} and refs {list(refs)} must divide each other")
        missing = [s.name for s in samples if a not in s.views]
        if missing:
            raise DataError(f"sample '{missing[0]}' has no View{a}x image (needs refs {a},{r})")
        super().__init__(samples, r, lr_patch, seed, augment)
        self.refs = (a, r)

    def __getitem__(self, index: int) -> dict:
        (a, r), p = self.refs, self.patch
        g, s, pt = self._patches(index, (1, a, r))
        qa, qr = p // a, p // r
        top, left = _randint(g, p - qa), _randint(g, p - qa)
        inner = (qa - qr) // 2  # the narrower Ref is centred in the wider one
        item = {
            "lr": pt[1],
            "gt": pt[r],
            f"ref{a}x": _crop(pt[a], a, top, left, qa),
            f"ref{r}x": _crop(pt[r], r, top + inner, left + inner, qr),
            f"lr_ref{a}x": _crop(pt[1], 1, top, left, qa),
            f"coord_ref{a}x": _box(top, left, qa),
            f"coord_ref{r}x": _box(top + inner, left + inner, qr),
        }
        if "mask" in pt:
            item["gt_mask"] = pt["mask"]
        return {**self._float(item), "name": s.name}


@torch.no_grad()
def align_patch(
    lr: torch.Tensor, gt: torch.Tensor, ratio: int, preset: str = "medium"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Warp LR patches onto their GT's geometry (SelfDZSR++ online alignment, reference §2.6).

    ``lr`` (N, 3, h, w) or (3, h, w) and ``gt`` at ``ratio`` x its size, in [0, 1]. The flow from
    LR to the GT's x1/r downsample comes from OpenCV DIS (PWC-Net in the official code). Returns
    ``(lr_warped, lr_mask, gt_mask)``: the warped LR times its binary validity mask, that mask
    (…, 1, h, w) and the mask upsampled x r bilinearly (soft at its edges) for the GT losses.
    The downsample is antialiased bilinear with exact pixel centres (the official code uses
    ``align_corners=True``, which stretches the grid by up to half an LR pixel at the borders).
    """
    single = lr.ndim == 3
    if single:
        lr, gt = lr[None], gt[None]
    if gt.shape[-2:] != (ratio * lr.shape[-2], ratio * lr.shape[-1]):
        raise ValueError(f"gt {tuple(gt.shape)} is not {ratio} x lr {tuple(lr.shape)}")
    down = F.interpolate(
        gt, size=lr.shape[-2:], mode="bilinear", align_corners=False, antialias=True
    )
    warped, mask = flow_warp(lr, dis_flow(down, lr, preset))
    gt_mask = F.interpolate(mask, scale_factor=ratio, mode="bilinear", align_corners=False)
    out = (warped * mask, mask, gt_mask)
    return tuple(t[0] for t in out) if single else out  # type: ignore[return-value]


# --------------------------------------------------------------------------- testing


@dataclass
class ZoomTestSample:
    """A whole capture for testing (reference §2.7), float ``(1, 3, H, W)`` tensors in [0, 1].

    ``lr``, ``gt`` and the views are edge-padded to a multiple of ``pad`` (the padded LR is
    ``H' x W'``); ``refs`` are the centre crops of the padded camera images, widest first, each
    ``ref_boxes[i]`` its ``[top, bottom, left, right)`` in padded-LR pixels, ``lr_refs`` the LR
    pixels there. ``crop`` is the original LR inside the padded one; :meth:`unpad` cuts an SR
    output (or the GT) back to the original ``rH x rW``.
    """

    name: str
    ratio: int
    lr: torch.Tensor
    gt: torch.Tensor
    refs: list[torch.Tensor]
    ref_boxes: list[tuple[int, int, int, int]]
    ref_zooms: tuple[int, ...]
    lr_refs: list[torch.Tensor]
    crop: tuple[int, int, int, int]
    mask: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)

    def unpad(self, x: torch.Tensor, zoom: int | None = None) -> torch.Tensor:
        """Cut the original area out of a padded image at ``zoom`` x the LR size (default r)."""
        z = self.ratio if zoom is None else zoom
        t, b, left, right = self.crop
        return x[..., z * t : z * b, z * left : z * right]


def pad_amounts(size: int, multiple: int, official: bool = False) -> tuple[int, int]:
    """(before, after) padding to a multiple; ``official``: PP ``img_pad``, which always adds 1..8."""
    if multiple <= 1:
        return 0, 0
    target = (size // multiple + 1) * multiple if official else -(-size // multiple) * multiple
    return (target - size) // 2, target - size - (target - size) // 2


def _pad(x: torch.Tensor, zoom: int, ph: tuple[int, int], pw: tuple[int, int]) -> torch.Tensor:
    x = x[None].float().div(255)
    if not any(ph + pw):
        return x
    return F.pad(x, (zoom * pw[0], zoom * pw[1], zoom * ph[0], zoom * ph[1]), mode="replicate")


def _in_lr_frame(s: ZoomSample, zoom: int) -> torch.Tensor:
    """``s.image(zoom)`` in the LR's geometry when the sample records how (else as it is)."""
    aligned = in_lr_frame(s.image(zoom).float() / 255, s.meta, zoom)
    return s.image(zoom) if aligned is None else torch.round(aligned * 255).to(torch.uint8)


def load_zoom_sample(
    folder: str | Path | ZoomSample,
    pad: int = 8,
    official_pad: bool = False,
    align_gt: bool = False,
) -> ZoomTestSample:
    """A test input: the whole LR padded to a multiple of ``pad``, Refs cut from the padded GT
    and views as the PP test code does (``_crop_ref_center``), GT padded alike.

    ``align_gt``: where the sample records its misalignment (simulated), put the GT and the
    Refs cut from it and the views into the LR's geometry (``in_lr_frame``), as the official
    test data are the tele aligned to the wide and ``zoomsr zoom`` aligns a real tele.
    """
    s = folder if isinstance(folder, ZoomSample) else read_zoom_sample(folder)
    h, w = s.lr.shape[-2:]
    ph, pw = pad_amounts(h, pad, official_pad), pad_amounts(w, pad, official_pad)
    lr = _pad(s.lr, 1, ph, pw)
    hp, wp = lr.shape[-2:]
    images = {z: _pad(_in_lr_frame(s, z) if align_gt else s.image(z), z, ph, pw) for z in s.refs}
    refs, boxes, lr_refs = [], [], []
    for z in s.refs:
        b = centre_box(hp, wp, z)
        boxes.append((b.top, b.top + b.height, b.left, b.left + b.width))
        refs.append(
            images[z][..., z * b.top : z * (b.top + b.height), z * b.left : z * (b.left + b.width)]
        )
        lr_refs.append(b.crop(lr))
    mask = None
    if s.mask is not None:
        mask = F.pad(
            s.mask[None].float().div(255),
            tuple(s.ratio * v for v in (*pw, *ph)),
            mode="constant",
            value=0.0,  # padding is invented: never score it
        )
    return ZoomTestSample(
        name=s.name,
        ratio=s.ratio,
        lr=lr,
        gt=images[s.ratio],
        refs=refs,
        ref_boxes=boxes,
        ref_zooms=s.refs,
        lr_refs=lr_refs,
        crop=(ph[0], ph[0] + h, pw[0], pw[0] + w),
        mask=mask,
        meta=s.meta,
    )
