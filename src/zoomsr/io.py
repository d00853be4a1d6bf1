"""Reading and writing images.

:func:`read_image` decodes PNG, JPEG, TIFF, BMP and WebP (and the other formats Pillow reads)
into an :class:`Image`: float32 pixels in [0, 1], turned upright by the EXIF orientation, plus
the form of the file (gray or RGB, alpha, bit depth, ICC profile), so that :func:`write_image`
can write a result in the same form.

Pillow decodes and validates: it refuses truncated data, where OpenCV silently fills a cut JPEG.
Pillow cuts 16-bit colour to 8 bits, so 16-bit colour PNGs are decoded by OpenCV and 16-bit
colour TIFFs by tifffile, once Pillow has read the header (and, for PNG, checked every chunk).

Writes are atomic (temporary file in the same folder, then rename) and never replace an input
unless asked to.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile
import torch
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from zoomsr.atomic import atomic_write
from zoomsr.errors import ImageReadError, ImageWriteError, ZoomsrError
from zoomsr.ops.color import to_gray

__all__ = ["IMAGE_EXTENSIONS", "Image", "list_images", "read_image", "write_image"]

PathLike = str | os.PathLike

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

_WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WEBP",
}
_WITHOUT_ALPHA = ("JPEG", "BMP")
_WITH_16_BIT = ("PNG", "TIFF")

# EXIF orientation -> the transform that makes an (H, W, ...) array upright; the same transforms
# as PIL.ImageOps.exif_transpose (checked by the tests), applied to arrays so that one code path
# serves both the Pillow and the 16-bit decoders.
_UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1],  # mirrored top-bottom
    5: lambda a: a.swapaxes(0, 1),  # transposed
    6: lambda a: np.rot90(a, -1),  # rotate 90 clockwise
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),  # transversed
    8: lambda a: np.rot90(a, 1),  # rotate 90 counter-clockwise
}


@dataclass
class Image:
    """An image's pixels and the form its file stored them in.

    ``color`` is (C, H, W) float32 in [0, 1] with C = 1 (gray) or 3 (RGB), already upright;
    ``alpha`` is (1, H, W) float32 in [0, 1], or None. ``bit_depth`` is bits per sample of the
    source (8 or 16), ``source_mode`` what the file stored in Pillow's terms ('L', 'P', 'CMYK',
    'RGB;16', ...). Build a result with :meth:`replace` to keep the form when writing it.
    """

    color: torch.Tensor
    alpha: torch.Tensor | None = None
    bit_depth: int = 8
    icc_profile: bytes | None = None
    source_format: str | None = None
    source_mode: str | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.color.ndim != 3 or self.color.shape[0] not in (1, 3):
            raise ValueError(
                f"Image.color must be (C, H, W) with C 1 or 3, got {tuple(self.color.shape)}"
            )
        if self.alpha is not None and tuple(self.alpha.shape) != (1, *self.color.shape[1:]):
            raise ValueError(
                f"Image.alpha must be (1, H, W) = (1, {self.height}, {self.width}), "
                f"got {tuple(self.alpha.shape)}"
            )
        if self.bit_depth not in (8, 16):
            raise ValueError(f"Image.bit_depth must be 8 or 16, got {self.bit_depth}")

    @property
    def height(self) -> int:
        return int(self.color.shape[-2])

    @property
    def width(self) -> int:
        return int(self.color.shape[-1])

    @property
    def channels(self) -> int:
        """Colour channels, alpha not counted: 1 or 3."""
        return int(self.color.shape[0])

    @property
    def is_gray(self) -> bool:
        return self.channels == 1

    @property
    def has_alpha(self) -> bool:
        return self.alpha is not None

    def replace(self, color: torch.Tensor, alpha: torch.Tensor | None = None) -> Image:
        """A new image with these pixels, in this image's form (bit depth, ICC profile, gray-ness).

        ``color`` is (C, H, W) or (1, C, H, W) with C = 1 or 3; it is made gray (BT.601 luma,
        exact for replicated gray) or RGB to match this image. ``alpha`` is (1, H, W) or
        (1, 1, H, W); when this image has alpha and none is given, the new image gets a fully
        opaque one, so that its file still has an alpha channel.
        """
        color = _unbatch(color).float()
        if self.is_gray and color.shape[0] == 3:
            color = to_gray(color)
        elif not self.is_gray and color.shape[0] == 1:
            color = color.expand(3, -1, -1)
        if alpha is not None:
            alpha = _unbatch(alpha).float().contiguous()
        elif self.has_alpha:
            alpha = torch.ones_like(color[:1])
        return dataclasses.replace(self, color=color.contiguous(), alpha=alpha)


# --------------------------------------------------------------------------------------- reading


def read_image(path: PathLike) -> Image:
    """Decode an image file; any file that is not a complete, valid image raises ImageReadError.

    Gray files stay gray (C = 1); palette files become RGB (plus alpha when the palette has a
    transparent entry); CMYK becomes RGB; 16-bit files keep all 16 bits.
    """
    path = Path(path)
    _check_is_file(path)
    try:
        pil = PILImage.open(path)
    except PILImage.DecompressionBombError as err:
        raise ImageReadError(path, f"refusing a possible decompression bomb ({err})") from None
    except UnidentifiedImageError:
        raise ImageReadError(path, _unidentified_reason(path)) from None
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as err:
        raise ImageReadError(path, _corrupt_reason(err)) from None

    with pil:
        # Phone JPEGs with a second picture open as MPO; to the user they are JPEGs.
        source_format = "JPEG" if pil.format == "MPO" else pil.format
        icc = pil.info.get("icc_profile")
        if _cut_by_pillow(pil, path):
            arr, mode, orientation = _decode_16bit(pil, path)
            bit_depth = 16
        else:
            mode = pil.mode
            arr, orientation = _decode_pillow(pil, path)
            bit_depth = 16 if arr.dtype.itemsize == 2 else 8

    arr = _UPRIGHT.get(orientation, lambda a: a)(arr)
    pixels = torch.from_numpy(np.ascontiguousarray(arr).astype(np.float32) / (2**bit_depth - 1))
    pixels = pixels[None] if pixels.ndim == 2 else pixels.permute(2, 0, 1)
    has_alpha = pixels.shape[0] in (2, 4)
    color = pixels[:-1] if has_alpha else pixels
    return Image(
        color=color.contiguous(),
        alpha=pixels[-1:].contiguous() if has_alpha else None,
        bit_depth=bit_depth,
        icc_profile=icc if _icc_fits(icc, color.shape[0]) else None,
        source_format=source_format,
        source_mode=mode,
        path=path,
    )


def _check_is_file(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(path, "file not found")
    if path.is_dir():
        raise ImageReadError(path, "is a directory")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "empty file")


def _unidentified_reason(path: Path) -> str:
    """Why Pillow did not recognise a file: a damaged image, or not an image at all."""
    with open(path, "rb") as f:
        head = f.read(12)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "corrupt PNG file (its header is damaged)"
    if head.startswith(b"\xff\xd8\xff"):
        return "corrupt JPEG file (its header is damaged)"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "corrupt or unsupported TIFF file (its header cannot be decoded)"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "corrupt WebP file (its header is damaged)"
    if head[4:8] == b"ftyp":  # ISO media: HEIC photos from phones, or video
        return "unsupported format (HEIC/HEIF or video); convert it to PNG or JPEG"
    return "not an image file (unrecognised format)"


def _corrupt_reason(err: BaseException) -> str:
    detail = (str(err).splitlines() or [type(err).__name__])[0][:120]
    return f"truncated or corrupt image data ({detail})"


def _cut_by_pillow(pil: PILImage.Image, path: Path) -> bool:
    """Whether the file holds 16-bit samples that Pillow would decode as 8-bit, from the header."""
    if pil.mode.startswith("I;16"):
        return False  # 16-bit gray: Pillow keeps all 16 bits
    if pil.format == "PNG":
        with open(path, "rb") as f:
            ihdr = f.read(26)
        return ihdr[24] == 16  # IHDR bit depth: signature (8) + length (4) + type (4) + size (8)
    if pil.format == "TIFF":
        bits = pil.tag_v2.get(258, 8)  # BitsPerSample, one value per sample
        return max(bits if isinstance(bits, tuple) else (bits,)) == 16
    return False


def _orientation(pil: PILImage.Image) -> int:
    """EXIF orientation (1..8), 1 when absent or unreadable: a broken EXIF block is no reason to
    refuse the pixels."""
    try:
        return int(pil.getexif().get(0x0112, 1))
    except Exception:
        return 1


def _decode_pillow(pil: PILImage.Image, path: Path) -> tuple[np.ndarray, int]:
    """Pixels as (H, W) or (H, W, C) uint8/uint16 with C in 2 (LA), 3 (RGB), 4 (RGBA)."""
    try:
        pil.load()  # strict: truncated data raises (LOAD_TRUNCATED_IMAGES stays off)
    except Exception as err:  # the decoders raise many types for bad data
        raise ImageReadError(path, _corrupt_reason(err)) from None
    orientation = _orientation(pil)
    mode = pil.mode
    if mode in ("I", "F"):
        raise ImageReadError(
            path,
            f"unsupported sample format (Pillow mode '{mode}'); zoomsr reads 8- and 16-bit images",
        )
    transparent = "transparency" in pil.info
    if mode.startswith("I;16"):
        target = mode  # 16-bit gray as is
    elif mode in ("1", "L"):
        target = "LA" if transparent else "L"
    elif mode in ("LA", "La"):
        target = "LA"
    elif mode == "P":
        target = "RGBA" if transparent or pil.palette.mode == "RGBA" else "RGB"
    elif mode in ("RGBA", "RGBa", "PA"):
        target = "RGBA"
    else:  # RGB, RGBX, CMYK, YCbCr, LAB, HSV: Pillow's own conversion to RGB
        target = "RGBA" if transparent else "RGB"
    return np.asarray(pil if target == mode else pil.convert(target)), orientation


def _decode_16bit(pil: PILImage.Image, path: Path) -> tuple[np.ndarray, str, int]:
    """16-bit colour PNG (OpenCV) or TIFF (tifffile): pixels, Pillow-style mode, orientation."""
    if pil.format == "PNG":
        # eXIf placed after the pixel data is not seen here: getexif() would decode them all.
        orientation = _orientation(pil) if "exif" in pil.info else 1
        try:
            pil.verify()  # every chunk's CRC, up to IEND: catches truncation without decoding
        except Exception as err:
            raise ImageReadError(path, _corrupt_reason(err)) from None
        # imdecode, not imread: imread cannot open non-ASCII paths on Windows.
        arr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None or arr.dtype != np.uint16:
            raise ImageReadError(path, "truncated or corrupt image data")
        if arr.ndim == 3:
            arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]  # BGR(A) -> RGB(A)
            with open(path, "rb") as f:
                if f.read(26)[25] == 4:  # IHDR colour type 4 = gray + alpha, which OpenCV expands
                    arr = arr[..., [0, 3]]
    else:
        orientation = _orientation(pil)
        try:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                arr, axes, photometric = page.asarray(), page.axes, page.photometric
        except Exception as err:
            raise ImageReadError(path, _corrupt_reason(err)) from None
        if axes.startswith("S"):  # planar (separate) samples: channels first
            arr, axes = np.moveaxis(arr, 0, -1), axes[1:] + "S"
        supported = (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB)
        if (
            axes not in ("YX", "YXS")
            or photometric not in supported
            or arr.dtype.kind != "u"
            or (arr.ndim == 3 and arr.shape[2] > 4)
        ):
            raise ImageReadError(path, f"unsupported TIFF layout (axes {axes}, {photometric.name})")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    mode = {1: "I;16", 2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[1 if arr.ndim == 2 else arr.shape[2]]
    return arr, mode, orientation


def _icc_fits(icc: bytes | None, channels: int) -> bool:
    """Whether an ICC profile describes this many colour channels (its header names the colour
    space at bytes 16..20). A CMYK profile must not follow pixels converted to RGB, nor a gray
    profile an RGB file."""
    if not icc or len(icc) < 20:
        return False
    return icc[16:20] == (b"GRAY" if channels == 1 else b"RGB ")


# --------------------------------------------------------------------------------------- writing


def write_image(
    path: PathLike,
    image: Image | torch.Tensor,
    *,
    bit_depth: int | None = None,
    overwrite: bool = False,
    inputs: Iterable[PathLike] = (),
    quality: int = 95,
) -> Path:
    """Write an image atomically; the format comes from the extension.

    ``image`` is an :class:`Image` (its form is kept: gray, alpha, bit depth, ICC profile) or a
    tensor (C, H, W) or (1, C, H, W) in [0, 1] with C = 1 (gray), 2 (gray + alpha), 3 (RGB) or
    4 (RGBA). Values are clamped to [0, 1] and rounded half up. PNG and TIFF are written with 16
    bits when the source had 16 (or ``bit_depth=16``), other formats with 8. WebP is lossless;
    ``quality`` is for JPEG. A path in ``inputs`` is never replaced unless ``overwrite``.
    Parent folders are created. Returns the path written.
    """
    path = Path(path)
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ZoomsrError(
            f"cannot write '{path}': unknown image extension '{path.suffix}' "
            f"(use one of {', '.join(_WRITE_FORMATS)})"
        )
    if not overwrite and any(_same_file(path, Path(p)) for p in inputs):
        raise ImageWriteError(f"refusing to overwrite input '{path}' (pass --overwrite)")

    if isinstance(image, Image):
        color, alpha, depth, icc = image.color, image.alpha, image.bit_depth, image.icc_profile
    else:
        pixels = _unbatch(image)
        if pixels.shape[0] not in (1, 2, 3, 4):
            raise ValueError(f"cannot write a tensor of shape {tuple(image.shape)} as an image")
        has_alpha = pixels.shape[0] in (2, 4)
        color, alpha = (pixels[:-1], pixels[-1:]) if has_alpha else (pixels, None)
        depth, icc = 8, None
    if bit_depth is not None:
        if bit_depth not in (8, 16):
            raise ZoomsrError(f"cannot write '{path}': bit depth must be 8 or 16, not {bit_depth}")
        if bit_depth == 16 and fmt not in _WITH_16_BIT:
            raise ZoomsrError(
                f"cannot write '{path}': {fmt} has no 16-bit samples; write .png or .tif"
            )
        depth = bit_depth
    elif fmt not in _WITH_16_BIT:
        depth = 8  # a 16-bit source saved as JPEG, BMP or WebP
    if alpha is not None and fmt in _WITHOUT_ALPHA:
        raise ZoomsrError(
            f"cannot write '{path}': {fmt} cannot store the alpha channel; write .png, .webp or .tif"
        )

    arr = _quantise(color if alpha is None else torch.cat([color, alpha]), depth)
    if fmt == "WEBP" and arr.shape[2] <= 2:  # WebP has no gray: store it as RGB(A)
        arr = arr[..., [0, 0, 0, 1][: arr.shape[2] + 2]]
    if not _icc_fits(icc, 1 if arr.shape[2] <= 2 else 3):
        icc = None
    save = _encoder(fmt, arr, icc, quality)

    if path.is_dir():
        raise ImageWriteError(f"cannot write '{path}': is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, save)
    except OSError as err:
        raise ImageWriteError(f"cannot write '{path}': {err.strerror or err}") from err
    return path


def _unbatch(x: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) -> (C, H, W), so a model's output can be passed as it is."""
    if x.ndim == 4 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 3:
        raise ValueError(
            f"expected an image tensor (C, H, W) or (1, C, H, W), got {tuple(x.shape)}"
        )
    return x


def _quantise(x: torch.Tensor, depth: int) -> np.ndarray:
    """(C, H, W) float -> (H, W, C) uint8/uint16: clamp to [0, 1], scale, round half up."""
    peak = 2**depth - 1
    x = torch.nan_to_num(x.detach().to("cpu", torch.float32), nan=0.0).clamp(0, 1)
    q = torch.floor(x * peak + 0.5).permute(1, 2, 0).numpy()
    return q.astype(np.uint16 if depth == 16 else np.uint8)


def _encoder(fmt: str, arr: np.ndarray, icc: bytes | None, quality: int) -> Callable[[Path], None]:
    """A function that writes (H, W, C) samples to a path in ``fmt``."""
    channels = arr.shape[2]
    if arr.dtype == np.uint8:  # Pillow: every format, ICC profiles
        pil = PILImage.fromarray(arr[..., 0] if channels == 1 else arr)
        options: dict = {
            "JPEG": {"quality": quality},
            "TIFF": {"compression": "tiff_adobe_deflate"},
            "WEBP": {"lossless": True, "exact": True},  # exact: keep colour under alpha = 0
        }.get(fmt, {})
        if icc and fmt != "BMP":
            options["icc_profile"] = icc
        return lambda tmp: pil.save(tmp, format=fmt, **options)
    if channels == 2:
        # OpenCV writes no 16-bit gray + alpha PNG and Pillow reads no such TIFF: store RGBA.
        arr, channels = arr[..., [0, 0, 0, 1]], 4
    if fmt == "TIFF":  # tifffile: 16-bit gray, RGB, RGBA, ICC profile
        return lambda tmp: tifffile.imwrite(
            tmp,
            arr[..., 0] if channels == 1 else arr,
            photometric="minisblack" if channels == 1 else "rgb",
            extrasamples=["unassalpha"] if channels == 4 else None,
            compression="zlib",
            iccprofile=icc,
            metadata=None,
        )
    # 16-bit PNG: OpenCV, as Pillow cannot write 16-bit colour; it writes no ICC profile.
    bgr = np.ascontiguousarray(arr if arr.shape[2] == 1 else arr[..., [2, 1, 0, 3][: arr.shape[2]]])

    def save_png16(tmp: Path) -> None:
        ok, buf = cv2.imencode(".png", bgr)
        if not ok:
            raise OSError("OpenCV could not encode the PNG")
        buf.tofile(tmp)

    return save_png16


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist: compare the names
        return a.resolve() == b.resolve()


# --------------------------------------------------------------------------------------- listing


def list_images(spec: PathLike) -> list[Path]:
    """The image files named by a file, a folder (its images, sorted, not recursive, hidden files
    skipped) or a glob pattern (``**`` recurses). Raises ZoomsrError when nothing is found."""
    text = os.path.expanduser(os.fspath(spec))
    path = Path(text)
    if path.is_file():
        return [path]  # named explicitly: read_image says if it is not an image
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if _is_image_name(p) and p.is_file())
        if not found:
            raise ZoomsrError(
                f"no images in folder '{text}' (looked for {', '.join(IMAGE_EXTENSIONS)})"
            )
        return found
    if any(c in text for c in "*?["):
        found = sorted(Path(p) for p in glob.glob(text, recursive=True) if os.path.isfile(p))
        found = [p for p in found if _is_image_name(p)]
        if not found:
            raise ZoomsrError(
                f"no images match '{text}' (looked for {', '.join(IMAGE_EXTENSIONS)})"
            )
        return found
    raise ImageReadError(text, "no such file or folder")


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")
