"""What differs per model family inside the one training loop of :mod:`zoomsr.train.engine`.

A task owns the trained network (``model``) and everything around it that the loop does not:
the dataset, the forward pass and loss of one batch, extra networks and their state (a GAN
discriminator, SelfDZSR's auxiliary-LR generator), extra weight files and validation. The
:class:`~zoomsr.train.engine.Trainer` owns the optimizers (one per entry of
:meth:`Task.param_groups`, all on the same schedule), backward, EMA, checkpoints, logging and
resumption.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoomsr.errors import ZoomsrError
from zoomsr.losses.expr import CompositeLoss
from zoomsr.train.config import TrainConfig

Batch = Any  # what the task's dataset yields, collated


class Task:
    """Interface; see the module docstring. ``model`` is the network whose weights are saved."""

    model: nn.Module
    # Some trained parameters may get no gradient in a step (e.g. random pastes), which DDP
    # must then look for in every step.
    unused_parameters = False

    def dataset(self) -> torch.utils.data.Dataset:
        """Training items, item ``i`` a pure function of ``(run.seed, i)``."""
        raise NotImplementedError

    def param_groups(self) -> dict[str, tuple[list[nn.Parameter], float]]:
        """``{name: (parameters, base lr)}``, one Adam each; ``"model"`` is the main network."""
        raise NotImplementedError

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """Forward one batch: the total loss to back-propagate and each term for the log."""
        raise NotImplementedError

    def after_step(self) -> dict[str, float]:
        """Updates that follow the optimizer step (e.g. the discriminator); returns log terms."""
        return {}

    def trained_networks(self) -> dict[str, nn.Module]:
        """The networks :meth:`step` trains; data-parallel runs average their gradients."""
        return {"model": self.model}

    def distribute(self, rank: int, world: int, wrap: Callable) -> None:
        """Make the task's own work data-parallel (run by the trainer under torchrun only).

        ``wrap(networks, fn)`` returns ``fn`` with DDP gradient averaging over ``networks``;
        ``rank`` and ``world`` place this process's share of each global batch.
        """

    def validate(self, model: nn.Module) -> dict[str, float] | None:
        """Scores on ``data.val.path`` (``psnr`` picks the best checkpoint); None: no val data."""
        return None

    def state_dict(self) -> dict:
        """Task-owned state for ``state.pt`` (extra networks, their optimizers, RNG streams)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def save_weights(self, run_dir: Path, extra: dict, best: bool) -> None:
        """Extra weight files next to ``last.safetensors`` (none by default)."""

    def weight_files(self) -> list[str]:
        """Names of the files :meth:`save_weights` writes (last ones, not best)."""
        return []


# --------------------------------------------------------------------------- single image


@torch.no_grad()
def validate_on_benchmark(
    cfg: TrainConfig, model: nn.Module, device: torch.device
) -> dict[str, float] | None:
    """PSNR/SSIM (SISR convention) of ``model`` on the benchmark folder ``data.val.path``."""
    v = cfg.data.val
    if not v.path:
        return None
    from zoomsr.infer.evaluate import evaluate_sisr
    from zoomsr.metrics import MetricSuite, get_convention

    report = evaluate_sisr(
        lambda _s: model,
        [v.path],
        [cfg.model.scale],
        MetricSuite(get_convention("sisr"), ("psnr", "ssim"), device=device),
        cfg.model.name,
        max_images=v.max_images,
    )
    row = report.summary[0]
    return {"psnr": row["psnr"], "ssim": row["ssim"]}


class SISRTask(Task):
    """Supervised single-image SR: HR folders (LR by exact bicubic) or LR/HR pairs."""

    def __init__(self, cfg: TrainConfig, model: nn.Module, device: torch.device):
        self.cfg, self.model, self.device = cfg, model, device
        self.discriminator = None
        adversarial = None
        if "GAN" in cfg.loss.upper():
            from zoomsr.losses.gan import DISCRIMINATORS, Adversarial

            if cfg.gan.discriminator not in DISCRIMINATORS:
                raise ZoomsrError(
                    f"unknown discriminator '{cfg.gan.discriminator}'; use vgg or patch"
                )
            self.discriminator = DISCRIMINATORS[cfg.gan.discriminator]().to(device).train()
            adversarial = Adversarial(self.discriminator, cfg.gan.kind)
        self.loss = CompositeLoss(cfg.loss, adversarial=adversarial).to(device)
        self.d_optimizer = (
            torch.optim.Adam(
                self.discriminator.parameters(), lr=cfg.gan.lr, betas=tuple(cfg.optim.betas)
            )
            if self.discriminator is not None
            else None
        )
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None
        self._d_loss: Callable | None = None  # the discriminator's loss, DDP-wrapped if distributed

    def distribute(self, rank: int, world: int, wrap: Callable) -> None:
        if self.discriminator is not None:
            from zoomsr.train.distributed import sync_batchnorm

            # In place (its root is no BN layer): the GAN term and d_optimizer keep their refs.
            sync_batchnorm(self.discriminator, self.device)
            gan = self.loss.terms[self.loss.names.index("GAN")]
            self._d_loss = wrap({"discriminator": self.discriminator}, gan.discriminator_step_loss)

    def dataset(self) -> torch.utils.data.Dataset:
        from zoomsr.data.sisr import (
            SISRPairedSet,
            SISRTrainSet,
            load_training_images,
            load_training_pairs,
        )

        d = self.cfg.data
        if not d.train.hr and not d.train.zoom:
            raise ZoomsrError(
                "no training data: set data.train.hr (HR folders) or data.train.zoom (captures)"
            )
        degradation = None  # bicubic: the exact benchmark LR
        if d.train.degradation != "bicubic":
            from zoomsr.data.degraded import resolve_degradation

            degradation = resolve_degradation(d.train.degradation)
            if d.train.zoom or d.train.lr:
                raise ZoomsrError(
                    "data.train.degradation makes the LR from HR patches: use it with "
                    "data.train.hr only (not data.train.lr or data.train.zoom)"
                )
        scale = self.cfg.model.scale
        args = (scale, d.train.patch, self.cfg.run.seed)
        if d.train.zoom:  # (LR, GT) of zoom captures: the supervised baseline of the zoom family
            from zoomsr.data.zoom import load_zoom_pairs

            return SISRPairedSet(load_zoom_pairs(list(d.train.zoom), scale), *args, d.flip, d.rot90)
        if d.train.lr:
            pairs = load_training_pairs(list(d.train.hr), d.train.lr, scale)
            return SISRPairedSet(pairs, *args, d.flip, d.rot90)
        if degradation is not None:
            from zoomsr.data.degraded import DegradedTrainSet

            images = load_training_images(list(d.train.hr))
            return DegradedTrainSet(images, *args, d.flip, d.rot90, degradation=degradation)
        return SISRTrainSet(load_training_images(list(d.train.hr)), *args, d.flip, d.rot90)

    def param_groups(self) -> dict[str, tuple[list[nn.Parameter], float]]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return {"model": (params, self.cfg.optim.lr)}

    def step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        lr, hr = (t.to(self.device, non_blocking=True) for t in batch)
        if self.discriminator is not None:  # the generator step must not train D
            self.discriminator.requires_grad_(False)
        sr = self.model(lr)
        total, terms = self.loss(sr, hr, lr)
        self._last = (sr, hr)
        return total, terms

    def after_step(self) -> dict[str, float]:
        if self.discriminator is None or self._last is None:
            return {}
        sr, hr = self._last
        self.discriminator.requires_grad_(True)
        gan = self.loss.terms[self.loss.names.index("GAN")]
        d_loss = (self._d_loss or gan.discriminator_step_loss)(sr, hr)
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        self._last = None
        return {"D": float(d_loss.detach())}

    def validate(self, model: nn.Module) -> dict[str, float] | None:
        return validate_on_benchmark(self.cfg, model, self.device)

    def state_dict(self) -> dict:
        if self.discriminator is None:
            return {}
        return {
            "discriminator": self.discriminator.state_dict(),
            "d_optimizer": self.d_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if self.discriminator is not None and state.get("discriminator") is not None:
            self.discriminator.load_state_dict(state["discriminator"])
            self.d_optimizer.load_state_dict(state["d_optimizer"])


# --------------------------------------------------------------------------- dual zoom

AUXLR_NAME = "selfdzsr-auxlr"  # the generator's name in its weight file (not a registry model)


def _load_student(model: nn.Module, path: str) -> None:
    """The frozen matcher: ``imagenet`` (VGG16, both branches), an official
    ``Student_model_*.pth`` or a ``student.safetensors`` of ``zoomsr train-matcher``."""
    if path == "imagenet":
        model.matcher.load_imagenet()
        return
    from zoomsr.train.matcher import read_student_weights

    model.matcher.load_state_dict(read_student_weights(path), strict=True)


def _load_generator(generator: nn.Module, path: str) -> None:
    """Generator weights: ``auxlr.safetensors`` of a zoomsr run or an official KernelGen file."""
    if str(path).endswith((".pth", ".pt")):
        from zoomsr.convert.edsr_pytorch import read_official_state
        from zoomsr.convert.selfdzsr import convert_kernelgen_state

        state, scale = convert_kernelgen_state(read_official_state(path), path)
    else:
        from zoomsr.models.checkpoints import read_weights

        state, meta = read_weights(path)
        if meta.get("model") != AUXLR_NAME:
            raise ZoomsrError(f"'{path}' is not an auxiliary-LR generator ({meta.get('model')})")
        scale = int(meta["scale"])
    if scale != generator.scale:
        raise ZoomsrError(f"'{path}' is a x{scale} generator; this run is x{generator.scale}")
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ZoomsrError(f"'{path}' does not fit the generator: {first}") from None


def bicubic_down_ac(gt: torch.Tensor, ratio: int) -> torch.Tensor:
    """The official ``F.interpolate(GT, 1/r, bicubic, align_corners=True)`` (quirk #5)."""
    return F.interpolate(gt, scale_factor=1 / ratio, mode="bicubic", align_corners=True)


class ZoomTask(Task):
    """SelfDZSR family training: SR net and auxiliary-LR generator together (reference §3.6-3.8, §4).

    Per batch: the generator maps GT to the LR domain (L1 to the LR + λ_c·centroid); its output,
    detached, plus the noise residual ``noise - bicubic↓(GT)`` is the auxiliary LR that guides
    the AdaSTNs (and, in the ECCV model, matching); the SR loss is ``cfg.loss`` on the SR output
    vs the GT. ``zoom.prealign`` (++, §2.6) first warps each LR patch onto its GT by optical flow
    and masks every loss. Dual-zoom models train on dual samples, SelfTZSR++ on triple ones.
    Stage ``auxlr`` trains the generator alone (no SR forward).
    """

    @property
    def unused_parameters(self) -> bool:
        # A rank whose samples all skip the paste leaves the Ref head without a gradient.
        return self.stage == "joint"

    def __init__(self, cfg: TrainConfig, model: nn.Module, device: torch.device, resume: bool):
        from zoomsr.losses.centroid import CentroidLoss
        from zoomsr.models.zoom import AuxLRGenerator, SelfDZSR
        from zoomsr.models.zoom.selfdzsr_pp import ZoomPlusPlus

        z = cfg.zoom
        if z.stage not in ("auxlr", "joint"):
            raise ZoomsrError(f"unknown zoom.stage '{z.stage}'; use auxlr or joint")
        if not isinstance(model, SelfDZSR | ZoomPlusPlus):
            raise ZoomsrError(f"model '{cfg.model.name}' has no zoom training recipe yet")
        self.cfg, self.model, self.device = cfg, model, device
        self.stage, self.ratio = z.stage, cfg.model.scale
        self.eccv = isinstance(model, SelfDZSR)
        self.zooms = tuple(getattr(model, "zooms", (self.ratio,)))  # the Refs, widest first
        if z.student and not resume:
            _load_student(model, z.student)
        self.generator = AuxLRGenerator(self.ratio, n_feats=z.auxlr_feats).to(device).train()
        self.generator.model_name, self.generator.scale = AUXLR_NAME, self.ratio
        self.generator.config = {"n_feats": z.auxlr_feats}
        if z.auxlr_init and not resume:
            _load_generator(self.generator, z.auxlr_init)
        self.centroid = CentroidLoss(z.centroid_weight)
        self.loss = None
        if self.stage == "joint":
            sw = {"backbone": z.sw_backbone, "feature_scales": z.sw_feature_scales}
            sw["seed"] = cfg.run.seed
            self.loss = CompositeLoss(cfg.loss, sliced_wasserstein=sw).to(device)
        # Model-side draws (AdaSTN dropout, paste) come from this stream; it goes to state.pt.
        self.rng = torch.Generator().manual_seed(cfg.run.seed)
        self.draws = self.rng  # a BatchDraws over it when the batch is split over processes

    def trained_networks(self) -> dict[str, nn.Module]:
        nets = {"auxlr": self.generator}
        return {"model": self.model, **nets} if self.stage == "joint" else nets

    def distribute(self, rank: int, world: int, wrap: Callable) -> None:
        from zoomsr.models.zoom.draws import BatchDraws

        self.draws = BatchDraws(self.rng, rank, world)

    def dataset(self) -> torch.utils.data.Dataset:
        from zoomsr.data.auxnoise import WithAuxNoise
        from zoomsr.data.zoom import TripleZoomTrainSet, ZoomTrainSet, load_zoom_samples

        d, z = self.cfg.data, self.cfg.zoom
        if not d.train.zoom:
            raise ZoomsrError("no training data: set data.train.zoom to zoom sample folders")
        samples, seed = load_zoom_samples(*d.train.zoom), self.cfg.run.seed
        if len(self.zooms) == 1:
            base = ZoomTrainSet(samples, self.ratio, d.train.lr_patch, seed, augment=d.flip)
        else:
            base = TripleZoomTrainSet(samples, self.zooms, d.train.lr_patch, seed, augment=d.flip)
        return WithAuxNoise(base, sigma=tuple(z.noise_sigma), quality=tuple(z.jpeg_quality))

    def param_groups(self) -> dict[str, tuple[list[nn.Parameter], float]]:
        groups = {"auxlr": (list(self.generator.parameters()), self.cfg.zoom.auxlr_lr)}
        if self.stage == "joint":
            params = [p for p in self.model.parameters() if p.requires_grad]
            groups = {"model": (params, self.cfg.optim.lr), **groups}
        return groups

    def step(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        b = {k: v.to(self.device, non_blocking=True) for k, v in batch.items() if k != "name"}
        lr, gt = b["lr"], b["gt"]
        lr_mask, gt_mask = None, b.get("gt_mask")
        if self.cfg.zoom.prealign:  # ++ online alignment: the warped LR replaces the LR (§2.6)
            from zoomsr.data.zoom import align_patch

            lr, lr_mask, flow_mask = align_patch(lr, gt, self.ratio)
            gt_mask = flow_mask if gt_mask is None else gt_mask * flow_mask
        aux, kernels = self.generator(gt if gt_mask is None else gt * gt_mask, lr)
        content = F.l1_loss(aux, lr)
        centroid = self.centroid(kernels)
        total = content + centroid
        logs = {"auxlr_L1": float(content.detach()), "centroid": float(centroid.detach())}
        if self.stage == "joint":
            # The SR terms never reach the generator: its output is detached (reference §4).
            noise = b["noise"] - bicubic_down_ac(gt, self.ratio)
            guide = (aux.detach() + noise).clamp(0, 1)
            if lr_mask is not None:
                guide = guide * lr_mask
            if self.eccv:
                out = self.model.forward_trace(
                    lr,
                    b["ref"],
                    b["ref_box"].tolist(),
                    lr_centre=b["lr_ref"],
                    guide_lr=guide,
                    generator=self.draws,
                )
            else:
                refs, boxes = self._refs(b)
                out = self.model.forward_trace(
                    lr, refs, boxes, guide_lr=guide, generator=self.draws
                )
            sr_total, terms = self.loss(out["sr"], gt, lr, mask=gt_mask)
            total = total + sr_total
            logs.update(terms)
        return total, logs

    def _refs(self, b: dict) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The batch's Refs (widest first) and their per-sample LR boxes."""
        if len(self.zooms) == 1:
            return [b["ref"]], [b["ref_box"]]
        return [b[f"ref{z}x"] for z in self.zooms], [b[f"coord_ref{z}x"] for z in self.zooms]

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float] | None:
        v = self.cfg.data.val
        if not v.path:
            return None
        from zoomsr.data.zoom import find_zoom_samples, load_zoom_sample

        folders = find_zoom_samples(v.path)
        folders = folders[: v.max_images] if v.max_images else folders
        pad = self.cfg.zoom.val_pad  # scored as `zoomsr eval` does: GT and Refs in the LR's frame
        rows = [self._score(load_zoom_sample(f, pad=pad, align_gt=True), model) for f in folders]
        return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}

    def _score(self, sample, model: nn.Module) -> dict[str, float]:
        from zoomsr.metrics import MetricSuite, get_convention

        if sample.ratio != self.ratio:
            raise ZoomsrError(
                f"validation sample '{sample.name}' is x{sample.ratio}, not x{self.ratio}"
            )
        dev = self.device
        if self.stage == "auxlr":  # score the generator: its aux LR against the real LR
            gen = self.generator
            was_training = gen.training
            gen.eval()
            aux = gen(sample.gt.to(dev), sample.lr.to(dev))[0].clamp(0, 1)
            gen.train(was_training)
            mse = float(F.mse_loss(sample.unpad(aux, 1), sample.unpad(sample.lr.to(dev), 1)))
            return {"psnr": 10 * math.log10(1 / max(mse, 1e-12))}  # aux-LR vs LR, peak 1
        n = len(self.zooms)  # a dual model on triple captures takes the narrowest Ref
        refs = [r.to(dev) for r in sample.refs[-n:]]
        sr = model(sample.lr.to(dev), refs, sample.ref_boxes[-n:]).clamp(0, 1)
        suite = MetricSuite(
            get_convention("selfdzsr"), ("psnr",), ("full", "centre", "corner"), device=dev
        )
        row = suite(sample.unpad(sr).cpu(), sample.unpad(sample.gt), self.ratio)
        return {
            "psnr": row["psnr"],
            "psnr_centre": row["psnr_centre"],
            "psnr_corner": row["psnr_corner"],
        }

    def state_dict(self) -> dict:
        streams = self.loss.generators() if self.loss is not None else []
        return {
            "auxlr": self.generator.state_dict(),
            "rng": self.rng.get_state(),
            "loss_rng": [g.get_state() for g in streams],
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["auxlr"])
        self.rng.set_state(state["rng"])
        streams = self.loss.generators() if self.loss is not None else []
        for g, s in zip(streams, state.get("loss_rng", []), strict=False):
            g.set_state(s)

    def save_weights(self, run_dir: Path, extra: dict, best: bool) -> None:
        from zoomsr.models.checkpoints import save_weights

        save_weights(self.generator, run_dir / "auxlr.safetensors", {**extra, "stage": self.stage})
        if best and self.stage == "auxlr":
            save_weights(self.generator, run_dir / "auxlr_best.safetensors", extra)

    def weight_files(self) -> list[str]:
        return ["auxlr.safetensors"]


def _flow_task(cfg: TrainConfig, model: nn.Module, device: torch.device) -> Task:
    from zoomsr.train.flow_task import FlowTask  # its own module (SDFlow, experimental)

    return FlowTask(cfg, model, device)


def make_task(
    cfg: TrainConfig, model: nn.Module, device: torch.device, resume: bool = False
) -> Task:
    """The task for the model's family (its registry ``task``)."""
    kind = getattr(model, "task", "sisr")
    builders: dict[str, Callable[[], Task]] = {
        "sisr": lambda: SISRTask(cfg, model, device),
        "zoom": lambda: ZoomTask(cfg, model, device, resume),
        "flow": lambda: _flow_task(cfg, model, device),
    }
    if kind not in builders:
        raise ZoomsrError(f"model '{cfg.model.name}' ({kind}) has no training recipe yet")
    return builders[kind]()
