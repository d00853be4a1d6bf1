"""Single-image SR datasets: benchmark folders for evaluation.

Accepted layouts of a folder ROOT, for scale s:
- EDSR-PyTorch benchmark: ``ROOT/HR/NAME.png`` + ``ROOT/LR_bicubic/X{s}/NAMEx{s}.png``;
- paired: ``ROOT/HR/`` + ``ROOT/LR/`` (or ``ROOT/LR/X{s}/``), LR named ``NAME`` or ``NAMEx{s}``;
- HR only: ``ROOT/HR/`` or a folder of images; LR is made by MATLAB-exact bicubic downscaling
  of the HR mod-cropped to a multiple of s (the recipe of the published benchmarks);
- zoom samples (``zoomsr simulate`` / ``prepare``): folders with ``LR.png`` and ``GT.png``; the
  scale is the zoom ratio and the "centre" region is the part the reference covers.
HR is compared on its top-left ``s*h x s*w`` part (MATLAB ``modcrop``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from zoomsr.errors import DataError
from zoomsr.io import IMAGE_EXTENSIONS, read_image
from zoomsr.ops.resize import imresize


@dataclass(frozen=True)
class EvalPair:
    name: str
    hr_path: Path
    lr_path: Path | None  # None: the LR is made from the HR by exact bicubic downscaling


@dataclass
class EvalSample:
    name: str
    lr: torch.Tensor  # (1, C, h, w) in [0, 1]
    hr: torch.Tensor  # (1, C, s*h, s*w) in [0, 1]
    bit_depth: int


def _images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def _lr_folder(root: Path, scale: int) -> Path | None:
    for cand in (
        root / "LR_bicubic" / f"X{scale}",
        root / "LR" / f"X{scale}",
        root / f"LR_x{scale}",
        root / "LR",
    ):
        if cand.is_dir() and _images(cand):
            return cand
    return None


def _zoom_pairs(root: Path, scale: int) -> list[EvalPair] | None:
    """Dual/triple-zoom sample folders (LR.png + GT.png + meta.json): LR -> GT at the zoom ratio."""
    folders = (
        [root]
        if (root / "LR.png").is_file()
        else sorted(p for p in root.iterdir() if (p / "LR.png").is_file())
    )
    if not folders:
        return None
    pairs = []
    for folder in folders:
        meta = folder / "meta.json"
        ratio = json.loads(meta.read_text()).get("ratio") if meta.is_file() else None
        if ratio is not None and round(float(ratio)) != scale:
            raise DataError(
                f"'{folder.name}' is a x{ratio} zoom sample; evaluate it with --scale {ratio}"
            )
        pairs.append(EvalPair(folder.name, folder / "GT.png", folder / "LR.png"))
    return pairs


def find_eval_pairs(root: str | Path, scale: int) -> list[EvalPair]:
    """The (HR, LR) pairs of a benchmark folder; see the module docstring for layouts."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder '{root}' does not exist")
    zoom = _zoom_pairs(root, scale)
    if zoom is not None:
        return zoom
    hr_dir = root / "HR" if (root / "HR").is_dir() else root
    hrs = _images(hr_dir)
    if not hrs:
        raise DataError(f"no images found in '{hr_dir}' (expected HR/ or a folder of images)")
    lr_dir = _lr_folder(root, scale) if hr_dir != root else None
    if lr_dir is None:
        return [EvalPair(p.stem, p, None) for p in hrs]
    lrs = {p.stem: p for p in _images(lr_dir)}
    pairs = []
    for hr in hrs:
        lr = lrs.get(f"{hr.stem}x{scale}") or lrs.get(hr.stem)
        if lr is None:
            raise DataError(
                f"no LR image for '{hr.name}' in '{lr_dir}' (expected {hr.stem}x{scale}.* or {hr.stem}.*)"
            )
        pairs.append(EvalPair(hr.stem, hr, lr))
    return pairs


def make_lr(hr: torch.Tensor, scale: int, bit_depth: int = 8) -> torch.Tensor:
    """MATLAB ``imresize(modcrop(HR, s), 1/s)`` of an integer image, exact at its bit depth."""
    h, w = hr.shape[-2] - hr.shape[-2] % scale, hr.shape[-1] - hr.shape[-1] % scale
    levels = 2**bit_depth - 1
    return imresize(hr[..., :h, :w].double(), 1 / scale, levels=levels).float()


def load_eval_sample(pair: EvalPair, scale: int) -> EvalSample:
    hr_img = read_image(pair.hr_path)
    hr = hr_img.color.unsqueeze(0)
    if pair.lr_path is None:
        lr = make_lr(hr, scale, hr_img.bit_depth)
    else:
        lr_img = read_image(pair.lr_path)
        lr = lr_img.color.unsqueeze(0)
        if lr.shape[1] != hr.shape[1]:
            raise DataError(
                f"'{pair.lr_path.name}' has {lr.shape[1]} channel(s) but '{pair.hr_path.name}' has {hr.shape[1]}"
            )
    h, w = lr.shape[-2] * scale, lr.shape[-1] * scale
    if hr.shape[-2] < h or hr.shape[-1] < w:
        raise DataError(
            f"HR '{pair.hr_path.name}' ({hr.shape[-1]}x{hr.shape[-2]}) is smaller than "
            f"{scale} x its LR ({lr.shape[-1]}x{lr.shape[-2]}): wrong scale?"
        )
    return EvalSample(pair.name, lr, hr[..., :h, :w], hr_img.bit_depth)


# --- training ---------------------------------------------------------------------------


def load_training_images(folders: list[str], limit: int = 0) -> list[torch.Tensor]:
    """Decode every image of the folders once, as uint8 RGB ``(3, H, W)`` tensors."""
    from zoomsr.io import list_images

    paths = [p for folder in folders for p in list_images(folder)]
    if limit:
        paths = paths[:limit]
    if not paths:
        raise DataError(f"no training images in {', '.join(folders)}")
    images = []
    for p in paths:
        color = read_image(p).color
        color = color.expand(3, -1, -1) if color.shape[0] == 1 else color
        images.append(torch.round(color * 255).to(torch.uint8).contiguous())
    return images


def item_generator(seed: int, index: int, salt: int | None = None) -> torch.Generator:
    """The RNG of training item ``index``, a pure function of (seed, [salt,] index): resumed
    runs and any number of workers draw the same items. (``hash`` of an int tuple is stable
    across processes, unlike that of a str.)"""
    key = (int(seed), int(index)) if salt is None else (int(seed), salt, int(index))
    return torch.Generator().manual_seed(hash(key) & (2**63 - 1))


def random_dihedral(x: torch.Tensor, code: int) -> torch.Tensor:
    """One of the 8 flips/rotations of ``(..., H, W)``, chosen by ``code`` in 0..7."""
    if code & 1:
        x = x.flip(-1)
    if code & 2:
        x = x.flip(-2)
    if code & 4:
        x = x.transpose(-2, -1)
    return x


class SISRTrainSet(torch.utils.data.Dataset):
    """Random HR patches with LR made on the fly by MATLAB-exact bicubic downscaling.

    Item ``i`` is a pure function of ``(seed, i)``: which image, where, which flip. So a run
    resumed at step k sees exactly the batches it would have seen, with any number of workers.
    """

    def __init__(
        self,
        images: list[torch.Tensor],
        scale: int,
        patch: int,
        seed: int = 0,
        flip: bool = True,
        rot90: bool = True,
    ):
        if patch % scale:
            raise DataError(f"HR patch size {patch} is not a multiple of the scale {scale}")
        small = [i for i, im in enumerate(images) if min(im.shape[-2:]) < patch]
        if len(small) == len(images):
            raise DataError(f"every training image is smaller than the {patch}px HR patch")
        self.images = [im for im in images if min(im.shape[-2:]) >= patch]
        self.scale, self.patch, self.seed = scale, patch, seed
        self.augment_codes = 8 if rot90 else (4 if flip else 1)

    def __len__(self) -> int:
        return 2**62  # indexed by global sample number; the sampler decides the range

    def hr_patch(self, index: int) -> torch.Tensor:
        """The augmented HR patch ``(3, p, p)`` of item ``index``."""
        g = item_generator(self.seed, index)
        im = self.images[int(torch.randint(len(self.images), (1,), generator=g))]
        h, w = im.shape[-2:]
        s, p = self.scale, self.patch
        # Crop on the scale grid so the LR/HR alignment is the benchmark's.
        top = int(torch.randint((h - p) // s + 1, (1,), generator=g)) * s
        left = int(torch.randint((w - p) // s + 1, (1,), generator=g)) * s
        hr = im[:, top : top + p, left : left + p].float() / 255
        return random_dihedral(hr, int(torch.randint(self.augment_codes, (1,), generator=g)))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        hr = self.hr_patch(index)
        lr = imresize(hr.double(), 1 / self.scale, levels=255).float()
        return lr, hr.contiguous()


class StepSampler(torch.utils.data.Sampler):
    """Global sample indices ``[start, stop)``, optionally strided over distributed ranks."""

    def __init__(self, start: int, stop: int, rank: int = 0, world: int = 1):
        self.start, self.stop, self.rank, self.world = start, stop, rank, world

    def __iter__(self):
        return iter(range(self.start + self.rank, self.stop, self.world))

    def __len__(self) -> int:
        return max(0, (self.stop - self.start - self.rank + self.world - 1) // self.world)


def load_training_pairs(
    hr_folders: list[str], lr_folder: str, scale: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(LR, HR) uint8 pairs matched by name (``NAME`` or ``NAMEx{s}``); HR mod-cropped to s x LR."""
    from zoomsr.io import list_images

    lrs = {p.stem: p for p in list_images(lr_folder)}
    pairs = []
    for folder in hr_folders:
        for hr_path in list_images(folder):
            lr_path = lrs.get(f"{hr_path.stem}x{scale}") or lrs.get(hr_path.stem)
            if lr_path is None:
                raise DataError(f"no LR image for '{hr_path.name}' in '{lr_folder}'")
            sample = load_eval_sample(EvalPair(hr_path.stem, hr_path, lr_path), scale)
            lr, hr = (
                torch.round(t[0].expand(3, -1, -1) * 255).to(torch.uint8)
                for t in (sample.lr, sample.hr)
            )
            pairs.append((lr.contiguous(), hr.contiguous()))
    if not pairs:
        raise DataError(f"no training pairs in {', '.join(hr_folders)}")
    return pairs


class SISRPairedSet(SISRTrainSet):
    """Random aligned patches of given (LR, HR) pairs, e.g. real captures or another degradation."""

    def __init__(
        self, pairs, scale: int, patch: int, seed: int = 0, flip: bool = True, rot90: bool = True
    ):
        super().__init__([hr for _, hr in pairs], scale, patch, seed, flip, rot90)
        self.pairs = [(lr, hr) for lr, hr in pairs if min(hr.shape[-2:]) >= patch]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = item_generator(self.seed, index)
        lr_im, hr_im = self.pairs[int(torch.randint(len(self.pairs), (1,), generator=g))]
        s, lp = self.scale, self.patch // self.scale
        h, w = lr_im.shape[-2:]
        top = int(torch.randint(h - lp + 1, (1,), generator=g))
        left = int(torch.randint(w - lp + 1, (1,), generator=g))
        code = int(torch.randint(self.augment_codes, (1,), generator=g))
        lr = lr_im[:, top : top + lp, left : left + lp].float() / 255
        hr = hr_im[:, top * s : (top + lp) * s, left * s : (left + lp) * s].float() / 255
        return random_dihedral(lr, code).contiguous(), random_dihedral(hr, code).contiguous()
