"""zoomsr train-matcher: view pairs, InfoNCE, matching accuracy, the training loop and its CLI."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from zoomsr.cli.main import main
from zoomsr.data.matcher_pairs import MatcherPairs, PairRanges, feature_pitch, map_points
from zoomsr.errors import ZoomsrError
from zoomsr.models.registry import load_model
from zoomsr.models.zoom import StudentExtractor
from zoomsr.train.config import load_config
from zoomsr.train.matcher import (
    MatcherTrainer,
    build_extractor,
    info_nce,
    load_matcher_config,
    matching_accuracy,
    read_student_weights,
)
from zoomsr.train.tasks import ZoomTask

GEOMETRY_ONLY = PairRanges(degrade=False, min_std=0.0)


def _smooth_photo(h=160, w=200) -> torch.Tensor:
    """uint8 (3, h, w) of slow sinusoids: blur barely changes it, a 2-px shift does."""
    y, x = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    chans = [
        0.5 + 0.2 * torch.sin(x / 9) + 0.2 * torch.cos(y / 11),
        0.5 + 0.3 * torch.sin((x + y) / 13),
        0.5 + 0.3 * torch.cos((x - 2 * y) / 17),
    ]
    return torch.round(torch.stack(chans) * 255).to(torch.uint8)


def _bilinear(img: torch.Tensor, xy: np.ndarray) -> torch.Tensor:
    """Sample (3, H, W) at (..., 2) pixel coordinates (centres at integers)."""
    h, w = img.shape[-2:]
    g = torch.from_numpy(xy).float()
    g = torch.stack([(2 * g[..., 0] + 1) / w - 1, (2 * g[..., 1] + 1) / h - 1], -1)
    return torch.nn.functional.grid_sample(img[None], g[None], align_corners=False)[0]


@pytest.fixture(scope="module")
def pair():
    return MatcherPairs([_smooth_photo()], size=48, ratio=2, seed=3, ranges=GEOMETRY_ONLY)[5]


def test_lr_pixels_are_the_ref_pixels_their_homography_names(pair):
    hom = pair["homography"].numpy()
    ys, xs = np.mgrid[0:48, 0:48]
    ref_xy = map_points(hom, np.stack([xs, ys], -1).astype(np.float64))
    inside = torch.from_numpy(((ref_xy > 2) & (ref_xy < 45)).all(-1))
    assert inside.sum() > 50  # the Ref footprint (1/ratio of the LR side) lies in the LR
    err = (_bilinear(pair["ref"], ref_xy) - pair["lr"]).abs().mean(0)[inside].mean()
    shifted = (
        (_bilinear(pair["ref"], ref_xy + np.array([2.0, 0.0])) - pair["lr"]).abs().mean(0)[inside]
    )
    assert err < 0.01
    assert shifted.mean() > 4 * err


def test_feature_ground_truth_points_at_the_same_content(pair):
    k = feature_pitch(48)
    valid = pair["valid"]
    assert valid.sum() >= 4 and not valid[0].any() and not valid[:, -1].any()
    ys, xs = (t.numpy().astype(np.float64) for t in torch.nonzero(valid, as_tuple=True))
    lr_xy = np.stack([xs, ys], -1) * k
    ref_xy = pair["target"][:, valid].t().numpy().astype(np.float64) * k
    err = (_bilinear(pair["lr"], lr_xy[None]) - _bilinear(pair["ref"], ref_xy[None])).abs()
    assert err.mean() < 0.01
    # Ref -> LR is the inverse map: every valid Ref feature goes back to where it came from.
    vi = pair["valid_inv"]
    back = pair["target_inv"][:, vi].t().numpy() * k
    to_ref = map_points(pair["homography"].numpy(), back) / k
    yi, xi = torch.nonzero(vi, as_tuple=True)
    assert np.abs(to_ref - np.stack([xi.numpy(), yi.numpy()], -1)).max() < 1e-3


def test_items_are_pure_functions_of_seed_and_index():
    photos = [_smooth_photo(), _smooth_photo(120, 150)]
    a, b = MatcherPairs(photos, 32, 2, seed=1), MatcherPairs(photos, 32, 2, seed=1)
    assert torch.equal(a[7]["lr"], b[7]["lr"]) and torch.equal(a[7]["ref"], b[7]["ref"])
    assert not torch.equal(a[7]["homography"], a[8]["homography"])
    with pytest.raises(ZoomsrError, match="smaller than the 256-px crop"):
        MatcherPairs(photos, 256, 2)


def _identity_target(n, h, w):
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    target = torch.stack([xs, ys]).float().expand(n, 2, h, w)
    valid = torch.zeros(n, h, w, dtype=torch.bool)
    valid[:, 1:-1, 1:-1] = True
    return target, valid


def test_info_nce_is_lower_for_matching_features_than_shuffled_ones():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(2, 16, 10, 10, generator=g)
    target, valid = _identity_target(2, 10, 10)
    perm = torch.randperm(100, generator=g)
    shuffled = f.flatten(2)[:, :, perm].view_as(f)
    same, _, anchors = info_nce(f, f, target, valid)
    other, _, _ = info_nce(f, shuffled, target, valid)
    assert anchors == 2 * 64
    assert same < 0.5 * other
    # Distillation: no divergence from an identical teacher, some from another one.
    _, kl_same, _ = info_nce(f, f, target, valid, teacher=(f, f))
    _, kl_other, _ = info_nce(f, f, target, valid, teacher=(f, shuffled))
    assert kl_same.abs() < 1e-5 and kl_other > 0.1


def test_accuracy_metric_on_synthetic_features():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(1, 8, 12, 12, generator=g)
    target, valid = _identity_target(1, 12, 12)
    assert matching_accuracy(f, f, target, valid) == (100, 100)
    # A Ref shifted by (dx, dy) = (2, 1): right only where the truth says so.
    ref = torch.roll(f, shifts=(1, 2), dims=(2, 3))
    moved = target + torch.tensor([2.0, 1.0]).view(1, 2, 1, 1)
    inside = valid & (moved >= 1).all(1) & (moved <= 10).all(1)
    right, total = matching_accuracy(f, ref, moved, inside)
    assert total == int(inside.sum()) > 50 and right == total
    assert matching_accuracy(f, ref, target, valid)[0] < 10  # the unshifted truth is wrong now


@pytest.fixture(scope="module")
def photo_dir(shared, tmp_path_factory):
    folder = tmp_path_factory.mktemp("matcher_photos")
    for name in ("t1", "t2", "100075"):
        im = Image.open(shared("data", "SR291", "HR", f"{name}.webp")).convert("RGB")
        im.crop((0, 0, 120, 120)).save(folder / f"{name}.png")
    return folder


def _cfg(photos, out, steps=6, extra=()):
    return load_matcher_config(
        None,
        [
            f"data.photos=[{photos}]",
            "data.size=32",
            "data.ratio=2",
            "data.holdout=1",
            "data.batch=2",
            "data.augment.min_std=0",
            "val.pairs=2",
            "val.every=1000",
            "optim.lr=1e-3",
            "run.init=random",
            "run.device=cpu",
            f"run.steps={steps}",
            f"run.out={out}",
            *extra,
        ],
    )


def test_training_lowers_the_loss_and_writes_a_loadable_student(photo_dir, tmp_path):
    trainer = MatcherTrainer(_cfg(photo_dir, tmp_path / "run", steps=8), quiet=True)
    batch = next(iter(trainer._batches(trainer.train_set, 10_000, 10_004)))
    with torch.no_grad():
        before = trainer.losses(batch)[1]["loss"]
    summary = trainer.fit()
    with torch.no_grad():
        after = trainer.losses(batch)[1]["loss"]
    assert summary["step"] == 8 and after < 0.95 * before
    path = tmp_path / "run" / "student.safetensors"
    state = load_file(str(path))
    assert set(state) == set(StudentExtractor().state_dict())
    selfdzsr_matcher = StudentExtractor()
    selfdzsr_matcher.load_state_dict(read_student_weights(path), strict=True)
    assert torch.equal(
        selfdzsr_matcher.lr_branch.conv3_1.weight, trainer.model.lr_branch.conv3_1.weight
    )
    assert torch.equal(
        build_extractor(str(path)).ref_branch.conv1_1.bias, state["ref_branch.conv1_1.bias"]
    )
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert len(trainer.accuracy) == 2 and all(0 <= a["accuracy"] <= 1 for a in trainer.accuracy)
    # The file as a teacher: the KL term joins the loss.
    pupil = MatcherTrainer(
        _cfg(photo_dir, tmp_path / "pupil", extra=[f"loss.teacher={path}"]), quiet=True
    )
    with torch.no_grad():
        total, logs = pupil.losses(batch)
    assert logs["kl"] > 0 and float(total) == pytest.approx(
        logs["nce"] + logs["nce_inv"] + logs["kl"], rel=1e-5
    )
    # A SelfDZSR recipe's zoom.student can name the file.
    cfg = load_config(
        None, ["model.name=selfdzsr", "model.scale=4", "zoom.stage=auxlr", f"zoom.student={path}"]
    )
    model = load_model("selfdzsr", 4)
    ZoomTask(cfg, model, torch.device("cpu"), resume=False)
    assert torch.equal(model.matcher.ref_branch.conv3_1.weight, state["ref_branch.conv3_1.weight"])


def test_official_student_checkpoints_load_as_init_or_teacher(shared):
    path = shared("parity", "selfdzsr_eccv_x4", "Student_model_400.pth")
    official = torch.load(path, map_location="cpu", weights_only=True)
    official = official.get("state_dict", official)
    key = next(k for k in official if k.endswith("feature_extraction_image2.model.conv2_1.weight"))
    student = build_extractor(str(path))
    assert torch.equal(student.ref_branch.conv2_1.weight, official[key].float())


def test_resume_continues_exactly(photo_dir, tmp_path):
    straight = MatcherTrainer(_cfg(photo_dir, tmp_path / "a", steps=4), quiet=True)
    straight.fit()
    killed = MatcherTrainer(_cfg(photo_dir, tmp_path / "b", steps=4), quiet=True)
    killed.fit(stop_at=2)
    resumed = MatcherTrainer(_cfg(photo_dir, tmp_path / "b", steps=4), resume=True, quiet=True)
    assert resumed.step == 2
    resumed.fit()
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), name


def test_cli_trains_and_reports_bad_input_on_one_line(photo_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["train-matcher", "--photos", str(photo_dir), "--out", str(out), "--steps", "2", "-q"]
    fast = ["--init", "random", "--device", "cpu", "--set", "data.size=32", "--set", "data.ratio=2"]
    fast += ["--set", "data.holdout=1", "--set", "data.batch=1", "--set", "val.pairs=1"]
    assert main(argv + fast) == 0
    assert "matching accuracy" in capsys.readouterr().out
    assert (out / "student.safetensors").is_file()
    # Distillation from an extractor file (here the run just written).
    argv[argv.index(str(out))] = str(tmp_path / "distilled")
    assert main([*argv, *fast, "--teacher", str(out / "student.safetensors")]) == 0
    assert (tmp_path / "distilled" / "student.safetensors").is_file()
    for bad, message in (
        (["--photos", str(tmp_path / "nope")], "nope"),
        (
            ["--photos", str(photo_dir), "--set", "loss.temprature=1"],
            "did you mean 'loss.temperature'",
        ),
        (["--photos", str(photo_dir), "--set", "data.holdout=3"], "data.holdout=3"),
        (["--photos", str(photo_dir), "--teacher", str(tmp_path / "t.pth")], "not found"),
        (["--photos", str(photo_dir), "--resume", "--set", "data.holdout=1"], "cannot resume"),
    ):
        assert main(["train-matcher", "--out", str(tmp_path / "x"), *bad, *fast[:4]]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("zoomsr: ") and "\n" not in err and message in err, err
