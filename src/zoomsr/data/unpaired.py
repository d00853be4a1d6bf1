"""Unpaired training sets: LR photos of one domain, HR photos of another, no correspondence.

SDFlow (reference ``sdflow_reference.md`` §6) learns SR and downscaling from a set of real LR
images and an unrelated set of HR images. Item ``i`` is a random LR patch and an independent
random HR patch ``scale`` times its side, each with its own flip/rot90, drawn as a pure function
of ``(seed, i)`` (as :class:`~zoomsr.data.sisr.SISRTrainSet`), so resumed and data-parallel runs
see the batches a single uninterrupted run sees.

Images are kept decoded as uint8 RGB. A set whose images are all gray is replicated to RGB (the
flows are RGB), but the LR and HR sets must agree: gray LR with colour HR (or the reverse) is an
error, since the model would learn "remove the colour" as part of the degradation.
"""

from __future__ import annotations

from pathlib import Path

import torch

from zoomsr.data.sisr import item_generator, random_dihedral
from zoomsr.errors import DataError, ZoomsrError
from zoomsr.io import list_images, read_image

MIN_IMAGES = 2  # per set; see _check_count


def _folder_images(folder: str, role: str, key: str) -> list[Path]:
    path = Path(folder).expanduser()
    if not path.exists():
        raise DataError(f"{role} training folder '{folder}' does not exist (data.train.{key})")
    if not path.is_dir():
        raise DataError(f"{role} training data '{folder}' is not a folder (data.train.{key})")
    try:
        return list_images(path)
    except ZoomsrError:  # "no images in folder"
        raise DataError(
            f"no images in {role} training folder '{folder}' (data.train.{key})"
        ) from None


def load_image_set(folders: list[str], role: str, key: str) -> tuple[list[torch.Tensor], bool]:
    """Decoded uint8 ``(C, H, W)`` images of ``folders`` and whether all of them are gray."""
    if not folders:
        raise DataError(f"no {role} training folder: set data.train.{key}")
    images = []
    for folder in folders:
        for p in _folder_images(folder, role, key):
            color = read_image(p).color
            images.append(torch.round(color * 255).to(torch.uint8).contiguous())
    gray = all(im.shape[0] == 1 for im in images)
    return images, gray


def _rgb(images: list[torch.Tensor]) -> list[torch.Tensor]:
    return [im.expand(3, -1, -1).contiguous() if im.shape[0] == 1 else im for im in images]


def _usable(images: list[torch.Tensor], side: int, role: str, where: str, hint: str):
    kept = [im for im in images if min(im.shape[-2:]) >= side]
    if not kept:
        raise DataError(
            f"every {role} image in {where} is smaller than the {side}x{side} {role} patch; {hint}"
        )
    if len(kept) < MIN_IMAGES:
        # One photo is one scene and one capture setting: the flows would learn that image's
        # content and degradation, not a domain. (A single image is what zero-shot models use.)
        small = (
            f" ({len(images) - len(kept)} smaller than the {side}px patch)"
            if kept != images
            else ""
        )
        raise DataError(
            f"{role} training set {where} has {len(kept)} usable image{small}; unpaired training "
            f"learns the distribution of a domain and needs at least {MIN_IMAGES} images "
            f"(better hundreds); for one image use a zero-shot model (--model zssr)"
        )
    return kept


class UnpairedTrainSet(torch.utils.data.Dataset):
    """Item ``i``: ``(lr, hr)``, an LR patch ``patch // scale`` square and an unrelated HR patch
    ``patch`` square, both float in [0, 1], 3 channels.

    ``dequantize``: add uniform noise of one 8-bit level, ``(k + u) / 256`` with u ~ U[0, 1)
    (the usual dequantisation of flows trained by likelihood), drawn from the item's stream.
    """

    def __init__(
        self,
        lr_images: list[torch.Tensor],
        hr_images: list[torch.Tensor],
        scale: int,
        patch: int,
        seed: int = 0,
        flip: bool = True,
        rot90: bool = True,
        dequantize: bool = False,
        where: tuple[str, str] = ("(LR)", "(HR)"),
    ):
        if patch % scale:
            raise DataError(f"HR patch size {patch} is not a multiple of the scale {scale}")
        self.scale, self.patch, self.lr_patch = scale, patch, patch // scale
        self.seed, self.dequantize = seed, dequantize
        hint = "lower data.train.patch"
        self.lr_images = _rgb(_usable(lr_images, self.lr_patch, "LR", where[0], hint))
        self.hr_images = _rgb(_usable(hr_images, patch, "HR", where[1], hint))
        self.augment_codes = 8 if rot90 else (4 if flip else 1)

    @classmethod
    def from_folders(
        cls, lr_folders: list[str], hr_folders: list[str], scale: int, patch: int, **kwargs
    ) -> UnpairedTrainSet:
        """The set of ``data.train.lr`` and ``data.train.hr`` folders, checked (module docstring)."""
        same = {str(Path(f).expanduser().resolve()) for f in lr_folders} & {
            str(Path(f).expanduser().resolve()) for f in hr_folders
        }
        if same:
            raise DataError(
                f"'{sorted(same)[0]}' is both an LR and an HR training folder; unpaired training "
                "needs real LR photos and separate HR photos"
            )
        lr, lr_gray = load_image_set(lr_folders, "LR", "lr")
        hr, hr_gray = load_image_set(hr_folders, "HR", "hr")
        lr_where, hr_where = (f"'{', '.join(map(str, f))}'" for f in (lr_folders, hr_folders))
        if lr_gray != hr_gray:
            kinds = {True: "gray", False: "colour"}
            raise DataError(
                f"the LR images in {lr_where} are {kinds[lr_gray]} but the HR images in "
                f"{hr_where} are {kinds[hr_gray]}; use the same kind for both sets"
            )
        return cls(lr, hr, scale, patch, where=(lr_where, hr_where), **kwargs)

    def __len__(self) -> int:
        return 2**62  # indexed by global sample number; the sampler decides the range

    def _crop(self, images, side: int, g: torch.Generator) -> torch.Tensor:
        im = images[int(torch.randint(len(images), (1,), generator=g))]
        h, w = im.shape[-2:]
        top = int(torch.randint(h - side + 1, (1,), generator=g))
        left = int(torch.randint(w - side + 1, (1,), generator=g))
        x = im[:, top : top + side, left : left + side]
        return random_dihedral(x, int(torch.randint(self.augment_codes, (1,), generator=g)))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = item_generator(self.seed, index)
        # Both crops first, then the noise: the patches do not depend on ``dequantize``.
        lr = self._crop(self.lr_images, self.lr_patch, g).float()
        hr = self._crop(self.hr_images, self.patch, g).float()
        if self.dequantize:
            lr = (lr + torch.rand(lr.shape, generator=g)) / 256
            hr = (hr + torch.rand(hr.shape, generator=g)) / 256
        else:
            lr, hr = lr / 255, hr / 255
        return lr.contiguous(), hr.contiguous()
