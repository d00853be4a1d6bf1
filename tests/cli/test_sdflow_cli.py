"""``zoomsr upscale --model FILE`` and ``zoomsr downscale`` with a (tiny, random) SDFlow file:
samples, temperature, seeds, tiling with whole-image noise, and the clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from zoomsr.cli.main import main
from zoomsr.io import read_image
from zoomsr.models.checkpoints import save_weights
from zoomsr.models.registry import load_model

TINY = dict(
    hr_steps=1,
    hf_steps=2,
    hf_rrdbs=1,
    lr_steps=1,
    deg_steps=2,
    deg_rrdbs=1,
    encoder_blocks=1,
    hidden=16,
    cond_channels=16,
)


@pytest.fixture(scope="module")
def files(shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("sdflowcli")
    torch.manual_seed(0)
    flow = load_model("sdflow", 4, "cpu", **TINY).train()
    with torch.no_grad():  # ActNorm's data-dependent init, as a trained file has it
        flow.hr_forward(torch.rand(2, 3, 32, 32) * 2 - 1)
        x = torch.rand(2, 3, 8, 8) * 2 - 1
        z, _ = flow.lr_forward(x)
        flow.deg_forward(z - flow.content(x), flow.content(x))
    model = save_weights(flow.eval(), root / "sdflow.safetensors")
    im = Image.open(shared("data", "Set5", "HR", "bird.png")).convert("RGB")
    im.crop((0, 0, 20, 16)).save(root / "lr.png")
    im.crop((0, 0, 100, 72)).save(root / "hr.png")
    return model, root / "lr.png", root / "hr.png"


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int16)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("zoomsr: ") and err.count("\n") == 1
    return err


def test_upscale_samples_differ_and_tau0_is_deterministic(files, tmp_path):
    model, lr, _ = files
    out = tmp_path / "sr.png"
    args = ["upscale", str(lr), "-o", str(out), "--model", str(model), "-q"]
    assert main([*args, "--samples", "2", "--tau", "0.8"]) == 0
    s0, s1 = _pixels(tmp_path / "sr_s0.png"), _pixels(tmp_path / "sr_s1.png")
    assert s0.shape == (64, 80, 3) and not out.exists()
    assert np.abs(s0 - s1).mean() > 1  # two different samples
    # the same seed gives the same samples; sample k does not depend on --samples
    assert main([*args, "--tau", "0.8", "-o", str(tmp_path / "again.png")]) == 0
    assert np.array_equal(_pixels(tmp_path / "again.png"), s0)
    assert main([*args, "--tau", "0.8", "--seed", "1", "-o", str(tmp_path / "s1.png")]) == 0
    assert not np.array_equal(_pixels(tmp_path / "s1.png"), s0)
    # tau 0 is the mode: the same output on every run, whatever the seed
    for name, seed in (("a.png", "3"), ("b.png", "3"), ("c.png", "4")):
        assert main([*args, "--tau", "0", "--seed", seed, "-o", str(tmp_path / name)]) == 0
    assert np.array_equal(_pixels(tmp_path / "a.png"), _pixels(tmp_path / "b.png"))
    assert np.array_equal(_pixels(tmp_path / "a.png"), _pixels(tmp_path / "c.png"))


def test_upscale_tiles_share_the_image_noise(files, tmp_path):
    model, lr, _ = files
    base = ["upscale", str(lr), "--model", str(model), "-q", "--tau", "0.8"]
    assert main([*base, "-o", str(tmp_path / "whole.png"), "--tile", "0"]) == 0
    assert (
        main([*base, "-o", str(tmp_path / "tiled.png"), "--tile", "12", "--tile-overlap", "4"]) == 0
    )
    diff = np.abs(_pixels(tmp_path / "whole.png") - _pixels(tmp_path / "tiled.png"))
    assert diff.mean() < 2  # same sample, tile borders blended


def test_downscale_writes_quarter_size_samples(files, tmp_path):
    model, _, hr = files
    out = tmp_path / "lr.png"
    args = ["downscale", str(hr), "-o", str(out), "--model", str(model), "-q"]
    assert main(args) == 0
    assert read_image(out).color.shape == (3, 18, 25)
    assert main([*args, "--samples", "2", "-o", str(tmp_path / "d.png")]) == 0
    d0, d1 = _pixels(tmp_path / "d_s0.png"), _pixels(tmp_path / "d_s1.png")
    assert d0.shape == (18, 25, 3) and not np.array_equal(d0, d1)
    assert main([*args, "-o", str(tmp_path / "t.png"), "--tile", "48", "--tile-overlap", "16"]) == 0
    assert np.abs(_pixels(tmp_path / "t.png") - _pixels(out)).mean() < 2


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["upscale", "{lr}", "--model", "sdflow"], "no trained weights for 'sdflow'"),
        (["upscale", "{lr}", "--model", "sdflow-x4"], "zoomsr convert sdflow"),
        (["downscale", "{hr}", "--model", "sdflow"], "no trained weights"),
        (["upscale", "{lr}", "--model", "{model}", "--tau", "-0.5"], "--tau must be"),
        (
            ["upscale", "{lr}", "--model", "{model}", "--samples", "0"],
            "--samples must be at least 1",
        ),
        (["downscale", "{hr}", "--model", "edsr-baseline"], "cannot downscale"),
        (["downscale", "{hr}", "--model", "bicubic"], "only flow models"),
        (["upscale", "{lr}", "--scale", "2", "--tau", "0.5"], "flow models only"),
        (["upscale", "{lr}", "--model", "{model}", "--scale", "2"], "x4 model"),
    ],
)
def test_clear_errors(files, tmp_path, capsys, argv, expected):
    model, lr, hr = files
    names = {"{lr}": str(lr), "{hr}": str(hr), "{model}": str(model)}
    argv = [names.get(a, a) for a in argv] + ["-o", str(tmp_path / "o.png"), "-q"]
    assert main(argv) == 2
    assert expected in _one_error_line(capsys)
    assert not (tmp_path / "o.png").exists()
