import json

import pytest

from zoomsr.cli.main import main

# Recomputed from these exact files (shared/data/README.md): bicubic, Y in float, shave = scale,
# Set14's gray bridge scored on its gray values.
EXPECTED_PSNR = {
    ("Set5", 2): 33.673,
    ("Set5", 3): 30.403,
    ("Set5", 4): 28.429,
    ("Set14", 2): 30.230,
    ("Set14", 3): 27.537,
    ("Set14", 4): 25.994,
}
EXPECTED_SSIM = {("Set5", 2): 0.9303, ("Set5", 3): 0.8689, ("Set5", 4): 0.8111}


def test_bicubic_baseline_matches_the_published_recipe(shared, tmp_path, capsys):
    out = tmp_path / "results"
    args = ["eval", "--method", "bicubic", "--scale", "2,3,4", "--out", str(out), "--per-image"]
    args += ["--data", str(shared("data", "Set5")), "--data", str(shared("data", "Set14"))]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("convention sisr: Y")
    report = json.loads((tmp_path / "results.json").read_text())
    summary = {(r["data"], r["scale"]): r for r in report["summary"]}
    for key, value in EXPECTED_PSNR.items():
        assert summary[key]["psnr"] == pytest.approx(value, abs=0.005), key
    for key, value in EXPECTED_SSIM.items():
        assert summary[key]["ssim"] == pytest.approx(value, abs=0.001), key
    assert len(report["per_image"]) == 3 * (5 + 14)
    assert (tmp_path / "results.md").read_text().startswith("# zoomsr eval: bicubic")
    assert (tmp_path / "results.csv").read_text().splitlines()[
        0
    ] == "model,data,scale,images,psnr,ssim"


def test_rgb_and_shave_overrides_rename_the_convention(shared, capsys):
    args = ["eval", "--method", "bicubic", "--data", str(shared("data", "Set5")), "--scale", "4"]
    assert main([*args, "--rgb", "--shave", "0"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "sisr[" in first and "RGB" in first and "shave 0" in first


def test_hr_only_folder_makes_lr_by_exact_resize(shared, tmp_path, capsys):
    # Same Set5 HR without LR files: LR is made on the fly and must give the same numbers.
    hr_only = tmp_path / "Set5hr"
    (hr_only / "HR").mkdir(parents=True)
    for p in (shared("data", "Set5") / "HR").glob("*.png"):
        (hr_only / "HR" / p.name).write_bytes(p.read_bytes())
    assert (
        main(
            [
                "eval",
                "--method",
                "bicubic",
                "--data",
                str(hr_only),
                "--scale",
                "4",
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    row = json.loads((tmp_path / "r.json").read_text())["summary"][0]
    assert row["psnr"] == pytest.approx(EXPECTED_PSNR[("Set5", 4)], abs=0.005)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "nosuchmodel"], "unknown model 'nosuchmodel'"),
        (["--method", "bicubic", "--metrics", "psnr,foo"], "unknown metric 'foo'"),
        (["--method", "bicubic", "--convention", "nope"], "invalid choice: 'nope'"),
        (["--method", "bicubic", "--scale", "x"], "--scale must be integers"),
        (["--method", "bicubic", "--out", "r.txt"], "cannot write a report"),
    ],
)
def test_bad_arguments_give_one_line(shared, capsys, extra, message):
    assert main(["eval", "--data", str(shared("data", "Set5")), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoomsr: ") and message in err and err.count("\n") == 1


def test_missing_dataset_folder(tmp_path, capsys):
    assert main(["eval", "--method", "bicubic", "--data", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_lpips_and_regions_in_the_selfdzsr_convention(tmp_path, capsys):
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "samples" / "bench"
    args = [
        "eval",
        "--method",
        "bicubic",
        "--data",
        str(bench),
        "--scale",
        "2",
        "--convention",
        "selfdzsr",
    ]
    args += [
        "--metrics",
        "psnr,ssim,lpips",
        "--regions",
        "full,centre,corner",
        "--out",
        str(tmp_path / "r.json"),
    ]
    assert main(args) == 0
    row = json.loads((tmp_path / "r.json").read_text())["summary"][0]
    for key in ("psnr", "ssim", "lpips", "psnr_centre", "lpips_corner", "ssim_corner"):
        assert key in row
    assert 0 < row["lpips"] < 1 and 20 < row["psnr"] < 50
    assert capsys.readouterr().out.startswith("convention selfdzsr: RGB, shave 0")


def test_zoom_sample_folders_report_regions(shared, tmp_path, capsys):
    from zoomsr.data.simulate import simulate_dataset

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "apples.jpg").write_bytes(shared("data", "photos", "apples.jpg").read_bytes())
    simulate_dataset(photos, tmp_path / "sim", ratio=2, seed=0, crop=256)
    args = ["eval", "--method", "bicubic", "--data", str(tmp_path / "sim"), "--scale", "2"]
    args += [
        "--convention",
        "selfdzsr",
        "--regions",
        "full,corner,centre",
        "--out",
        str(tmp_path / "r.json"),
    ]
    assert main(args) == 0
    row = json.loads((tmp_path / "r.json").read_text())["summary"][0]
    assert row["images"] == 1 and row["psnr_centre"] > 15 and row["psnr_corner"] > 15
    assert main([*args[:5], "--scale", "4"]) == 2
    assert "x2 zoom sample" in capsys.readouterr().err


def test_single_image_models_are_scored_on_zoom_samples_as_zoom_models_are(shared, tmp_path):
    """Same frame, padding, regions and convention: the rows of a zoom model and of bicubic
    from ``zoomsr eval`` on the same captures compare like with like."""
    from zoomsr.data.simulate import simulate_dataset
    from zoomsr.infer.evaluate import evaluate_zoom
    from zoomsr.infer.zoom import ZoomOptions
    from zoomsr.metrics import MetricSuite, get_convention
    from zoomsr.models import load_model

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "apples.jpg").write_bytes(shared("data", "photos", "apples.jpg").read_bytes())
    simulate_dataset(photos, tmp_path / "sim", ratio=4, seed=0, crop=160)
    rows = {}
    for gt in ("aligned", "captured"):
        out = tmp_path / f"{gt}.json"
        args = ["eval", "--model", "bicubic", "--data", str(tmp_path / "sim"), "--gt", gt]
        assert main([*args, "--out", str(out), "-q"]) == 0
        rows[gt] = json.loads(out.read_text())["summary"][0]
    suite = MetricSuite(get_convention("selfdzsr"), ("psnr", "ssim"), ("full", "centre", "corner"))
    expected = evaluate_zoom(
        load_model("bicubic", 4), [tmp_path / "sim"], suite, "bicubic", ZoomOptions(quiet=True)
    ).summary[0]
    for key in ("psnr", "ssim", "psnr_centre", "psnr_corner"):  # regions by default
        assert rows["aligned"][key] == pytest.approx(expected[key], abs=1e-9), key
    # The simulated capture is misaligned on purpose: the frame changes the score.
    assert abs(rows["aligned"]["psnr"] - rows["captured"]["psnr"]) > 0.05
