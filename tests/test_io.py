"""zoomsr.io: decoding every io_cases fixture, strict errors, round trips and atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from zoomsr.errors import ImageReadError, ImageWriteError, ZoomsrError
from zoomsr.io import IMAGE_EXTENSIONS, Image, list_images, read_image, write_image
from zoomsr.ops.resize import imresize

# Names are listed here so that each case is its own test; test_case_list_is_complete keeps the
# list in step with cases.json.
CASE_FILES = [
    "png_gray8.png",
    "png_gray_alpha8.png",
    "png_rgb8.png",
    "png_rgba8.png",
    "png_palette.png",
    "png_palette_trns.png",
    "png_gray16.png",
    "png_rgb16.png",
    "jpeg_rgb.jpg",
    "jpeg_gray.jpg",
    "jpeg_cmyk.jpg",
    "jpeg_exif_orient6.jpg",
    "jpeg_exif_orient3.jpg",
    "tiff_rgb8.tif",
    "tiff_rgb16.tif",
    "bmp_rgb24.bmp",
    "webp_lossless_rgba.webp",
    "png_1x1.png",
    "png_3x5.png",
]
BAD_FILES = ["empty.png", "truncated.png", "truncated.jpg", "text_named.png", "bad_crc.png"]
GRAY_MODES = ("L", "LA", "I;16")


@pytest.fixture(scope="module")
def cases(shared) -> dict:
    data = json.loads(shared("data", "io_cases", "cases.json").read_text())
    return {c["file"]: c for c in data["cases"]} | {c["file"]: c for c in data["bad"]}


def case_path(shared, name: str) -> Path:
    return shared("data", "io_cases", name)


def levels(x: torch.Tensor, bit_depth: int = 8) -> np.ndarray:
    """[0, 1] floats back to integer sample values, (C, H, W)."""
    return torch.round(x * (2**bit_depth - 1)).to(torch.int64).numpy()


def quantised(x: torch.Tensor, bit_depth: int = 8) -> np.ndarray:
    """What write_image must store: clamp, scale, round half up."""
    peak = 2**bit_depth - 1
    return torch.floor(x.clamp(0, 1) * peak + 0.5).to(torch.int64).numpy()


def stored_pixels(path: Path) -> np.ndarray:
    """(H, W, C) uint8 as Pillow decodes the file, without EXIF orientation."""
    with PILImage.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_case_list_is_complete(cases):
    data_cases = {name for name in cases if not name.startswith("bad/")}
    assert data_cases == set(CASE_FILES)
    assert {name.removeprefix("bad/") for name in cases if name.startswith("bad/")} == set(
        BAD_FILES
    )


# ------------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize("name", CASE_FILES)
def test_case_form(shared, cases, name):
    case = cases[name]
    image = read_image(case_path(shared, name))
    width, height = case["size_after_orientation"]
    assert (image.width, image.height) == (width, height)
    assert image.is_gray == (case["pil_mode"] in GRAY_MODES)
    assert image.channels == (1 if image.is_gray else 3)
    assert image.has_alpha == case["alpha"]
    assert image.bit_depth == case["bit_depth"]
    assert image.source_format == case["format"]
    for t in (image.color, image.alpha) if image.has_alpha else (image.color,):
        assert t.dtype == torch.float32 and t.is_contiguous()
        assert t.shape[-2:] == (height, width)
        assert 0.0 <= float(t.min()) <= float(t.max()) <= 1.0


def test_lossless_files_decode_to_the_same_pixels(shared):
    rgb = levels(read_image(case_path(shared, "png_rgb8.png")).color)
    # Reference decode by Pillow, channels first.
    assert np.array_equal(rgb, stored_pixels(case_path(shared, "png_rgb8.png")).transpose(2, 0, 1))
    assert np.array_equal(levels(read_image(case_path(shared, "tiff_rgb8.tif")).color), rgb)
    rgba = read_image(case_path(shared, "png_rgba8.png"))
    webp = read_image(case_path(shared, "webp_lossless_rgba.webp"))
    assert np.array_equal(levels(rgba.color), rgb)
    assert np.array_equal(levels(webp.color), rgb)
    assert np.array_equal(levels(webp.alpha), levels(rgba.alpha))
    bmp = case_path(shared, "bmp_rgb24.bmp")
    assert np.array_equal(levels(read_image(bmp).color), stored_pixels(bmp).transpose(2, 0, 1))


@pytest.mark.parametrize(
    "name", ["png_gray_alpha8.png", "png_rgba8.png", "webp_lossless_rgba.webp"]
)
def test_alpha_ramp(shared, name):
    alpha = levels(read_image(case_path(shared, name)).alpha)[0]
    x = np.arange(64)
    expected = np.broadcast_to(255 * x // 63, (48, 64)).copy()
    expected[:8, :8] = 0
    assert np.array_equal(alpha, expected)


def test_gray_and_jpeg_content(shared):
    gray = levels(read_image(case_path(shared, "png_gray8.png")).color)
    rgb = levels(read_image(case_path(shared, "png_rgb8.png")).color)
    gray_alpha = read_image(case_path(shared, "png_gray_alpha8.png"))
    assert np.array_equal(levels(gray_alpha.color), gray)
    # JPEG at quality 95 of the same pixels: close, not equal.
    assert np.abs(levels(read_image(case_path(shared, "jpeg_gray.jpg")).color) - gray).mean() < 3
    assert np.abs(levels(read_image(case_path(shared, "jpeg_rgb.jpg")).color) - rgb).mean() < 4
    # CMYK made from the RGB crop: converted back to RGB, close to it.
    cmyk = read_image(case_path(shared, "jpeg_cmyk.jpg"))
    assert cmyk.source_mode == "CMYK"
    assert np.abs(levels(cmyk.color) - rgb).mean() < 4


def test_palette(shared):
    plain = read_image(case_path(shared, "png_palette.png"))
    assert plain.source_mode == "P" and not plain.has_alpha
    with PILImage.open(case_path(shared, "png_palette.png")) as im:
        palette_rgb = np.asarray(im.convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(levels(plain.color), palette_rgb)

    trns = read_image(case_path(shared, "png_palette_trns.png"))
    alpha = levels(trns.alpha)[0]
    assert (alpha[:8, :8] == 0).all()
    assert (alpha[8:, :] == 255).all() and (alpha[:, 8:] == 255).all()
    # Under the transparent block sits the magenta palette entry.
    assert (levels(trns.color)[:, :8, :8] == np.array([255, 0, 255])[:, None, None]).all()


@pytest.mark.parametrize(
    ("name", "eight_bit"),
    [
        ("png_gray16.png", "png_gray8.png"),
        ("png_rgb16.png", "png_rgb8.png"),
        ("tiff_rgb16.tif", "png_rgb8.png"),
    ],
)
def test_16bit_keeps_the_low_byte(shared, name, eight_bit):
    image = read_image(case_path(shared, name))
    values = levels(image.color, 16)
    y, x = np.mgrid[: image.height, : image.width]
    assert (values & 255 == (7 * x + 13 * y) % 256).all()  # low byte rule of cases.json
    assert np.array_equal(values >> 8, levels(read_image(case_path(shared, eight_bit)).color))


def test_exif_orientation_fixtures(shared, cases):
    for name in ("jpeg_exif_orient3.jpg", "jpeg_exif_orient6.jpg"):
        assert cases[name]["exif_orientation"] in (3, 6)
    path3 = case_path(shared, "jpeg_exif_orient3.jpg")
    path6 = case_path(shared, "jpeg_exif_orient6.jpg")
    up3 = levels(read_image(path3).color).transpose(1, 2, 0)
    up6 = levels(read_image(path6).color).transpose(1, 2, 0)
    assert np.array_equal(up3, np.rot90(stored_pixels(path3), 2))  # 3: rotate 180
    assert np.array_equal(up6, np.rot90(stored_pixels(path6), -1))  # 6: rotate 90 clockwise
    # Both files hold the same crop: once upright they agree up to JPEG error.
    assert np.abs(up3 - up6).mean() < 3


def test_tiny_images(shared):
    one = read_image(case_path(shared, "png_1x1.png"))
    assert levels(one.color)[:, 0, 0].tolist() == [222, 201, 98]
    odd = read_image(case_path(shared, "png_3x5.png"))
    assert (odd.width, odd.height) == (3, 5)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_on_both_decoders(tmp_path, orientation):
    """Both decoders (Pillow for 8-bit, tifffile for 16-bit) turn images upright as Pillow's
    ImageOps.exif_transpose does."""
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)  # not square, not symmetric
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    png = tmp_path / "o.png"
    PILImage.fromarray(pixels).save(png, exif=exif.tobytes())
    with PILImage.open(png) as im:
        expected = np.asarray(ImageOps.exif_transpose(im)).transpose(2, 0, 1)
    assert np.array_equal(levels(read_image(png).color), expected)

    import tifffile

    tif = tmp_path / "o16.tif"
    tag = (0x0112, "H", 1, orientation, True)
    tifffile.imwrite(tif, pixels.astype(np.uint16) * 257, photometric="rgb", extratags=[tag])
    image = read_image(tif)
    assert image.bit_depth == 16
    assert np.array_equal(levels(image.color), expected)


# ------------------------------------------------------------------------------------ bad input


def assert_read_error(path, reason: str | None = None) -> str:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    message = str(info.value)
    assert message.startswith(f"cannot read '{path}': ")
    assert "\n" not in message
    if reason is not None:
        assert reason in message
    return message


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.png", "empty file"),
        ("truncated.png", "truncated"),
        ("truncated.jpg", "truncated"),
        ("text_named.png", "not an image file"),
        ("bad_crc.png", "corrupt PNG"),
    ],
)
def test_bad_fixtures(shared, name, reason):
    assert_read_error(case_path(shared, f"bad/{name}"), reason)


def test_made_up_bad_files(tmp_path, shared):
    noise = tmp_path / "noise.jpg"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    assert_read_error(noise, "not an image file")

    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    assert_read_error(garbage, "corrupt")

    assert_read_error(tmp_path, "is a directory")
    assert_read_error(tmp_path / "missing.png", "file not found")

    # Truncated 16-bit files: these go to OpenCV and tifffile, which must not be fooled either.
    for name in ("png_rgb16.png", "tiff_rgb16.tif"):
        data = case_path(shared, name).read_bytes()
        cut = tmp_path / f"cut_{name}"
        cut.write_bytes(data[: len(data) // 2])
        assert_read_error(cut, "truncated or corrupt")


def test_decompression_bomb_guard(shared, monkeypatch):
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # 64x48 is over twice that
    assert_read_error(case_path(shared, "png_rgb8.png"), "decompression bomb")


# ------------------------------------------------------------------------------------ writing


def output_name(name: str) -> str:
    """Same format family: palette files come back as PNG, the others keep their extension."""
    return "out.png" if "palette" in name else "out" + Path(name).suffix


@pytest.mark.parametrize("name", CASE_FILES)
def test_round_trip_resized(shared, tmp_path, name):
    source = read_image(case_path(shared, name))
    alpha = imresize(source.alpha, scale=2) if source.has_alpha else None
    result = source.replace(imresize(source.color, scale=2), alpha)
    out = write_image(tmp_path / output_name(name), result, inputs=[source.path])
    back = read_image(out)

    assert back.is_gray == source.is_gray
    assert back.has_alpha == source.has_alpha
    assert back.bit_depth == source.bit_depth
    assert (back.width, back.height) == (2 * source.width, 2 * source.height)
    depth = source.bit_depth
    if out.suffix == ".jpg":
        assert np.abs(levels(back.color) - quantised(result.color)).mean() < 4
    else:  # lossless: exactly the quantised values
        assert np.array_equal(levels(back.color, depth), quantised(result.color, depth))
        if source.has_alpha:
            assert np.array_equal(levels(back.alpha, depth), quantised(result.alpha, depth))
    assert sorted(os.listdir(tmp_path)) == [out.name]  # no temporary file left


FORMS = {"gray": 1, "gray+alpha": 2, "rgb": 3, "rgba": 4}


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp", ".jpg", ".webp"])
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_written_form(tmp_path, ext, form, bit_depth):
    channels = FORMS[form]
    has_alpha = channels in (2, 4)
    pixels = torch.rand(1, channels, 6, 9, generator=torch.Generator().manual_seed(channels))
    path = tmp_path / f"x{ext}"
    if (has_alpha and ext in (".jpg", ".bmp")) or (bit_depth == 16 and ext not in (".png", ".tif")):
        with pytest.raises(ZoomsrError, match=r"alpha|16-bit"):
            write_image(path, pixels, bit_depth=bit_depth)
        assert not path.exists()
        return
    back = read_image(write_image(path, pixels, bit_depth=bit_depth))
    assert back.has_alpha == has_alpha
    assert back.bit_depth == bit_depth
    # WebP has no gray, and 16-bit gray + alpha is stored as RGBA: those come back as RGB(A).
    gray_kept = ext != ".webp" and not (channels == 2 and bit_depth == 16)
    assert back.is_gray == (channels <= 2 and gray_kept)
    if ext != ".jpg":
        expected = quantised(pixels[0, : channels - has_alpha], bit_depth)
        assert np.array_equal(levels(back.color, bit_depth)[: expected.shape[0]], expected)


def test_quantisation_rounds_half_up_and_clamps(tmp_path):
    values = torch.tensor([[[10.5 / 255, 10.49 / 255, -0.2, 1.5, float("nan"), 1.0]]])
    back = read_image(write_image(tmp_path / "q.png", values))
    assert levels(back.color)[0, 0].tolist() == [11, 10, 0, 255, 0, 255]


def test_16bit_source_written_as_jpeg_is_8bit(shared, tmp_path):
    source = read_image(case_path(shared, "png_rgb16.png"))
    back = read_image(write_image(tmp_path / "x.jpg", source))
    assert back.bit_depth == 8 and back.channels == 3


def test_unknown_extension(tmp_path):
    with pytest.raises(ZoomsrError, match=r"'\.gif'.*\.png"):
        write_image(tmp_path / "x.gif", torch.zeros(3, 4, 4))
    assert list(tmp_path.iterdir()) == []


def test_icc_profile_kept_and_mismatched_one_dropped(tmp_path):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = Image(torch.rand(3, 4, 5), icc_profile=srgb)
    for ext in (".png", ".jpg", ".tif", ".webp"):
        assert read_image(write_image(tmp_path / f"icc{ext}", image)).icc_profile == srgb
    cmyk_profile = srgb[:16] + b"CMYK" + srgb[20:]  # a profile for other pixels than RGB
    dropped = write_image(
        tmp_path / "cmyk.png", Image(torch.rand(3, 4, 5), icc_profile=cmyk_profile)
    )
    assert read_image(dropped).icc_profile is None


def test_parent_folders_created_and_usual_permissions(tmp_path):
    out = write_image(tmp_path / "a" / "b" / "x.png", torch.zeros(1, 2, 2))
    assert out.is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_replace_keeps_the_form(shared):
    gray = read_image(case_path(shared, "png_gray16.png"))
    rgb = gray.color.expand(3, -1, -1)[None]  # a model's output for a replicated gray input
    result = gray.replace(rgb)
    assert result.is_gray and result.bit_depth == 16 and not result.has_alpha
    assert torch.allclose(result.color, gray.color, atol=1e-6)

    rgba = read_image(case_path(shared, "png_rgba8.png"))
    opaque = rgba.replace(torch.zeros(1, 4, 4))
    assert opaque.channels == 3 and opaque.has_alpha
    assert torch.equal(opaque.alpha, torch.ones(1, 4, 4))


# ------------------------------------------------------------------------------------ atomic writes


def test_refuses_to_overwrite_an_input(tmp_path):
    src = tmp_path / "x.png"
    write_image(src, torch.zeros(3, 4, 4))
    before = src.read_bytes()
    other_spelling = tmp_path / "sub" / ".." / "x.png"
    for target in (src, other_spelling):
        with pytest.raises(ImageWriteError, match=r"refusing to overwrite input .* --overwrite"):
            write_image(target, torch.ones(3, 4, 4), inputs=[src])
    assert src.read_bytes() == before
    write_image(src, torch.ones(3, 4, 4), inputs=[src], overwrite=True)
    assert read_image(src).color.min() == 1.0


@pytest.mark.parametrize("error", [OSError("disk full"), RuntimeError("encoder bug")])
def test_encoder_failure_leaves_nothing(tmp_path, monkeypatch, error):
    old = tmp_path / "old.png"
    write_image(old, torch.zeros(3, 4, 4))
    before = old.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"half an image")  # the encoder got as far as writing something
        raise error

    monkeypatch.setattr(PILImage.Image, "save", broken_save)
    with pytest.raises(ImageWriteError if isinstance(error, OSError) else RuntimeError):
        write_image(tmp_path / "new.png", torch.ones(3, 4, 4))
    with pytest.raises(ImageWriteError if isinstance(error, OSError) else RuntimeError):
        write_image(old, torch.ones(3, 4, 4))
    assert sorted(os.listdir(tmp_path)) == ["old.png"]
    assert old.read_bytes() == before


def test_16bit_encoder_failure_leaves_nothing(tmp_path, monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "imencode", lambda *a, **k: (False, None))
    with pytest.raises(ImageWriteError, match="cannot write"):
        write_image(tmp_path / "x.png", torch.zeros(3, 4, 4), bit_depth=16)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------ listing


def test_list_images(tmp_path):
    for name in ("b.JPG", "a.png", "c.txt", ".hidden.png", "sub/d.tif"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert list_images(tmp_path) == [tmp_path / "a.png", tmp_path / "b.JPG"]
    assert list_images(tmp_path / "c.txt") == [tmp_path / "c.txt"]  # named explicitly
    assert list_images(f"{tmp_path}/*.png") == [tmp_path / "a.png"]
    assert list_images(f"{tmp_path}/**/*") == [
        tmp_path / "a.png",
        tmp_path / "b.JPG",
        tmp_path / "sub" / "d.tif",
    ]
    assert ".webp" in IMAGE_EXTENSIONS
    (tmp_path / "empty").mkdir()
    with pytest.raises(ZoomsrError, match="no images in folder"):
        list_images(tmp_path / "empty")
    with pytest.raises(ZoomsrError, match="no images match"):
        list_images(f"{tmp_path}/*.bmp")
    with pytest.raises(ImageReadError, match="no such file or folder"):
        list_images(tmp_path / "missing")


# ------------------------------------------------------------------------------------ CLI


def test_cli_upscale_bad_input(shared, tmp_path, capsys):
    pytest.importorskip("zoomsr.cli.upscale")
    from zoomsr.cli.main import main

    bad = case_path(shared, "bad/truncated.jpg")
    out = tmp_path / "out.png"
    assert main(["upscale", str(bad), "-o", str(out), "--scale", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("zoomsr: cannot read")
    assert not out.exists()
