"""SDFlow training (task ``flow``, experimental): a reduced model on tiny unpaired folders of Set5
crops. The loss is finite, the likelihoods fall, a resumed run continues exactly, zero-weight
terms are not computed; and ``data.train.degradation: sdflow:FILE`` trains a SISR model."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from zoomsr.errors import ZoomsrError
from zoomsr.models.checkpoints import save_weights
from zoomsr.models.registry import load_model
from zoomsr.train import flow_task
from zoomsr.train.config import load_config
from zoomsr.train.engine import Trainer

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
TINY_YAML = "{" + ", ".join(f"{k}: {v}" for k, v in TINY.items()) + "}"
# Every term that needs no ImageNet backbone.
PLAIN_TERMS = [t for t in flow_task.TERMS if t not in ("content_perceptual", "perceptual")]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def folders(shared, tmp_path_factory):
    """LR: 48 px bicubic-downscaled Set5 crops; HR: other 96 px Set5 crops (unpaired)."""
    root = tmp_path_factory.mktemp("flowdata")
    (root / "lr").mkdir()
    (root / "hr").mkdir()
    for name in ("baby", "bird", "butterfly", "head"):
        im = Image.open(shared("data", "Set5", "HR", f"{name}.png")).convert("RGB")
        small = im.resize((im.width // 4, im.height // 4), Image.BICUBIC)
        small.crop((0, 0, 48, 48)).save(root / "lr" / f"{name}.png")
        im.crop((im.width - 96, im.height - 96, im.width, im.height)).save(
            root / "hr" / f"{name}.png"
        )
    return root / "lr", root / "hr"


def _cfg(folders, out, steps=4, extra=()):
    lr, hr = folders
    return load_config(
        None,
        [
            "model.name=sdflow",
            "model.scale=4",
            f"model.config={TINY_YAML}",
            f"data.train.lr={lr}",
            f"data.train.hr=[{hr}]",
            "data.train.patch=32",
            "data.batch=4",
            "optim.lr=5e-4",
            "optim.grad_clip=1.0",
            f"run.steps={steps}",
            f"run.out={out}",
            "run.checkpoint_every=1000",
            *extra,
        ],
    )


def test_trains_and_likelihoods_fall(folders, tmp_path):
    trainer = Trainer(_cfg(folders, tmp_path / "run", steps=20), quiet=True)
    trainer.fit()
    hist = trainer.history
    assert all(math.isfinite(h["loss"]) for h in hist)
    assert {"nll_hr", "nll_lr", "content", "domain", "latent_reg", "D_latent"} <= set(hist[0])
    nll = [h["nll_hr"] + h["nll_lr"] for h in hist]
    assert sum(nll[-4:]) / 4 < sum(nll[:4]) / 4 - 0.3, nll
    # the run's weights load as a flow model
    model = load_model(str(tmp_path / "run" / "last.safetensors"))
    assert model.task == "flow" and model.upscale(torch.rand(1, 3, 6, 6)).shape == (1, 3, 24, 24)


def test_resume_gives_the_same_next_steps(folders, tmp_path):
    extra = ["flow.mmd=0.5", "flow.deg_reg=0.1", "flow.pixel_sr=0.5", "flow.pixel_ds=0.5"]
    straight = Trainer(_cfg(folders, tmp_path / "a", extra=extra), quiet=True)
    straight.fit()
    cut = Trainer(_cfg(folders, tmp_path / "b", extra=extra), quiet=True)
    cut.fit(stop_at=2)
    resumed = Trainer(_cfg(folders, tmp_path / "b", extra=extra), resume=True, quiet=True)
    assert resumed.step == 2
    resumed.fit()
    for want, got in zip(straight.history[2:], resumed.history, strict=True):
        assert set(want) == set(got)
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-5, abs=1e-6), k
    d_a = straight.task.discriminator.state_dict()
    d_b = resumed.task.discriminator.state_dict()
    assert all(torch.allclose(d_a[k], d_b[k], atol=1e-6) for k in d_a)


def test_all_plain_terms_are_logged(folders, tmp_path):
    extra = [f"flow.{t}=0.1" for t in PLAIN_TERMS]
    trainer = Trainer(_cfg(folders, tmp_path / "all", steps=1, extra=extra), quiet=True)
    trainer.fit()
    assert set(PLAIN_TERMS) <= set(trainer.history[0])


@pytest.mark.parametrize("term", PLAIN_TERMS)
def test_a_zero_weight_term_is_not_computed(folders, tmp_path, monkeypatch, term):
    extra = [f"flow.{t}={0 if t == term else 0.1}" for t in PLAIN_TERMS]
    trainer = Trainer(_cfg(folders, tmp_path / term, steps=1, extra=extra), quiet=True)
    model = trainer.model
    if term == "nll_hr":  # no HR likelihood: the HF flow never runs
        monkeypatch.setattr(model, "hr_forward", _boom)
    if term == "nll_lr":  # the Deg flow never runs forward (downscaling samples use reverse)
        monkeypatch.setattr(model, "deg_forward", _boom)
    if term == "mmd":
        monkeypatch.setattr(flow_task, "rbf_mmd", _boom)
    if term == "domain":
        assert trainer.task.discriminator is None
    trainer.fit()
    assert term not in trainer.history[0]
    assert set(PLAIN_TERMS) - {term} <= set(trainer.history[0])


def _boom(*_a, **_k):
    raise AssertionError("a zero-weight term was computed")


def test_only_the_hr_likelihood(folders, tmp_path, monkeypatch):
    extra = [f"flow.{t}={1 if t == 'nll_hr' else 0}" for t in flow_task.TERMS]
    trainer = Trainer(_cfg(folders, tmp_path / "hr", steps=1, extra=extra), quiet=True)
    monkeypatch.setattr(trainer.model, "content", _boom)  # no LR side at all
    monkeypatch.setattr(trainer.model, "lr_forward", _boom)
    trainer.fit()
    assert set(trainer.history[0]) == {"step", "nll_hr", "loss"}


def test_config_errors(folders, tmp_path):
    def message(extra) -> str:
        with pytest.raises(ZoomsrError) as err:
            Trainer(_cfg(folders, tmp_path / "x", extra=extra), quiet=True).fit()
        return str(err.value)

    assert "nothing to train" in message([f"flow.{t}=0" for t in flow_task.TERMS])
    assert "flow.domain" in message(["flow.domain=-1"])
    assert "multiple of 8" in message(["data.train.patch=36"])
    assert "data.train.lr" in message(["data.train.lr=null"])
    assert "supports 4" in message(["model.scale=2"])  # registry: SDFlow is x4 only


def test_sdflow_degradation_trains_a_sisr_model(folders, tmp_path):
    torch.manual_seed(0)
    flow = load_model("sdflow", 4, "cpu", **TINY).train()
    with torch.no_grad():  # ActNorm's data-dependent init, as a trained file has it
        flow.hr_forward(torch.rand(2, 3, 32, 32) * 2 - 1)
        x = torch.rand(2, 3, 8, 8) * 2 - 1
        z, _ = flow.lr_forward(x)
        flow.deg_forward(z - flow.content(x), flow.content(x))
    path = save_weights(flow.eval(), tmp_path / "sdflow.safetensors")
    _, hr = folders
    base = [
        "model.name=edsr-baseline",
        "model.config={n_resblocks: 1, n_feats: 8}",
        f"data.train.hr=[{hr}]",
        "data.train.patch=32",
        "data.batch=2",
        "run.steps=2",
        f"run.out={tmp_path / 'edsr'}",
    ]
    cfg = load_config(None, [*base, "model.scale=4", f"data.train.degradation=sdflow:{path}@0.5"])
    trainer = Trainer(cfg, quiet=True)
    data = trainer.task.dataset()
    a, b = data[5], data[5]
    assert a[0].shape == (3, 8, 8) and torch.equal(a[0], b[0])  # pure function of the index
    assert not torch.equal(data[5][0], data[6][0])
    trainer.fit()
    assert trainer.step == 2 and all(math.isfinite(h["loss"]) for h in trainer.history)
    cfg2 = load_config(None, [*base, "model.scale=2", f"data.train.degradation=sdflow:{path}"])
    with pytest.raises(ZoomsrError, match="x4 LR only"):
        Trainer(cfg2, quiet=True).task.dataset()
    cfg3 = load_config(None, [*base, "model.scale=4", "data.train.degradation=sdflow:nope.st"])
    with pytest.raises(ZoomsrError, match="not found"):
        Trainer(cfg3, quiet=True).task.dataset()


@pytest.mark.parametrize("hr_lowpass", [True, False])
def test_content_term_filters_the_hr_side_only_when_asked(folders, tmp_path, hr_lowpass):
    """`content` is L1(LPF(g(z_c^HR)), LPF(BD(HR))) + L1(LPF(g(E(LR))), LPF(LR)); with
    flow.content_hr_lowpass=false the HR pair is compared unfiltered, the LR pair still filtered."""
    extra = [f"flow.{t}={1 if t == 'content' else 0}" for t in flow_task.TERMS]
    extra.append(f"flow.content_hr_lowpass={str(hr_lowpass).lower()}")
    trainer = Trainer(_cfg(folders, tmp_path / "c", steps=1, extra=extra), quiet=True)
    task, model = trainer.task, trainer.model
    g = torch.Generator().manual_seed(0)
    lr, hr = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    task.step((lr, hr))  # ActNorm's data-dependent init
    _, logs = task.step((lr, hr))
    from zoomsr.ops.resize import imresize

    with torch.no_grad():
        g_hr = (model.lr_flow.reverse(model.hr_flow.content(hr * 2 - 1)) + 1) / 2
        g_lr = (model.lr_flow.reverse(model.content(lr * 2 - 1)) + 1) / 2
        lpf = lambda t: flow_task.gaussian_lowpass(t, 1.0)  # noqa: E731
        bd = imresize(hr, 1 / 4)
        hr_side = (lpf(g_hr) - lpf(bd)) if hr_lowpass else (g_hr - bd)
        want = hr_side.abs().mean() + (lpf(g_lr) - lpf(lr)).abs().mean()
        other = (g_hr - bd) if hr_lowpass else (lpf(g_hr) - lpf(bd))
        rejected = other.abs().mean() + (lpf(g_lr) - lpf(lr)).abs().mean()
    assert logs["content"] == pytest.approx(float(want), rel=1e-5)
    assert abs(logs["content"] - float(rejected)) > 1e-4
