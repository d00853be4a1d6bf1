"""Data-parallel training: ``torchrun`` with 2 CPU processes (gloo, loopback) equals one process
with the same global batch, in its logged losses and final weights, and a run resumes across a
change in the number of processes.

The single-process runs happen in this process on one thread; the torchrun ones are launched
as ``python -m torch.distributed.run ... -m zoomsr train`` with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from zoomsr.errors import ZoomsrError
from zoomsr.models.zoom.draws import BatchDraws, batch_rand
from zoomsr.train import distributed
from zoomsr.train.config import load_config
from zoomsr.train.engine import Trainer

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-5


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(nproc: int, config: Path, *args: str) -> str:
    """``zoomsr train CONFIG ARGS`` in ``nproc`` CPU processes; returns their stdout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    cmd += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    cmd += ["-m", "zoomsr", "train", str(config), "--device", "cpu", "-q", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _losses(run: Path) -> dict[int, float]:
    """The ``train/loss`` TensorBoard scalars of a run folder, by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars("train/loss")}


def _assert_same_run(a: Path, b: Path, steps: int, weights: str = "last.safetensors") -> None:
    la, lb = _losses(a), _losses(b)
    assert sorted(la) == sorted(lb) == list(range(1, steps + 1))
    for step in la:
        assert la[step] == pytest.approx(lb[step], abs=TOL), f"loss at step {step}"
    wa, wb = load_file(a / weights), load_file(b / weights)
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert worst < TOL, f"{weights} differ by {worst:.3g}"


# --------------------------------------------------------------------------- EDSR-baseline


@pytest.fixture(scope="module")
def edsr_config(shared, tmp_path_factory) -> Path:
    """A tiny EDSR-baseline x2 recipe on two 64-px crops, global batch 4, 3 steps."""
    root = tmp_path_factory.mktemp("ddp_edsr")
    hr = root / "hr"
    hr.mkdir()
    for name in ("baby", "butterfly"):
        im = Image.open(shared("data", "Set5", "HR", f"{name}.png")).convert("RGB")
        im.crop((64, 64, 128, 128)).save(hr / f"{name}.png")
    config = root / "edsr.yaml"
    config.write_text(
        f"""model: {{name: edsr-baseline, scale: 2, config: {{n_resblocks: 2, n_feats: 16}}}}
data:
  train: {{hr: ["{hr}"], patch: 24}}
  batch: 4
  workers: 0
loss: 1*L1
optim: {{lr: 1.0e-3}}
schedule: {{name: constant}}
run: {{steps: 3, seed: 0, log_every: 1, checkpoint_every: 1000, device: cpu}}
"""
    )
    return config


def _train_here(config: Path, out: Path, steps: int, resume: bool = False) -> None:
    overrides = [f"run.out={out}", f"run.steps={steps}"]
    Trainer(load_config(config, overrides), resume=resume, quiet=True).fit()


@pytest.fixture(scope="module")
def edsr_single(edsr_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("edsr_single") / "run"
    _train_here(edsr_config, out, 3)
    return out


def test_two_processes_train_edsr_like_one_with_the_same_global_batch(
    edsr_config, edsr_single, tmp_path
):
    out = tmp_path / "ddp"
    stdout = _torchrun(2, edsr_config, "--out", str(out))
    assert stdout.count("done: step 3") == 1  # rank 0 alone reports
    _assert_same_run(edsr_single, out, 3)
    assert (out / "state.pt").is_file() and (out / "config.yaml").is_file()


def test_resume_across_a_change_in_the_number_of_processes(edsr_config, edsr_single, tmp_path):
    out = tmp_path / "hops"
    _train_here(edsr_config, out, 1)  # 1 process: step 0 -> 1
    _torchrun(2, edsr_config, "--out", str(out), "--steps", "2", "--resume")  # 2: 1 -> 2
    _train_here(edsr_config, out, 3, resume=True)  # 1 again: 2 -> 3
    assert torch.load(out / "state.pt", weights_only=True)["step"] == 3
    # The TB log was cut at each resume; the weights must match the uninterrupted run.
    wa, wb = load_file(edsr_single / "last.safetensors"), load_file(out / "last.safetensors")
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert worst < TOL, f"resumed weights differ by {worst:.3g}"


# --------------------------------------------------------------------------- SelfDZSR++


@pytest.fixture(scope="module")
def pp_config(shared, tmp_path_factory) -> Path:
    """SelfDZSR++ x4 (2 blocks) with prealignment on two simulated captures, global batch 2.

    Every random draw is rank-independent: patches and aux noise are functions of (seed, global
    sample index) and the AdaSTN P = 0 / paste draws are split per sample (BatchDraws), so
    nothing is switched off here (drop_prob and paste_prob keep their defaults). The learning
    rates are the recipe's: Adam moves a weight by about lr per step whatever its gradient's
    size, so a weight whose gradient is float rounding noise moves by noise x lr; the losses
    agree to float32 rounding (5e-7) and, at 1e-3, a few weights differed by 1.1e-5.
    """
    from zoomsr.data.simulate import simulate_dataset

    root = tmp_path_factory.mktemp("ddp_pp")
    photos = root / "photos"
    photos.mkdir()
    for name in ("apples.jpg", "roof_tiles.jpg"):
        shutil.copy(shared("data", "photos", name), photos / name)
    simulate_dataset(photos, root / "sim", ratio=4, seed=0, crop=192)
    student = shared("parity", "selfdzsr_eccv_x4", "Student_model_400.pth")
    config = root / "pp.yaml"
    config.write_text(
        f"""model: {{name: selfdzsr-pp, scale: 4, config: {{n_blocks: 2, n_feats: 16}}}}
data:
  train: {{zoom: ["{root / "sim"}"], lr_patch: 32}}
  batch: 2
  workers: 0
loss: 1*L1
optim: {{lr: 1.0e-4}}
schedule: {{name: constant}}
zoom: {{student: "{student}", auxlr_lr: 5.0e-5, prealign: true}}
run: {{steps: 2, seed: 0, log_every: 1, checkpoint_every: 1000, device: cpu}}
"""
    )
    return config


def test_two_processes_train_selfdzsr_pp_like_one(pp_config, tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    _train_here(pp_config, single, 2)
    _torchrun(2, pp_config, "--out", str(ddp))
    _assert_same_run(single, ddp, 2)
    _assert_same_run(single, ddp, 2, weights="auxlr.safetensors")  # the generator's optimizer
    state = torch.load(ddp / "state.pt", weights_only=True)
    assert torch.equal(
        state["task"]["rng"], torch.load(single / "state.pt", weights_only=True)["task"]["rng"]
    )  # the draw stream advanced as in one process


# --------------------------------------------------------------------------- helpers


def test_batch_draws_give_each_sample_its_single_process_value():
    whole = torch.rand(6, generator=torch.Generator().manual_seed(3))
    shares = [
        batch_rand(3, BatchDraws(torch.Generator().manual_seed(3), rank, 2)) for rank in (0, 1)
    ]
    # Rank r holds the global batch positions r, r + 2, r + 4.
    assert torch.equal(torch.stack(shares, 1).flatten(), whole)
    assert torch.equal(batch_rand(6, torch.Generator().manual_seed(3)), whole)


def test_single_process_helpers_are_no_ops(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert (distributed.rank(), distributed.world(), distributed.is_main()) == (0, 1, True)
    assert distributed.setup(torch.device("cpu")) == torch.device("cpu")
    assert not distributed.is_active()
    assert distributed.mean_of_ranks({"loss": 0.5}, torch.device("cpu")) == {"loss": 0.5}
    assert distributed.per_rank_batch(5) == 5


def test_global_batch_must_split_evenly(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ZoomsrError, match=r"data\.batch 5 is not divisible by the 2 processes"):
        distributed.per_rank_batch(5)


def test_sync_batchnorm_converts_the_discriminator_in_place(monkeypatch):
    from zoomsr.losses.gan import DISCRIMINATORS

    disc = DISCRIMINATORS["vgg"]()
    params = list(disc.parameters())
    assert distributed.sync_batchnorm(disc, torch.device("cuda")) is disc  # not distributed
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in disc.modules())
    monkeypatch.setattr(distributed, "is_active", lambda: True)
    assert distributed.sync_batchnorm(disc, torch.device("cpu")) is disc  # gloo: no SyncBN
    assert distributed.sync_batchnorm(disc, torch.device("cuda")) is disc
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in disc.modules())
    assert not any(type(m) is torch.nn.BatchNorm2d for m in disc.modules())
    # The same Parameter objects: the optimizer and the GAN loss keep working.
    assert all(a is b for a, b in zip(params, disc.parameters(), strict=True))
