import pytest
import torch
from PIL import Image

from zoomsr.errors import ZoomsrError
from zoomsr.train.config import load_config
from zoomsr.train.engine import Trainer, lr_factor


@pytest.fixture(scope="module")
def three_crops(shared, tmp_path_factory):
    """Three 96x96 crops of SR291 images: a tiny training set."""
    folder = tmp_path_factory.mktemp("sr291mini")
    for name in ("t1", "t2", "100075"):
        im = Image.open(shared("data", "SR291", "HR", f"{name}.webp")).convert("RGB")
        im.crop((0, 0, 96, 96)).save(folder / f"{name}.png")
    return folder


def _cfg(folder, out, steps=6, extra=()):
    return load_config(
        None,
        [
            "model.name=postup",
            "model.scale=2",
            f"data.train.hr=[{folder}]",
            "data.train.patch=32",
            "data.batch=4",
            "loss=1*L1+0.001*TV",
            "optim.lr=1e-3",
            f"run.steps={steps}",
            f"run.out={out}",
            "run.checkpoint_every=1000",
            *extra,
        ],
    )


def _fixed_batch_loss(trainer, n=8):
    ds_batch = [trainer.batches().dataset[10_000 + i] for i in range(n)]
    lr = torch.stack([b[0] for b in ds_batch])
    hr = torch.stack([b[1] for b in ds_batch])
    with torch.no_grad():
        return float((trainer.model(lr) - hr).abs().mean())


def test_training_lowers_the_loss_on_held_out_patches(three_crops, tmp_path):
    trainer = Trainer(_cfg(three_crops, tmp_path / "run", steps=40), quiet=True)
    before = _fixed_batch_loss(trainer)
    summary = trainer.fit()
    after = _fixed_batch_loss(trainer)
    assert summary["step"] == 40
    assert after < 0.8 * before
    assert {"L1", "TV", "loss"} <= set(trainer.history[-1])  # every term logged on its own
    assert (tmp_path / "run" / "last.safetensors").is_file()
    assert (tmp_path / "run" / "config.yaml").read_text().count("postup") == 1


def test_resume_continues_exactly(three_crops, tmp_path):
    straight = Trainer(_cfg(three_crops, tmp_path / "a"), quiet=True)
    straight.fit()
    interrupted = Trainer(_cfg(three_crops, tmp_path / "b"), quiet=True)
    interrupted.fit(stop_at=3)
    resumed = Trainer(_cfg(three_crops, tmp_path / "b"), resume=True, quiet=True)
    assert resumed.step == 3
    resumed.fit()
    tail = [h["loss"] for h in resumed.history]
    expected = [h["loss"] for h in straight.history[3:]]
    assert tail == pytest.approx(expected, rel=1e-6, abs=1e-9)
    for k, v in straight.model.state_dict().items():
        assert torch.allclose(v, resumed.model.state_dict()[k], atol=1e-6), k


def test_resume_names_the_settings_that_changed(three_crops, tmp_path):
    Trainer(_cfg(three_crops, tmp_path / "r", extra=["run.ema=0.99"]), quiet=True).fit(stop_at=2)
    lines = []
    changed = _cfg(
        three_crops, tmp_path / "r", steps=9, extra=["optim.lr=2e-4", "run.checkpoint_every=5"]
    )
    Trainer(changed, resume=True, quiet=True, log=lines.append)
    warning = [x for x in lines if x.startswith("warning:")]
    assert len(warning) == 1
    assert "optim.lr: 0.001 -> 0.0002" in warning[0] and "run.ema: 0.99 -> 0.0" in warning[0]
    assert "run.steps" not in warning[0]  # extending a run is what --steps is for
    assert "checkpoint_every" not in warning[0]
    lines.clear()
    Trainer(
        _cfg(three_crops, tmp_path / "r", extra=["run.ema=0.99"]), resume=True, log=lines.append
    )
    assert not [x for x in lines if x.startswith("warning:")]


def test_ema_and_init_and_validation(three_crops, tmp_path, shared):
    first = Trainer(_cfg(three_crops, tmp_path / "a", steps=2), quiet=True)
    first.fit()
    cfg = _cfg(
        three_crops,
        tmp_path / "b",
        steps=2,
        extra=[
            "run.ema=0.9",
            f"run.init={tmp_path / 'a' / 'last.safetensors'}",
            f"data.val.path={shared('data', 'Set5')}",
            "data.val.every=2",
            "data.val.max_images=1",
        ],
    )
    second = Trainer(cfg, quiet=True)
    for k, v in first.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k])
    summary = second.fit()
    assert summary["best_psnr"] > 20
    assert (tmp_path / "b" / "best.safetensors").is_file()


def test_schedules():
    cfg = load_config(
        None, ["model.name=postup", "run.steps=100", "schedule.name=cosine", "schedule.warmup=10"]
    )
    assert lr_factor(cfg, 0) == pytest.approx(0.1)
    assert lr_factor(cfg, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 100) == pytest.approx(cfg.schedule.min_lr / cfg.optim.lr)
    cfg = load_config(None, ["model.name=postup", "schedule.step=10", "schedule.gamma=0.5"])
    assert lr_factor(cfg, 25) == pytest.approx(0.25)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(
        ZoomsrError, match=r"unknown config key 'optim.lrr'; did you mean 'optim.lr'"
    ):
        load_config(None, ["model.name=postup", "optim.lrr=1"])
    with pytest.raises(ZoomsrError, match="not found"):
        load_config(tmp_path / "none.yaml")
    with pytest.raises(ZoomsrError, match=r"model\.name"):
        load_config(None, [])


def test_single_image_model_trains_on_zoom_captures(shared, tmp_path):
    """data.train.zoom gives a SISR model the (LR, GT) pairs of zoom captures: its LR patches are
    the capture's own LR pixels, not a bicubic downscale of the GT."""
    from zoomsr.data.simulate import simulate_capture
    from zoomsr.data.sisr import SISRPairedSet
    from zoomsr.data.zoom import load_zoom_pairs, write_zoom_sample
    from zoomsr.io import read_image

    photo = read_image(shared("data", "photos", "roof_tiles.jpg")).color[:, 200:456, 300:556]
    s = simulate_capture(photo, 4, seed=0)
    write_zoom_sample(
        tmp_path / "caps" / "c0", {k: v for k, v in s.items() if k != "meta"}, s["meta"]
    )
    cfg = load_config(
        None,
        [
            "model.name=postup",
            "model.scale=4",
            f"data.train.zoom=[{tmp_path / 'caps'}]",
            "data.train.patch=64",
            "data.batch=2",
            "run.steps=2",
            f"run.out={tmp_path / 'run'}",
        ],
    )
    trainer = Trainer(cfg, quiet=True)
    dataset = trainer.batches().dataset
    assert isinstance(dataset, SISRPairedSet)
    ((lr, _gt),) = load_zoom_pairs([tmp_path / "caps"], 4)
    patch = dataset[0][0]  # an LR patch in [0, 1]: exactly a crop of the capture's LR, any flip
    k = patch.shape[-1]
    windows = torch.nn.functional.unfold(lr[None].float() / 255, k).view(3, k, k, -1)
    views = [patch.rot90(r, (-2, -1)) for r in range(4)]
    views += [v.flip(-1) for v in views]
    best = min(float((windows - v[..., None]).abs().amax((0, 1, 2)).min()) for v in views)
    assert best < 1e-6
    assert trainer.fit()["step"] == 2
