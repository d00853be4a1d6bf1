import numpy as np
import torch
from PIL import Image as PILImage

from zoomsr.cli.main import main
from zoomsr.io import read_image


def _one_error_line(capsys):
    err = capsys.readouterr().err
    assert err.startswith("zoomsr: ") and err.count("\n") == 1
    return err


def test_upscale_keeps_alpha_gray_and_bit_depth(shared, tmp_path, capsys):
    cases = shared("data", "io_cases")
    for name in ("png_rgba8.png", "png_gray8.png", "png_rgb16.png"):
        out = tmp_path / name
        assert main(["upscale", str(cases / name), "-o", str(out), "--scale", "2", "-q"]) == 0
        src, dst = read_image(cases / name), read_image(out)
        assert (dst.height, dst.width) == (2 * src.height, 2 * src.width)
        assert (dst.is_gray, dst.has_alpha, dst.bit_depth) == (
            src.is_gray,
            src.has_alpha,
            src.bit_depth,
        )


def test_folder_input_writes_each_image(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        PILImage.fromarray(np.full((8, 10, 3), 40 * i, np.uint8)).save(src / f"{i}.png")
    assert main(["upscale", str(src), "-o", str(tmp_path / "out"), "--scale", "3", "-q"]) == 0
    outs = sorted((tmp_path / "out").glob("*.png"))
    assert [p.name for p in outs] == ["0.png", "1.png", "2.png"]
    assert read_image(outs[1]).color.shape == (3, 24, 30)


def test_tiling_flags_and_model_file(tmp_path, capsys, shared):
    out_a, out_b = tmp_path / "a.png", tmp_path / "b.png"
    sample = shared("data", "Set5", "LR_bicubic", "X4", "birdx4.png")
    assert (
        main(["upscale", str(sample), "-o", str(out_a), "--scale", "4", "--tile", "0", "-q"]) == 0
    )
    assert (
        main(
            [
                "upscale",
                str(sample),
                "-o",
                str(out_b),
                "--scale",
                "4",
                "--tile",
                "40",
                "--tile-overlap",
                "8",
                "-q",
            ]
        )
        == 0
    )
    a, b = read_image(out_a).color, read_image(out_b).color
    assert (a - b).abs().max() <= 1 / 255 + 1e-6


def test_bad_inputs_give_one_line(tmp_path, capsys, shared):
    good = str(shared("data", "io_cases", "png_rgb8.png"))
    out = tmp_path / "o.png"
    assert main(["upscale", str(tmp_path / "missing.png"), "-o", str(out), "--scale", "2"]) == 2
    assert "no such file" in _one_error_line(capsys)
    assert main(["upscale", good, "-o", str(out), "--model", "nosuch"]) == 2
    assert "unknown model 'nosuch'" in _one_error_line(capsys)
    assert main(["upscale", good, "-o", str(out), "--model", "edsr", "--scale", "5"]) == 2
    assert "does not support scale 5" in _one_error_line(capsys)
    assert main(["upscale", good, "-o", good, "--scale", "2"]) == 2
    assert "refusing to overwrite input" in _one_error_line(capsys)
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not an image")
    assert main(["upscale", str(folder), "-o", str(tmp_path / "o2"), "--scale", "2"]) == 2
    assert "cannot read" in _one_error_line(capsys)
    assert not out.exists()


def test_checkpoint_with_wrong_scale(tmp_path, capsys, shared):
    from zoomsr.models import load_model
    from zoomsr.models.checkpoints import save_weights

    ckpt = save_weights(
        load_model("edsr-baseline", 2, n_resblocks=1, n_feats=8), tmp_path / "x2.safetensors"
    )
    good = str(shared("data", "io_cases", "png_rgb8.png"))
    assert (
        main(["upscale", good, "-o", str(tmp_path / "o.png"), "--model", str(ckpt), "--scale", "4"])
        == 2
    )
    assert "x2 model" in _one_error_line(capsys)
    torch.manual_seed(0)
