"""One training loop for every model: data, losses, optimisation, validation, checkpoints."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from zoomsr.data.sisr import (
    SISRPairedSet,
    SISRTrainSet,
    StepSampler,
    load_training_images,
    load_training_pairs,
)
from zoomsr.errors import ZoomsrError
from zoomsr.losses.expr import CompositeLoss
from zoomsr.models.checkpoints import read_weights, save_weights
from zoomsr.models.registry import load_model
from zoomsr.train.checkpoint import atomic_torch_save, load_state, rng_state, set_rng_state
from zoomsr.train.config import TrainConfig, to_yaml


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Learning-rate multiplier at ``step`` (warm-up, then step decay or cosine)."""
    s = cfg.schedule
    if s.warmup and step < s.warmup:
        return (step + 1) / s.warmup
    if s.name == "step":
        return s.gamma ** (step // s.step)
    if s.name == "cosine":
        total = max(1, cfg.run.steps - s.warmup)
        t = min(1.0, (step - s.warmup) / total)
        floor = s.min_lr / cfg.optim.lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    if s.name == "constant":
        return 1.0
    raise ZoomsrError(f"unknown schedule '{s.name}'; use step, cosine or constant")


def load_init_weights(model: torch.nn.Module, path: str, log: Callable[[str], None]) -> None:
    """Fine-tuning start: copy every tensor whose name and shape match (e.g. not another scale's tail)."""
    state, meta = read_weights(path)
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ZoomsrError(
            f"--init '{path}' ({meta.get('model')}) shares no weights with {model.model_name}"
        )
    model.load_state_dict(usable, strict=False)
    skipped = len(own) - len(usable)
    log(f"init from {path}: {len(usable)} tensors loaded, {skipped} left at their initial values")


class Trainer:
    """Trains ``cfg.model`` on ``cfg.data`` with ``cfg.loss``; resumable from its run folder."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, quiet: bool = False, log=print):
        self.cfg = cfg
        self.quiet = quiet
        self.log = log
        self.device = resolve_device(cfg.run.device)
        self.run_dir = Path(cfg.run.out)
        torch.manual_seed(cfg.run.seed)

        self.model = load_model(cfg.model.name, cfg.model.scale, self.device, **cfg.model.config)
        if getattr(self.model, "task", "sisr") != "sisr":
            raise ZoomsrError(f"model '{cfg.model.name}' is not trained by the SISR recipe")
        if cfg.run.init and not resume:
            load_init_weights(self.model, cfg.run.init, log)
        self.model.train()
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.run.ema))
            if cfg.run.ema > 0
            else None
        )

        self.discriminator = None
        adversarial = None
        if "GAN" in cfg.loss.upper():
            from zoomsr.losses.gan import DISCRIMINATORS, Adversarial

            if cfg.gan.discriminator not in DISCRIMINATORS:
                raise ZoomsrError(
                    f"unknown discriminator '{cfg.gan.discriminator}'; use vgg or patch"
                )
            self.discriminator = DISCRIMINATORS[cfg.gan.discriminator]().to(self.device).train()
            adversarial = Adversarial(self.discriminator, cfg.gan.kind)
        self.loss = CompositeLoss(cfg.loss, adversarial=adversarial).to(self.device)

        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optim.name.lower() != "adam":
            raise ZoomsrError(f"unknown optimizer '{cfg.optim.name}'; use adam")
        self.optimizer = torch.optim.Adam(
            params,
            lr=cfg.optim.lr,
            betas=tuple(cfg.optim.betas),
            weight_decay=cfg.optim.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(cfg, s)
        )
        self.d_optimizer = (
            torch.optim.Adam(
                self.discriminator.parameters(), lr=cfg.gan.lr, betas=tuple(cfg.optim.betas)
            )
            if self.discriminator is not None
            else None
        )
        amp = cfg.run.amp and self.device.type == "cuda"
        self.autocast = torch.autocast(self.device.type, enabled=amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp)
        self.step = 0
        self.best_psnr = -math.inf
        self.history: list[dict] = []
        if resume:
            self._restore(load_state(self.run_dir))
        self._writer = None

    # --- state -------------------------------------------------------------------------

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        if self.discriminator is not None and state.get("discriminator") is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.d_optimizer.load_state_dict(state["d_optimizer"])
        set_rng_state(state["rng"])
        self.step = state["step"]
        self.best_psnr = state["best_psnr"]
        self.log(f"resumed {self.run_dir} at step {self.step}")

    @property
    def inference_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def save(self, best: bool = False) -> None:
        extra = {"step": self.step, "loss": self.cfg.loss}
        save_weights(self.inference_model, self.run_dir / "last.safetensors", extra)
        if best:
            save_weights(self.inference_model, self.run_dir / "best.safetensors", extra)
        state = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "discriminator": self.discriminator.state_dict()
            if self.discriminator is not None
            else None,
            "d_optimizer": self.d_optimizer.state_dict() if self.d_optimizer is not None else None,
            "rng": rng_state(),
            "best_psnr": self.best_psnr,
        }
        atomic_torch_save(state, self.run_dir / "state.pt")

    # --- data --------------------------------------------------------------------------

    def batches(self):
        d = self.cfg.data
        if not d.train.hr:
            raise ZoomsrError("no training data: set data.train.hr to one or more HR folders")
        if d.train.degradation != "bicubic":
            raise ZoomsrError(
                f"unknown degradation '{d.train.degradation}'; this version supports bicubic"
            )
        scale = self.cfg.model.scale
        args = (scale, d.train.patch, self.cfg.run.seed)
        if d.train.lr:
            dataset = SISRPairedSet(
                load_training_pairs(list(d.train.hr), d.train.lr, scale), *args, d.flip, d.rot90
            )
        else:
            dataset = SISRTrainSet(load_training_images(list(d.train.hr)), *args, d.flip, d.rot90)
        sampler = StepSampler(self.step * d.batch, self.cfg.run.steps * d.batch)
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=d.batch,
            sampler=sampler,
            num_workers=d.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    # --- steps -------------------------------------------------------------------------

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        lr, hr = lr.to(self.device, non_blocking=True), hr.to(self.device, non_blocking=True)
        logs: dict[str, float] = {}
        if self.discriminator is not None:
            for p in self.discriminator.parameters():
                p.requires_grad_(False)
        with self.autocast:
            sr = self.model(lr)
            total, terms = self.loss(sr, hr, lr)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.cfg.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        if self.discriminator is not None:
            for p in self.discriminator.parameters():
                p.requires_grad_(True)
            with self.autocast:
                d_loss = self.loss.terms[self.loss.names.index("GAN")].discriminator_step_loss(
                    sr, hr
                )
            self.d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d_optimizer.step()
            logs["D"] = float(d_loss.detach())
        self.step += 1
        logs.update(terms)
        logs["loss"] = float(total.detach())
        return logs

    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        v = self.cfg.data.val
        if not v.path:
            return None
        from zoomsr.infer.evaluate import evaluate_sisr
        from zoomsr.metrics import MetricSuite, get_convention

        model = self.inference_model
        model.eval()
        try:
            report = evaluate_sisr(
                lambda _s: model,
                [v.path],
                [self.cfg.model.scale],
                MetricSuite(get_convention("sisr"), ("psnr", "ssim"), device=self.device),
                self.cfg.model.name,
                max_images=v.max_images,
            )
        finally:
            self.model.train()
        row = report.summary[0]
        return {"psnr": row["psnr"], "ssim": row["ssim"]}

    def _tb(self):
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self._writer = False
            else:
                self._writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step)
        return self._writer or None

    def fit(self, stop_at: int | None = None) -> dict:
        """Train until ``run.steps`` (or stop early at ``stop_at``, as a kill would); returns a summary."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(to_yaml(cfg))
        total = cfg.run.steps
        if self.step >= total:
            self.log(f"nothing to do: already at step {self.step} of {total}")
            return {"step": self.step, "best_psnr": self.best_psnr}
        bar = None
        if not self.quiet and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(
                total=total, initial=self.step, desc=f"train {cfg.model.name}", dynamic_ncols=True
            )
        started = time.time()
        last = {}
        for lr, hr in self.batches():
            last = self.train_step(lr, hr)
            self.history.append({"step": self.step, **last})
            lr_now = self.scheduler.get_last_lr()[0]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{last['loss']:.4f}", lr=f"{lr_now:.2e}")
            writer = self._tb()
            if writer and (self.step % cfg.run.log_every == 0 or self.step == total):
                for k, val in last.items():
                    writer.add_scalar(f"train/{k}", val, self.step)
                writer.add_scalar("train/lr", lr_now, self.step)
            if bar is None and not self.quiet and self.step % cfg.run.log_every == 0:
                rate = (self.step - (self.history[0]["step"] - 1)) / max(
                    1e-9, time.time() - started
                )
                eta = (total - self.step) / max(rate, 1e-9)
                terms = " ".join(f"{k}={v:.4g}" for k, v in last.items())
                self.log(
                    f"step {self.step}/{total} {terms} lr={lr_now:.2e} {rate:.2f} it/s eta {eta / 60:.1f} min"
                )
            validate_now = cfg.data.val.path and (
                self.step % cfg.data.val.every == 0 or self.step == total
            )
            is_best = False
            if validate_now:
                val = self.validate()
                is_best = val["psnr"] > self.best_psnr
                self.best_psnr = max(self.best_psnr, val["psnr"])
                if writer:
                    writer.add_scalar("val/psnr", val["psnr"], self.step)
                    writer.add_scalar("val/ssim", val["ssim"], self.step)
                if not self.quiet:
                    self.log(f"step {self.step}: val PSNR {val['psnr']:.3f} SSIM {val['ssim']:.4f}")
            stopping = stop_at is not None and self.step >= stop_at
            if (
                self.step % cfg.run.checkpoint_every == 0
                or self.step == total
                or is_best
                or stopping
            ):
                self.save(best=is_best)
            if stopping:
                break
        if bar is not None:
            bar.close()
        if self._writer:
            self._writer.close()
        return {
            "step": self.step,
            "best_psnr": self.best_psnr,
            "last": last,
            "seconds": time.time() - started,
        }
