"""``zoomsr eval`` with zoom models on zoom sample folders."""

from __future__ import annotations

import json

import pytest
import torch

from zoomsr.cli.main import main
from zoomsr.data.zoom import load_zoom_sample
from zoomsr.infer.zoom import run_zoom
from zoomsr.metrics import MetricSuite, get_convention
from zoomsr.models import load_model
from zoomsr.models.checkpoints import save_weights


@pytest.fixture(scope="module")
def sim(shared, tmp_path_factory):
    """One simulated x4 dual-zoom sample (LR 40 x 40) from a shared photo."""
    from zoomsr.data.simulate import simulate_dataset

    root = tmp_path_factory.mktemp("zoom")
    photos = root / "photos"
    photos.mkdir()
    (photos / "apples.jpg").write_bytes(shared("data", "photos", "apples.jpg").read_bytes())
    simulate_dataset(photos, root / "sim", ratio=4, seed=0, crop=160)
    return root / "sim"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A small random-weight SelfDZSR x4 as a zoomsr model file."""
    torch.manual_seed(0)
    model = load_model("selfdzsr", 4, n_blocks=1)
    return save_weights(model, tmp_path_factory.mktemp("w") / "dzsr.safetensors")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("zoomsr: ") and err.count("\n") == 1, err
    return err


def test_zoom_model_reports_full_centre_corner_rows(sim, weights, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["eval", "--model", "selfdzsr-x4", str(weights), "--data", str(sim)]
    assert main([*args, "--metrics", "psnr,ssim,lpips", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("convention selfdzsr: RGB, shave 0")
    assert "psnr_centre" in printed and "lpips_corner" in printed
    rows = json.loads(out.read_text())["summary"]
    assert len(rows) == 1  # one row per dataset
    row = rows[0]
    assert (row["data"], row["scale"], row["images"]) == ("sim", 4, 1)
    for m in ("psnr", "ssim", "lpips"):
        for suffix in ("", "_centre", "_corner"):
            assert m + suffix in row

    # The numbers are those of run_zoom on the padded sample, cut back, under the convention,
    # with GT and Refs aligned to the LR (default) or the files as captured (--gt captured).
    model = load_model(str(weights))
    suite = MetricSuite(get_convention("selfdzsr"), ("psnr", "ssim"), ("full", "centre", "corner"))
    out2 = tmp_path / "captured.json"
    assert main([*args, "--gt", "captured", "--out", str(out2)]) == 0
    captured = json.loads(out2.read_text())["summary"][0]
    for got, align in ((row, True), (captured, False)):
        test = load_zoom_sample(sim / "apples", pad=8, official_pad=True, align_gt=align)
        sr = run_zoom(model, test.lr, test.refs, test.ref_boxes)
        expected = suite(test.unpad(sr), test.unpad(test.gt), 4)
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-6), key
    assert row["psnr"] != captured["psnr"]


def test_model_file_alone_and_tiled_method_agree(sim, weights, tmp_path, capsys):
    rows = {}
    for method in ("whole", "tiled", "eccv"):
        out = tmp_path / f"{method}.json"
        args = ["eval", "--model", str(weights), "--data", str(sim), "--out", str(out)]
        assert main([*args, "--zoom-method", method, "--tile", "24"]) == 0
        rows[method] = json.loads(out.read_text())["summary"][0]
    capsys.readouterr()
    # the default window (384 LR px) covers this Ref: tiled is the whole-image result
    assert rows["tiled"]["psnr"] == pytest.approx(rows["whole"]["psnr"], abs=1e-3)
    assert rows["eccv"]["psnr"] != rows["whole"]["psnr"]  # another padding and per-tile matching


def test_sisr_models_score_zoom_folders_in_the_zoom_models_frame(sim, capsys):
    assert main(["eval", "--model", "bicubic", "--data", str(sim), "--scale", "4"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("convention selfdzsr") and "aligned to the LR" in out
    assert "psnr_centre" in out and "psnr_corner" in out
    assert main(["eval", "--model", "bicubic", "--data", str(sim), "--convention", "sisr"]) == 0
    assert capsys.readouterr().out.startswith("convention sisr")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scale", "2"], "is a x4 model"),
        (["--zoom-method", "fastest"], "invalid choice"),
    ],
)
def test_bad_zoom_options_give_one_line(sim, weights, capsys, extra, message):
    assert main(["eval", "--model", str(weights), "--data", str(sim), *extra]) == 2
    assert message in _one_error_line(capsys)


def test_zoom_model_on_a_plain_image_folder_is_refused(shared, weights, capsys):
    assert main(["eval", "--model", str(weights), "--data", str(shared("data", "Set5"))]) == 2
    err = _one_error_line(capsys)
    assert "is a zoom model" in err and "zoom sample folders" in err


def test_model_name_and_file_must_agree(sim, weights, capsys):
    for words, message in [
        (["edsr-x4", str(weights)], "holds a selfdzsr model, not edsr"),
        (["selfdzsr-x2", str(weights)], "is a x4 model, not x2"),
        (["selfdzsr", str(weights), "extra"], "--model takes NAME, FILE or NAME FILE"),
    ]:
        assert main(["eval", "--model", *words, "--data", str(sim)]) == 2
        assert message in _one_error_line(capsys)
