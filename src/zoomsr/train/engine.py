"""One training loop for every model: data, losses, optimisation, validation, checkpoints."""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from zoomsr.data.sisr import StepSampler
from zoomsr.devices import resolve_device
from zoomsr.errors import ZoomsrError
from zoomsr.models.checkpoints import read_weights, save_weights
from zoomsr.models.registry import load_model
from zoomsr.train import distributed
from zoomsr.train.checkpoint import atomic_torch_save, load_state, rng_state, set_rng_state
from zoomsr.train.config import TrainConfig, config_changes, to_yaml
from zoomsr.train.tasks import make_task


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
    """Trains ``cfg.model`` on ``cfg.data`` with ``cfg.loss``; resumable from its run folder.

    What differs per model family (data, forward and loss, extra networks, validation) lives in
    a :class:`~zoomsr.train.tasks.Task`; this class is the loop around it.

    Under ``torchrun`` every process runs this same loop on its share of each global batch of
    ``data.batch`` samples, with DDP averaging the gradients (:mod:`zoomsr.train.distributed`);
    rank 0 alone validates, logs and writes the run folder, whose state does not depend on the
    number of processes.
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False, quiet: bool = False, log=print):
        self.cfg = cfg
        self.device = distributed.setup(resolve_device(cfg.run.device))
        self.rank, self.world = distributed.rank(), distributed.world()
        self.is_main = self.rank == 0
        self.quiet = quiet or not self.is_main
        self.log = log if self.is_main else (lambda *_: None)
        self.run_dir = Path(cfg.run.out)
        self.batch = distributed.per_rank_batch(cfg.data.batch)
        torch.manual_seed(cfg.run.seed)

        model = load_model(cfg.model.name, cfg.model.scale, self.device, **cfg.model.config)
        self.model = distributed.sync_batchnorm(model, self.device)
        self.task = make_task(cfg, self.model, self.device, resume)
        if cfg.run.init and not resume:
            load_init_weights(self.model, cfg.run.init, self.log)
        self.model.train()
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.run.ema))
            if cfg.run.ema > 0
            else None
        )

        if cfg.optim.name.lower() != "adam":
            raise ZoomsrError(f"unknown optimizer '{cfg.optim.name}'; use adam")
        # One Adam per parameter group of the task, all on the same schedule (the SelfDZSR
        # generator's lr is half the SR net's, and both halve together).
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}
        for name, (params, lr) in self.task.param_groups().items():
            opt = torch.optim.Adam(
                params, lr=lr, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay
            )
            self.optimizers[name] = opt
            self.schedulers[name] = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: lr_factor(cfg, s)
            )
        amp = cfg.run.amp and self.device.type == "cuda"
        self.autocast = torch.autocast(self.device.type, enabled=amp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp)
        self.step = 0
        self.best_psnr = -math.inf
        self.history: list[dict] = []
        if resume:  # rank 0 reads it: the other machines need no copy of the run folder
            if self.is_main:
                self._warn_config_changes()
            self._restore(distributed.broadcast_from_main(lambda: load_state(self.run_dir)))
        self._writer = None
        # The task's forward and loss, with DDP averaging the gradients of its networks.
        self._step = distributed.data_parallel(
            self.task.trained_networks(), self.task.step, self.device, self.task.unused_parameters
        )
        if distributed.is_active():
            wrap = functools.partial(distributed.data_parallel, device=self.device)
            self.task.distribute(self.rank, self.world, wrap)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The main optimizer (the model's, or the only one when the model is frozen)."""
        return self.optimizers.get("model") or next(iter(self.optimizers.values()))

    @property
    def scheduler(self) -> torch.optim.lr_scheduler.LambdaLR:
        return self.schedulers.get("model") or next(iter(self.schedulers.values()))

    @property
    def trains_model(self) -> bool:
        return "model" in self.optimizers

    # --- state -------------------------------------------------------------------------

    def _warn_config_changes(self) -> None:
        saved = self.run_dir / "config.yaml"
        changes = config_changes(saved.read_text(), self.cfg) if saved.is_file() else []
        if changes:
            self.log(
                f"warning: resuming with settings that differ from {saved}: " + "; ".join(changes)
            )

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        optimizers = state.get("optimizers") or {"model": state["optimizer"]}  # older runs
        schedulers = state.get("schedulers") or {"model": state["scheduler"]}
        if set(optimizers) != set(self.optimizers):
            raise ZoomsrError(
                f"cannot resume: the run trained {sorted(optimizers)}, this config trains "
                f"{sorted(self.optimizers)} (another zoom.stage?); start a new --out"
            )
        for name, opt in self.optimizers.items():
            opt.load_state_dict(optimizers[name])
            self.schedulers[name].load_state_dict(schedulers[name])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.task.load_state_dict(state.get("task") or state)  # older runs: GAN keys at the top
        set_rng_state(state["rng"])
        self.step = state["step"]
        self.best_psnr = state["best_psnr"]
        self.log(f"resumed {self.run_dir} at step {self.step}")

    @property
    def inference_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def save(self, best: bool = False) -> None:
        extra = {"step": self.step, "loss": self.cfg.loss}
        if self.trains_model:  # a frozen model (generator pre-training) has nothing new to save
            save_weights(self.inference_model, self.run_dir / "last.safetensors", extra)
            if best:
                save_weights(self.inference_model, self.run_dir / "best.safetensors", extra)
        self.task.save_weights(self.run_dir, extra, best)
        state = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "task": self.task.state_dict(),
            "rng": rng_state(),
            "best_psnr": self.best_psnr,
        }
        atomic_torch_save(state, self.run_dir / "state.pt")

    # --- data --------------------------------------------------------------------------

    def batches(self):
        """This process's batches: global samples ``step * data.batch + rank + world * j``, so
        the processes together see each global batch a single process would."""
        d = self.cfg.data
        sampler = StepSampler(
            self.step * d.batch, self.cfg.run.steps * d.batch, self.rank, self.world
        )
        return torch.utils.data.DataLoader(
            self.task.dataset(),
            batch_size=self.batch,
            sampler=sampler,
            num_workers=d.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )

    # --- steps -------------------------------------------------------------------------

    def train_step(self, batch) -> dict[str, float]:
        with self.autocast:
            total, terms = self._step(batch)
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.cfg.optim.grad_clip > 0:
            params = []
            for opt in self.optimizers.values():
                self.scaler.unscale_(opt)
                params += [p for g in opt.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        # Reverse order: SelfDZSR steps the generator first, then the SR net (reference §5.1).
        for opt in reversed(self.optimizers.values()):
            self.scaler.step(opt)
        self.scaler.update()
        for sched in self.schedulers.values():
            sched.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        with self.autocast:
            logs = self.task.after_step()
        self.step += 1
        logs.update(terms)
        logs["loss"] = float(total.detach())
        return distributed.mean_of_ranks(logs, self.device)  # the global batch's means

    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        model = self.inference_model
        model.eval()
        try:
            return self.task.validate(model)
        finally:
            self.model.train()

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
        if self.is_main:
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
        for batch in self.batches():
            last = self.train_step(batch)
            self.history.append({"step": self.step, **last})
            lr_now = self.scheduler.get_last_lr()[0]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{last['loss']:.4f}", lr=f"{lr_now:.2e}")
            writer = self._tb() if self.is_main else None
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
            validate_now = (
                self.is_main
                and cfg.data.val.path
                and (self.step % cfg.data.val.every == 0 or self.step == total)
            )
            is_best = False
            if validate_now:
                val = self.validate()
                is_best = val["psnr"] > self.best_psnr
                self.best_psnr = max(self.best_psnr, val["psnr"])
                if writer:
                    for k, v in val.items():
                        writer.add_scalar(f"val/{k}", v, self.step)
                if not self.quiet:
                    scores = " ".join(f"{k}={v:.4f}" for k, v in val.items())
                    self.log(f"step {self.step}: val {scores}")
            stopping = stop_at is not None and self.step >= stop_at
            if self.is_main and (
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
        distributed.barrier()  # every rank ends once rank 0 has written the last checkpoint
        return {
            "step": self.step,
            "best_psnr": self.best_psnr,
            "last": last,
            "seconds": time.time() - started,
            "weights": self.weight_files(),
        }

    def weight_files(self) -> list[str]:
        """The weight files this run writes (``last.safetensors`` and the task's own)."""
        names = (["last.safetensors"] if self.trains_model else []) + self.task.weight_files()
        return [str(self.run_dir / n) for n in names]
