"""``zoomsr zoom`` end to end on (a half-size copy of) the bundled real dual-zoom sample."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import zoomsr.infer.pipelines as pipelines
import zoomsr.infer.zoom as zoom_module
from zoomsr.cli.main import main
from zoomsr.errors import ZoomsrError
from zoomsr.io import read_image, write_image
from zoomsr.models.checkpoints import save_weights
from zoomsr.models.registry import load_model

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "zoom"


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("zoomsr: ") and err.count("\n") == 1, err
    return err


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The sample at half size (240x180, fast to restore); the wide as a 16-bit PNG."""
    folder = tmp_path_factory.mktemp("pair")
    paths = []
    for name, depth in (("wide", 16), ("tele", 8)):
        x = read_image(SAMPLE / f"{name}.jpg").color
        small = F.interpolate(x[None], scale_factor=0.5, mode="area")[0]
        paths.append(write_image(folder / f"{name}.png", small, bit_depth=depth))
    return paths


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A small random-weight x2 SelfDZSR as a zoomsr model file."""
    torch.manual_seed(0)
    model = load_model("selfdzsr", 2, n_feats=8, n_blocks=2)
    return save_weights(model, tmp_path_factory.mktemp("model") / "tiny.safetensors")


def test_zoom_writes_the_whole_capture_at_the_model_scale(
    pair, model_file, tmp_path, capsys, monkeypatch
):
    wide, tele = pair
    out, saved = tmp_path / "out.png", tmp_path / "inputs"
    args = ["zoom", str(wide), "--ref", str(tele), "-o", str(out), "--model", str(model_file)]
    assert main([*args, "--save-inputs", str(saved)]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "480x360" in printed and " s (prepare" in printed
    result, src = read_image(out), read_image(wide)
    assert (result.width, result.height) == (2 * src.width, 2 * src.height)
    assert result.bit_depth == 16 and not result.is_gray
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs", "out.png"]  # no temp files

    meta = json.loads((saved / "meta.json").read_text())
    top, bottom, left, right = meta["ref_boxes"]["Ref"]
    assert 0 <= top < bottom <= 180 and 0 <= left < right <= 240
    ref = read_image(saved / "Ref.png").color
    assert tuple(ref.shape[-2:]) == (2 * (bottom - top), 2 * (right - left))
    assert tuple(read_image(saved / "LR.png").color.shape[-2:]) == (180, 240)

    # The output exists now: refused without --overwrite, untouched; replaced with it (the
    # model run stubbed: only the files matter here).
    before = out.read_bytes()
    assert main([*args, "-q"]) == 2
    assert "--overwrite" in _one_error_line(capsys) and out.read_bytes() == before
    monkeypatch.setattr(
        zoom_module,
        "run_zoom",
        lambda _m, lr, *_a: lr.repeat_interleave(2, -1).repeat_interleave(2, -2),
    )
    assert main([*args, "-q", "--overwrite"]) == 0
    assert out.read_bytes() != before and read_image(out).width == 480


def test_mismatched_inputs_fail_on_one_line_and_write_nothing(
    pair, model_file, tmp_path, capsys, shared, monkeypatch
):
    wide, tele = pair
    # A shipped name whose weights file is missing (as on a checkout without the weights).
    monkeypatch.setattr(
        pipelines, "SHIPPED_ZOOM_MODELS", (*pipelines.SHIPPED_ZOOM_MODELS, "gone-x4")
    )
    other = read_image(shared("data", "photos", "airplane.jpg")).color
    photo = write_image(
        tmp_path / "other.png", F.interpolate(other[None], size=(180, 240), mode="area")[0]
    )
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((SAMPLE / "tele.jpg").read_bytes()[:3000])
    model = ["--model", str(model_file)]
    out = tmp_path / "out.png"
    cases = [
        ([str(tele), "--ref", str(wide), *model], "shows a wider view"),  # swapped
        ([str(wide), "--ref", str(photo), *model], "different scenes"),
        ([str(wide), "--ref", str(tele), "--ref", str(tele), *model], "takes 1 reference"),
        ([str(wide), "--ref", str(broken), *model], "cannot read"),
        ([str(wide), "--ref", str(tmp_path / "none.png"), *model], "file not found"),
        ([str(wide), "--ref", str(tele), "--model", "edsr", "--scale", "2"], "single-image"),
        ([str(wide), "--ref", str(tele), "--model", "gone-x4"], "shipped weights of"),
        ([str(wide), "--ref", str(tele), "--scale", "3"], "shipped zoom models are x2 and x4"),
        ([str(wide), "--ref", str(tele), "--ref", str(tele), "--scale", "2"], "x4 only"),
        ([str(wide), "--ref", str(tele), "--model", "selfdzsr-pp-x3"], "unknown model"),
        ([str(wide), "--ref", str(tele), "--ratio", "two", *model], "--ratio must be"),
        ([str(wide), "--ref", str(tele), "--ratio", "0.5", *model], "must be above 1"),
    ]
    before = sorted(tmp_path.iterdir())
    for args, message in cases:
        assert main(["zoom", *args, "-o", str(out), "-q"]) == 2, message
        assert message in _one_error_line(capsys)
        assert sorted(tmp_path.iterdir()) == before, message  # nothing written, no temp file
    # The output may not be an input.
    assert main(["zoom", str(wide), "--ref", str(tele), "-o", str(wide), *model]) == 2
    assert "refusing to overwrite input" in _one_error_line(capsys)


def test_the_default_model_follows_the_references_and_scale():
    assert pipelines.default_zoom_model(1) == "selfdzsr-pp-x4"
    assert pipelines.default_zoom_model(1, 2) == "selfdzsr-pp-x2"
    assert pipelines.default_zoom_model(2) == "selftzsr-pp-x4"
    assert pipelines.default_zoom_model(2, 4) == "selftzsr-pp-x4"
    with pytest.raises(ZoomsrError, match="x4 only"):
        pipelines.default_zoom_model(2, 2)


def test_triple_model_wants_two_references(pair, tmp_path, capsys):
    wide, tele = pair
    args = ["zoom", str(wide), "--ref", str(tele), "-o", str(tmp_path / "o.png")]
    assert main([*args, "--model", "selftzsr-pp", "-q"]) == 2
    assert "takes 2 reference(s) (the middle camera and the tele), got 1" in _one_error_line(capsys)
    assert not list(tmp_path.iterdir())


def test_a_failing_model_leaves_no_partial_output(pair, model_file, tmp_path, capsys, monkeypatch):
    def fail(*_args, **_kwargs):
        raise ZoomsrError("the model failed")

    monkeypatch.setattr(zoom_module, "run_zoom", fail)
    wide, tele = pair
    out = tmp_path / "out.png"
    args = ["zoom", str(wide), "--ref", str(tele), "-o", str(out), "--model", str(model_file)]
    assert main(args) == 2
    assert "the model failed" in _one_error_line(capsys)
    assert not list(tmp_path.iterdir())
