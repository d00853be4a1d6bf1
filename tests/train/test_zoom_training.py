"""SelfDZSR training on the shared engine: loss, exact resume, generator stage, validation, CLI.

Tiny on purpose: two simulated x4 captures (GT 192 px, LR 48 px), batch 2, LR patches of 16 px
and the real architecture. Runs on one thread: on a busy 2-core machine, two OpenMP threads
make these small convolutions ~50x slower.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from zoomsr.cli.main import main
from zoomsr.data.auxnoise import WithAuxNoise, degrade_noise
from zoomsr.data.simulate import simulate_dataset
from zoomsr.train.config import load_config
from zoomsr.train.engine import Trainer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sim_x4(shared, tmp_path_factory):
    photos = tmp_path_factory.mktemp("photos")
    for name in ("apples.jpg", "roof_tiles.jpg"):
        shutil.copy(shared("data", "photos", name), photos / name)
    out = tmp_path_factory.mktemp("sim") / "sim_x4"
    simulate_dataset(photos, out, ratio=4, seed=0, crop=192)
    return out


def _cfg(shared, data, out, steps=4, extra=()):
    student = shared("parity", "selfdzsr_eccv_x4", "Student_model_400.pth")
    return load_config(
        None,
        [
            "model.name=selfdzsr",
            "model.scale=4",
            f"data.train.zoom=[{data}]",
            "data.train.lr_patch=16",
            "data.batch=2",
            "loss=1*L1",
            "optim.lr=1e-3",
            "zoom.auxlr_lr=5e-4",
            f"zoom.student={student}",
            f"run.steps={steps}",
            f"run.out={out}",
            "run.checkpoint_every=1000",
            "run.device=cpu",
            *extra,
        ],
    )


def _held_out_l1(trainer: Trainer, n: int = 4) -> float:
    """SR L1 on fixed items the run never sees, through the test-time path (LR as guide)."""
    items = [trainer.task.dataset()[100_000 + i] for i in range(n)]
    b = {k: torch.stack([it[k] for it in items]) for k in ("lr", "gt", "ref", "lr_ref", "ref_box")}
    model = trainer.model.eval()
    with torch.no_grad():
        out = model.forward_trace(b["lr"], b["ref"], b["ref_box"], lr_centre=b["lr_ref"])
    model.train()
    return float((out["sr"] - b["gt"]).abs().mean())


def test_noise_items_are_pure_functions_of_the_index(sim_x4):
    from zoomsr.data.zoom import ZoomTrainSet, load_zoom_samples

    ds = WithAuxNoise(ZoomTrainSet(load_zoom_samples(sim_x4), 4, lr_patch=16, seed=3))
    a, b = ds[7], ds[7]
    assert a["noise"].shape == a["lr"].shape == (3, 16, 16)
    assert torch.equal(a["noise"], b["noise"]) and torch.equal(a["gt"], b["gt"])
    assert not torch.equal(ds[8]["noise"], a["noise"])
    gt = torch.full((3, 64, 64), 128, dtype=torch.uint8)
    noisy = degrade_noise(gt, 4, torch.Generator().manual_seed(0))
    assert noisy.shape == (3, 16, 16) and noisy.float().std() > 1  # σ >= 5 leaves a trace


def test_joint_training_lowers_the_sr_loss(shared, sim_x4, tmp_path):
    trainer = Trainer(_cfg(shared, sim_x4, tmp_path / "run", steps=20), quiet=True)
    before = _held_out_l1(trainer)
    summary = trainer.fit()
    after = _held_out_l1(trainer)
    assert summary["step"] == 20
    assert all(math.isfinite(h["loss"]) for h in trainer.history)
    assert {"L1", "auxlr_L1", "centroid", "loss"} <= set(trainer.history[-1])
    assert after < 0.8 * before
    for name in ("last.safetensors", "auxlr.safetensors", "state.pt"):
        assert (tmp_path / "run" / name).is_file()


def test_resume_continues_exactly(shared, sim_x4, tmp_path):
    extra = ["loss=1*L1+0.08*SW"]  # the SW projections' stream must resume too
    straight = Trainer(_cfg(shared, sim_x4, tmp_path / "a", extra=extra), quiet=True)
    straight.fit()
    interrupted = Trainer(_cfg(shared, sim_x4, tmp_path / "b", extra=extra), quiet=True)
    interrupted.fit(stop_at=2)
    resumed = Trainer(_cfg(shared, sim_x4, tmp_path / "b", extra=extra), resume=True, quiet=True)
    assert resumed.step == 2
    resumed.fit()
    tail = [h["loss"] for h in resumed.history]
    assert tail == pytest.approx([h["loss"] for h in straight.history[2:]], rel=1e-6, abs=1e-9)
    assert "SW" in straight.history[-1]
    gen_a, gen_b = straight.task.generator.state_dict(), resumed.task.generator.state_dict()
    for k, v in gen_a.items():
        assert torch.allclose(v, gen_b[k], atol=1e-6), k


def test_auxlr_stage_trains_only_the_generator(shared, sim_x4, tmp_path):
    cfg = _cfg(shared, sim_x4, tmp_path / "g", steps=3, extra=["zoom.stage=auxlr"])
    trainer = Trainer(cfg, quiet=True)
    model0 = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    gen0 = {k: v.clone() for k, v in trainer.task.generator.state_dict().items()}
    trainer.fit()
    assert set(trainer.optimizers) == {"auxlr"}
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in model0.items())
    gen1 = trainer.task.generator.state_dict()
    assert any(not torch.equal(v, gen1[k]) for k, v in gen0.items())
    assert set(trainer.history[-1]) == {"step", "auxlr_L1", "centroid", "loss"}
    assert (tmp_path / "g" / "auxlr.safetensors").is_file()
    assert not (tmp_path / "g" / "last.safetensors").exists()
    # The joint stage starts from the pre-trained generator.
    joint = _cfg(
        shared, sim_x4, tmp_path / "j", extra=[f"zoom.auxlr_init={tmp_path}/g/auxlr.safetensors"]
    )
    started = Trainer(joint, quiet=True)
    for k, v in gen1.items():
        assert torch.equal(v, started.task.generator.state_dict()[k]), k


def test_validation_scores_full_centre_and_corner(shared, sim_x4, tmp_path):
    cfg = _cfg(shared, sim_x4, tmp_path / "v", steps=1, extra=[f"data.val.path={sim_x4}"])
    trainer = Trainer(cfg, quiet=True)
    val = trainer.validate()
    assert set(val) == {"psnr", "psnr_centre", "psnr_corner"}
    assert all(5 < v < 60 for v in val.values())
    summary = trainer.fit()
    assert summary["best_psnr"] == pytest.approx(trainer.validate()["psnr"])
    assert (tmp_path / "v" / "best.safetensors").is_file()


def test_cli_trains_the_shipped_config(shared, sim_x4, tmp_path, capsys):
    student = shared("parity", "selfdzsr_eccv_x4", "Student_model_400.pth")
    code = main(
        [
            "train",
            str(REPO / "configs" / "zoom" / "selfdzsr_x4.yaml"),
            "--steps",
            "2",
            "--out",
            str(tmp_path / "cli"),
            "--device",
            "cpu",
            "-q",
            "--set",
            f"data.train.zoom=[{sim_x4}]",
            "--set",
            f"data.val.path={sim_x4}",
            "--set",
            "data.val.max_images=1",
            "--set",
            "data.batch=2",
            "--set",
            "data.workers=0",
            "--set",
            f"zoom.student={student}",
        ]
    )
    assert code == 0
    assert "done: step 2" in capsys.readouterr().out
    assert (tmp_path / "cli" / "last.safetensors").is_file()


@pytest.fixture(scope="module")
def sim_triple(shared, tmp_path_factory):
    photos = tmp_path_factory.mktemp("photos3")
    shutil.copy(shared("data", "photos", "apples.jpg"), photos / "apples.jpg")
    out = tmp_path_factory.mktemp("sim3") / "sim_triple"
    simulate_dataset(photos, out, ratio=4, refs=(2, 4), seed=0, crop=192)
    return out


def _pp_cfg(shared, data, out, name, steps, extra=()):
    # ++ models need LR sides divisible by 8 and Ref windows of LR px 24 / 12 at patch 48
    return _cfg(
        shared,
        data,
        out,
        steps=steps,
        extra=[f"model.name={name}", "data.train.lr_patch=32", "model.config.n_blocks=2", *extra],
    )


def test_selfdzsr_pp_trains_with_prealignment_and_masked_losses(shared, sim_x4, tmp_path):
    cfg = _pp_cfg(shared, sim_x4, tmp_path / "pp", "selfdzsr-pp", 3, ["zoom.prealign=true"])
    trainer = Trainer(cfg, quiet=True)
    seen = {}
    loss = trainer.task.loss
    original = loss.forward

    def spy(sr, hr, lr, mask=None):
        seen["mask"] = mask
        return original(sr, hr, lr, mask=mask)

    loss.forward = spy
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    assert all(math.isfinite(h["loss"]) for h in trainer.history)
    mask = seen["mask"]
    assert mask is not None and mask.shape == (2, 1, 128, 128)
    assert 0.5 < float(mask.mean()) <= 1.0  # the flow's valid area, soft at its border
    after = trainer.model.state_dict()
    assert any(not torch.equal(v, after[k]) for k, v in before.items())


def test_selftzsr_pp_trains_on_triple_samples_and_validates(shared, sim_triple, tmp_path):
    extra = [f"data.val.path={sim_triple}"]
    cfg = _pp_cfg(shared, sim_triple, tmp_path / "tz", "selftzsr-pp", 2, extra)
    trainer = Trainer(cfg, quiet=True)
    batch = next(iter(trainer.batches()))
    assert {"ref2x", "ref4x", "coord_ref2x", "coord_ref4x", "noise"} <= set(batch)
    trainer.fit()
    assert all(math.isfinite(h["loss"]) for h in trainer.history)
    val = trainer.validate()
    assert all(5 < v < 60 for v in val.values())


def test_triple_model_on_dual_data_is_refused(shared, sim_x4, tmp_path):
    from zoomsr.errors import DataError

    cfg = _pp_cfg(shared, sim_x4, tmp_path / "bad", "selftzsr-pp", 1)
    with pytest.raises(DataError, match="View2x"):
        Trainer(cfg, quiet=True).fit()
