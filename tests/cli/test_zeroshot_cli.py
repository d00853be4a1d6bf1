import numpy as np
import pytest
from PIL import Image as PILImage

from zoomsr.cli.main import main
from zoomsr.io import read_image
from zoomsr.models.zeroshot.kernelgan import estimate_kernel


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("zoomsr: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def image(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "in.png"
    PILImage.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(path)
    return path


def _bad_kernels(tmp_path):
    (tmp_path / "text.npy").write_text("not numpy")
    np.save(tmp_path / "cube.npy", np.ones((3, 3, 3)))
    np.save(tmp_path / "zero.npy", np.zeros((5, 5)))
    np.save(tmp_path / "nan.npy", np.full((3, 3), np.nan))
    (tmp_path / "k.mat").write_bytes(b"")
    return {
        "text.npy": "not a NumPy .npy array",
        "cube.npy": "2-D array",
        "zero.npy": "sums to 0",
        "nan.npy": "NaN",
        "k.mat": "must be a NumPy .npy",
        "missing.npy": "does not exist",
    }


def test_bad_kernel_files_exit_2_with_one_line(tmp_path, image, capsys):
    for name, message in _bad_kernels(tmp_path).items():
        args = ["upscale", str(image), "-o", str(tmp_path / "o.png"), "--model", "zssr"]
        assert main([*args, "--scale", "2", "--kernel", str(tmp_path / name), "-q"]) == 2
        assert message in _one_error_line(capsys)
    assert not (tmp_path / "o.png").exists()


def test_wrong_scales_and_misplaced_flags_exit_2(tmp_path, image, capsys):
    out = str(tmp_path / "o.png")
    cases = [
        (["kernel", str(image), "-o", str(tmp_path / "k.npy"), "--scale", "3"], "x2 and x4"),
        (["kernel", str(image), "-o", str(tmp_path / "k.txt"), "--scale", "2"], ".npy"),
        (
            ["kernel", str(image), "-o", str(tmp_path / "k.npy"), "--scale", "2", "--runs", "0"],
            "--runs must be at least 1",
        ),
        (
            [
                "upscale",
                str(image),
                "-o",
                out,
                "--model",
                "zssr",
                "--scale",
                "3",
                "--kernel",
                "auto",
            ],
            "x2 and x4",
        ),
        (
            ["upscale", str(image), "-o", out, "--model", "zssr", "--scale", "9"],
            "does not support scale 9",
        ),
        (
            [
                "upscale",
                str(image),
                "-o",
                out,
                "--model",
                "bicubic",
                "--scale",
                "2",
                "--iterations",
                "5",
            ],
            "zero-shot models only",
        ),
        (
            [
                "upscale",
                str(image),
                "-o",
                out,
                "--model",
                "zssr",
                "--scale",
                "2",
                "--iterations",
                "0",
            ],
            "at least 1",
        ),
        (
            ["upscale", str(image), "-o", out, "--model", "zssr", "--scale", "4", "--gradual"],
            "official x2 schedule",
        ),
        (
            ["upscale", str(image), "-o", out, "--model", "bicubic", "--scale", "2", "--gradual"],
            "zero-shot models only",
        ),
    ]
    for argv, message in cases:
        assert main([*argv, "-q"]) == 2, argv
        assert message in _one_error_line(capsys)


def test_zssr_upscale_and_kernel_commands_write_their_files(tmp_path, image, capsys):
    out = tmp_path / "o.png"
    args = ["upscale", str(image), "-o", str(out), "--model", "zssr", "--scale", "2"]
    assert main([*args, "--iterations", "3", "-q"]) == 0
    assert read_image(out).color.shape == (3, 40, 48)
    assert main([*args, "--iterations", "2", "--gradual"]) == 0
    assert "12 iterations" in capsys.readouterr().out  # six steps of two

    big = tmp_path / "big.png"
    rng = np.random.default_rng(1)
    PILImage.fromarray((rng.random((72, 80, 3)) * 255).astype(np.uint8)).save(big)
    k, plot = tmp_path / "k.npy", tmp_path / "k.png"
    argv = ["kernel", str(big), "-o", str(k), "--scale", "2", "--plot", str(plot)]
    assert main([*argv, "--iterations", "3", "-q"]) == 0
    kernel = np.load(k)
    assert kernel.ndim == 2 and abs(kernel.sum() - 1) < 1e-4
    assert read_image(plot).width == 16 * kernel.shape[1]
    # The written kernel is accepted back by ZSSR.
    out2 = tmp_path / "o2.png"
    args = ["upscale", str(image), "-o", str(out2), "--model", "zssr", "--scale", "2"]
    assert main([*args, "--kernel", str(k), "--iterations", "2", "-q"]) == 0
    assert out2.is_file()
    # default: the medoid of three seeded runs; --runs 1: the seed's run alone. A seed whose
    # medoid is another run's tells the two apart.
    lr = read_image(big).color[None]
    seed, medoid = next(
        (s, k)
        for s in range(10)
        for k, r in [estimate_kernel(lr, 2, iterations=3, seed=s, runs=3)]
        if r.seed != s
    )
    first = estimate_kernel(lr, 2, iterations=3, seed=seed, runs=1)[0]
    for runs, expected in ((None, medoid), ("1", first)):
        argv = ["kernel", str(big), "-o", str(k), "--scale", "2", "--seed", str(seed)]
        argv += ["--runs", runs] if runs else []
        assert main([*argv, "--iterations", "3", "-q"]) == 0
        assert np.array_equal(np.load(k), expected)


def test_models_lists_zssr(capsys):
    assert main(["models"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("zssr "))
    assert "zeroshot" in line
