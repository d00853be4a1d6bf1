"""Contrastive training of SelfDZSR's correspondence extractor ("Student", reference §3.3, §5.3).

The published Student was distilled C²-Matching-style and its training code was never released.
Here it learns from pairs of views with known correspondences (:mod:`zoomsr.data.matcher_pairs`):

- **InfoNCE over feature locations.** Descriptors are what the matcher compares: the 3x3
  patch of pixel-normalised features, normalised as a whole, so the cosine here is the score
  whose argmax :func:`~zoomsr.models.zoom.matching.match_patches` takes. For every valid LR
  location the positive is the Ref patch at the true position (bilinear), the negatives are
  the Ref patches farther than ``safe_radius`` feature pixels from it (nearer ones overlap the
  truth and are not wrong). With ``inverse_weight`` the Ref -> LR direction is trained too: the
  Ref covers only 1/ratio² of the LR, so it gives ratio² times as many anchors per pair.
- **Distillation (optional).** A frozen teacher extractor sees the same pair; the student's
  softmax over all candidate patches is pulled to the teacher's by KL(teacher || student).
  KL between correlation distributions rather than an L2 between features, because matching
  only uses the ranking of similarities: it leaves the student free in its feature space (any
  rotation of it matches the same) and works for a teacher of another width, while an L2 would
  pin every channel to the teacher and fight the contrastive term.

The loop is compact rather than :class:`~zoomsr.train.engine.Trainer`: the Student is not a
registry model, its data is not a training set of the registry's tasks, and its score is a
matching accuracy, not a PSNR. It keeps the engine's conventions: OmegaConf YAML plus
``--set`` overrides, the engine's learning-rate schedule, items that are pure functions of
``(seed, index)``, atomic ``student.safetensors`` and ``state.pt`` for an exact ``--resume``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from zoomsr.atomic import write_json, write_text
from zoomsr.errors import ZoomsrError
from zoomsr.models.zoom.matching import StudentExtractor, correspondence_offsets
from zoomsr.train.config import OptimCfg, ScheduleCfg, load_structured

STUDENT_NAME = "selfdzsr-student"  # the extractor's name in its weight file (not a registry model)
VAL_SALT = 0x7A11  # held-out pairs: another stream than the training items of the same seed

# --------------------------------------------------------------------------- configuration


@dataclass
class AugmentCfg:
    """:class:`~zoomsr.data.matcher_pairs.PairRanges` as a config node."""

    scale_jitter: float = 1.15
    rotation_deg: float = 10.0
    perspective: float = 0.05
    blur: list[float] = field(default_factory=lambda: [0.0, 1.0])
    gain: list[float] = field(default_factory=lambda: [0.85, 1.15])
    gamma: list[float] = field(default_factory=lambda: [0.8, 1.25])
    noise: list[float] = field(default_factory=lambda: [0.0, 0.04])
    jpeg_quality: list[int] = field(default_factory=lambda: [50, 95])
    degrade: bool = True
    min_std: float = 0.04


@dataclass
class MatcherDataCfg:
    photos: list[str] = field(default_factory=list)  # folders, files or globs of photos
    holdout: int = 2  # photos kept out of training for the accuracy check (0: none)
    size: int = 96  # side of both views in pixels (multiple of 4)
    ratio: float = 4.0  # zoom ratio: Ref pixels per LR pixel
    augment: AugmentCfg = field(default_factory=AugmentCfg)
    batch: int = 8
    workers: int = 0


@dataclass
class MatcherValCfg:
    pairs: int = 32  # held-out pairs scored (fixed: same seed, same pairs)
    every: int = 250  # steps between accuracy checks (and always at the start and the end)
    tolerance: float = 1.0  # a match is right within this many feature pixels of the truth


@dataclass
class MatcherLossCfg:
    temperature: float = 0.15
    safe_radius: float = 4.0  # feature pixels; nearer candidates are neither positive nor negative
    inverse_weight: float = 1.0  # weight of the Ref -> LR InfoNCE (0: LR -> Ref only)
    teacher: str | None = None  # imagenet, a student .safetensors or an official Student .pth
    distill_weight: float = 1.0
    distill_temperature: float = 0.15


@dataclass
class MatcherRunCfg:
    steps: int = 2000
    seed: int = 0
    device: str = "auto"
    init: str = "imagenet"  # imagenet | random | a student .safetensors | an official .pth
    log_every: int = 50
    checkpoint_every: int = 250
    out: str = "runs/matcher"


@dataclass
class MatcherConfig:
    data: MatcherDataCfg = field(default_factory=MatcherDataCfg)
    val: MatcherValCfg = field(default_factory=MatcherValCfg)
    loss: MatcherLossCfg = field(default_factory=MatcherLossCfg)
    optim: OptimCfg = field(default_factory=lambda: OptimCfg(lr=1e-4))
    schedule: ScheduleCfg = field(default_factory=lambda: ScheduleCfg(name="cosine", min_lr=1e-6))
    run: MatcherRunCfg = field(default_factory=MatcherRunCfg)


def load_matcher_config(path: str | Path | None = None, overrides: list[str] = ()) -> MatcherConfig:
    """Schema defaults <- YAML file <- ``key=value`` overrides (as :mod:`zoomsr.train.config`)."""
    return load_structured(MatcherConfig, path, overrides)


# --------------------------------------------------------------------------- weights


def read_student_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """:class:`StudentExtractor` state of a file: a zoomsr student, the ``matcher.*`` of a
    zoomsr SelfDZSR model (both ``.safetensors``) or an official ``Student_model_*.pth``."""
    path = Path(path)
    if path.suffix in (".pth", ".pt"):
        from zoomsr.convert.edsr_pytorch import read_official_state
        from zoomsr.convert.selfdzsr import convert_student_state

        return convert_student_state(read_official_state(path), path)
    from zoomsr.models.checkpoints import read_weights

    state, meta = read_weights(path)
    if meta.get("model") != STUDENT_NAME:
        state = {k[8:]: v for k, v in state.items() if k.startswith("matcher.")}
        if not state:
            raise ZoomsrError(f"'{path}' holds no SelfDZSR Student ({meta.get('model')})")
    return state


def build_extractor(spec: str, device: torch.device | str = "cpu") -> StudentExtractor:
    """``imagenet`` (VGG16 in both branches), ``random`` (PyTorch's default init) or a file."""
    model = StudentExtractor()
    if spec == "imagenet":
        model.load_imagenet()
    elif spec != "random":
        try:
            model.load_state_dict(read_student_weights(spec), strict=True)
        except RuntimeError as err:
            first = str(err).strip().splitlines()[0]
            raise ZoomsrError(f"'{spec}' does not fit the Student extractor: {first}") from None
    return model.to(device)


def save_student(model: StudentExtractor, path: str | Path, ratio: float, extra: dict) -> Path:
    """``StudentExtractor`` keys in a zoomsr ``.safetensors`` (``zoom.student`` can name it)."""
    from zoomsr.models.checkpoints import save_weights

    model.model_name, model.scale = STUDENT_NAME, max(1, round(ratio))
    model.config = {}
    return save_weights(model, path, {"ratio": ratio, **extra})


# --------------------------------------------------------------------------- loss and metric


def patch_descriptors(features: torch.Tensor) -> torch.Tensor:
    """N x C x h x w -> N x 9C x h x w: the unit 3x3 patch of unit pixel vectors at every location
    (the cosine of two of them is the matcher's score / 3). Border patches are zero-padded."""
    n, c, h, w = features.shape
    patches = F.unfold(F.normalize(features, dim=1), 3, padding=1).view(n, 9 * c, h, w)
    return patches / (patches.norm(dim=1, keepdim=True) + 1e-5)


def _interior(h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices and (x, y) coordinates of the locations with a whole 3x3 patch."""
    ys, xs = torch.meshgrid(
        torch.arange(1, h - 1, device=device), torch.arange(1, w - 1, device=device), indexing="ij"
    )
    return (ys * w + xs).flatten(), torch.stack([xs, ys], -1).flatten(0, 1).float()


def _scores(
    src: torch.Tensor, dst: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For one image: (positive A, candidates A x M, distance of candidates to truth A x M).

    ``src``/``dst``: 9C x h x w descriptors; anchors are the ``valid`` src locations; the
    positive is dst at the true position (bilinear, renormalised); candidates are every dst
    location with a whole patch.
    """
    _, h, w = dst.shape
    anchors = src.flatten(1)[:, valid.flatten()].t()  # A x D
    xy = target[:, valid].t()  # A x 2, dst feature pixels
    grid = (2 * xy / torch.tensor([w - 1, h - 1], device=xy.device) - 1).view(1, 1, -1, 2)
    pos = F.grid_sample(dst[None], grid, mode="bilinear", align_corners=True)[0, :, 0].t()
    pos = F.normalize(pos, dim=1)
    index, coords = _interior(h, w, dst.device)
    cand = dst.flatten(1)[:, index]  # D x M
    return (anchors * pos).sum(1), anchors @ cand, torch.cdist(xy, coords)


def info_nce(
    src: torch.Tensor,
    dst: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    temperature: float = 0.15,
    safe_radius: float = 4.0,
    teacher: tuple[torch.Tensor, torch.Tensor] | None = None,
    distill_temperature: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """InfoNCE of ``src`` locations against ``dst`` (N x C x h x w features each).

    ``target`` (N x 2 x h x w): the true (x, y) dst position of every src location; ``valid``
    (N x h x w) bool. Returns (mean InfoNCE, mean KL to the teacher's (src, dst) features or
    None, number of anchors). Zero anchors give zero losses that keep the graph.
    """
    src, dst = patch_descriptors(src), patch_descriptors(dst)
    t_src = t_dst = None
    if teacher is not None:
        t_src, t_dst = (patch_descriptors(t) for t in teacher)
    nce, kl, count = [], [], 0
    for i in range(src.shape[0]):
        if not bool(valid[i].any()):
            continue
        pos, cand, dist = _scores(src[i], dst[i], target[i], valid[i])
        negatives = cand.masked_fill(dist <= safe_radius, -math.inf)
        logits = torch.cat([pos[:, None], negatives], 1) / temperature
        nce.append(torch.logsumexp(logits, 1) - logits[:, 0])
        if t_src is not None:
            with torch.no_grad():
                _, t_cand, _ = _scores(t_src[i], t_dst[i], target[i], valid[i])
                t_logp = F.log_softmax(t_cand / distill_temperature, 1)
            s_logp = F.log_softmax(cand / distill_temperature, 1)
            kl.append((t_logp.exp() * (t_logp - s_logp)).sum(1))
        count += len(pos)
    zero = src.sum() * 0
    loss = torch.cat(nce).mean() if nce else zero
    distill = None if teacher is None else (torch.cat(kl).mean() if kl else zero)
    return loss, distill, count


@torch.no_grad()
def matching_accuracy(
    f_lr: torch.Tensor,
    f_ref: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    tolerance: float = 1.0,
) -> tuple[int, int]:
    """(right, total): valid LR locations whose argmax Ref match, by the matcher's own
    :func:`correspondence_offsets`, lies within ``tolerance`` feature pixels of ``target``.

    The centre tap (channels 8, 9 = dy, dx) of the offsets at (y, x) is the flow of the 3x3
    patch centred there, so its match is centred at (x + dx, y + dy).
    """
    offsets = correspondence_offsets(f_lr, f_ref)
    _, _, h, w = f_lr.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=f_lr.device), torch.arange(w, device=f_lr.device), indexing="ij"
    )
    err = torch.hypot(xs + offsets[:, 9] - target[:, 0], ys + offsets[:, 8] - target[:, 1])
    return int(((err <= tolerance) & valid).sum()), int(valid.sum())


# --------------------------------------------------------------------------- training


def _split_photos(cfg: MatcherDataCfg) -> tuple[list[Path], list[Path]]:
    """(training, held-out) photo paths; held-out ones evenly spread over the sorted list."""
    from zoomsr.io import list_images

    if not cfg.photos:
        raise ZoomsrError("no photos: pass --photos DIR (or set data.photos)")
    paths = sorted({p for spec in cfg.photos for p in list_images(spec)})
    if cfg.holdout < 0 or cfg.holdout >= len(paths):
        raise ZoomsrError(
            f"data.holdout={cfg.holdout} must be 0 or more and below the {len(paths)} photos found"
        )
    n, k = len(paths), cfg.holdout
    held = {round((i + 0.5) * n / k - 0.5) for i in range(k)}
    train = [p for i, p in enumerate(paths) if i not in held]
    return train, [p for i, p in enumerate(paths) if i in held] or train


class MatcherTrainer:
    """Trains a :class:`StudentExtractor` on view pairs of ``cfg.data.photos``; resumable."""

    def __init__(self, cfg: MatcherConfig, resume: bool = False, quiet: bool = False, log=print):
        from zoomsr.data.matcher_pairs import MatcherPairs, PairRanges
        from zoomsr.data.sisr import load_training_images
        from zoomsr.devices import resolve_device
        from zoomsr.train.checkpoint import load_state
        from zoomsr.train.engine import lr_factor

        self.cfg, self.quiet, self.log = cfg, quiet, log
        self.device = resolve_device(cfg.run.device)
        self.run_dir = Path(cfg.run.out)
        if cfg.optim.name.lower() != "adam":
            raise ZoomsrError(f"unknown optimizer '{cfg.optim.name}'; use adam")
        lr_factor(cfg, 0)  # an unknown schedule name fails now, not after the first step
        torch.manual_seed(cfg.run.seed)
        d = cfg.data
        train_paths, held_paths = _split_photos(d)
        aug = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(d.augment).items()}
        ranges = PairRanges(**aug)
        photos = load_training_images([str(p) for p in train_paths])
        self.train_set = MatcherPairs(photos, d.size, d.ratio, cfg.run.seed, ranges)
        held = photos
        if held_paths != train_paths:
            held = load_training_images([str(p) for p in held_paths])
        self.val_set = MatcherPairs(
            held, d.size, d.ratio, hash((cfg.run.seed, VAL_SALT)), ranges, length=cfg.val.pairs
        )
        self.held_out = held_paths != train_paths
        self.model = build_extractor("random" if resume else cfg.run.init, self.device)
        self.model.requires_grad_(True).train()
        self.teacher = None
        if cfg.loss.teacher:
            self.teacher = build_extractor(cfg.loss.teacher, self.device).eval()
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=cfg.optim.lr,
            betas=tuple(cfg.optim.betas),
            weight_decay=cfg.optim.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(cfg, s)
        )
        self.step = 0
        self.accuracy: list[dict] = []  # {"step", "accuracy", "pairs"} per check
        if resume:
            self._restore(load_state(self.run_dir))

    # --- state ---------------------------------------------------------------------------

    def _restore(self, state: dict) -> None:
        from zoomsr.train.checkpoint import set_rng_state

        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.step = state["step"]
        self.accuracy = json.loads(state["accuracy"])
        self.log(f"resumed {self.run_dir} at step {self.step}")

    def save(self) -> None:
        from zoomsr.train.checkpoint import atomic_torch_save, rng_state

        extra = {"step": self.step, "init": self.cfg.run.init, "teacher": self.cfg.loss.teacher}
        if self.accuracy:
            extra["accuracy"] = self.accuracy[-1]["accuracy"]
        save_student(self.model, self.run_dir / "student.safetensors", self.cfg.data.ratio, extra)
        state = {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "accuracy": json.dumps(self.accuracy),
        }
        atomic_torch_save(state, self.run_dir / "state.pt")  # last: a kill leaves a consistent pair

    # --- steps ---------------------------------------------------------------------------

    def _batches(self, dataset, start: int, stop: int):
        from zoomsr.data.sisr import StepSampler

        d = self.cfg.data
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=d.batch,
            sampler=StepSampler(start, stop),
            num_workers=d.workers,
            pin_memory=self.device.type == "cuda",
        )

    def losses(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The total loss of one batch and its terms (for the log)."""
        c = self.cfg.loss
        b = {k: v.to(self.device) for k, v in batch.items()}
        f_lr, f_ref = self.model(b["lr"], b["ref"])
        fwd_teacher = inv_teacher = None
        if self.teacher is not None:
            with torch.no_grad():
                t_lr, t_ref = self.teacher(b["lr"], b["ref"])
            fwd_teacher, inv_teacher = (t_lr, t_ref), (t_ref, t_lr)
        args = {
            "temperature": c.temperature,
            "safe_radius": c.safe_radius,
            "distill_temperature": c.distill_temperature,
        }
        nce, kl, n = info_nce(f_lr, f_ref, b["target"], b["valid"], teacher=fwd_teacher, **args)
        total, logs = nce, {"nce": float(nce.detach()), "anchors": float(n)}
        if c.inverse_weight > 0:
            inv, kl_inv, _ = info_nce(
                f_ref, f_lr, b["target_inv"], b["valid_inv"], teacher=inv_teacher, **args
            )
            total = total + c.inverse_weight * inv
            logs["nce_inv"] = float(inv.detach())
            if kl is not None:
                kl = kl + c.inverse_weight * kl_inv
        if kl is not None:
            total = total + c.distill_weight * kl
            logs["kl"] = float(kl.detach())
        logs["loss"] = float(total.detach())
        return total, logs

    def train_step(self, batch: dict) -> dict[str, float]:
        total, logs = self.losses(batch)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return logs

    @torch.no_grad()
    def evaluate(self, model: StudentExtractor | None = None) -> float:
        """Matching accuracy of ``model`` (default: the trained one) on the held-out pairs."""
        model = self.model if model is None else model
        was_training = model.training
        model.eval()
        right = total = 0
        for b in self._batches(self.val_set, 0, len(self.val_set)):
            f_lr, f_ref = model(b["lr"].to(self.device), b["ref"].to(self.device))
            r, t = matching_accuracy(
                f_lr, f_ref, b["target"].to(self.device), b["valid"].to(self.device),
                self.cfg.val.tolerance,
            )  # fmt: skip
            right, total = right + r, total + t
        model.train(was_training)
        return right / max(1, total)

    def _check(self) -> float:
        acc = self.evaluate()
        self.accuracy.append({"step": self.step, "accuracy": acc, "pairs": len(self.val_set)})
        if not self.quiet:
            where = "held-out" if self.held_out else "training-photo (no holdout)"
            self.log(f"step {self.step}: {where} matching accuracy {100 * acc:.2f}%")
        return acc

    def fit(self, stop_at: int | None = None) -> dict:
        """Train to ``run.steps`` (or stop at ``stop_at``, as a kill would); returns a summary."""
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_text(self.run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        total = cfg.run.steps
        if self.step == 0:
            self._check()
        bar = None
        if not self.quiet and sys.stderr.isatty():
            from tqdm import tqdm

            bar = tqdm(total=total, initial=self.step, desc="train matcher", dynamic_ncols=True)
        started, first, last = time.time(), self.step, {}
        batches = self._batches(self.train_set, self.step * cfg.data.batch, total * cfg.data.batch)
        for batch in batches if self.step < total else ():
            last = self.train_step(batch)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{last['loss']:.4f}")
            elif not self.quiet and self.step % max(1, cfg.run.log_every) == 0:
                rate = (self.step - first) / max(1e-9, time.time() - started)
                terms = " ".join(f"{k}={v:.4g}" for k, v in last.items())
                eta = (total - self.step) / max(rate, 1e-9) / 60
                self.log(f"step {self.step}/{total} {terms} {rate:.2f} it/s eta {eta:.1f} min")
            stopping = stop_at is not None and self.step >= stop_at
            if self.step % max(1, cfg.val.every) == 0 or self.step == total:
                self._check()
            if self.step % max(1, cfg.run.checkpoint_every) == 0 or self.step == total or stopping:
                self.save()
            if stopping:
                break
        if bar is not None:
            bar.close()
        if self.step >= total and (not self.accuracy or self.accuracy[-1]["step"] != self.step):
            self._check()
            self.save()
        write_json(self.run_dir / "metrics.json", {"accuracy": self.accuracy})
        return {
            "step": self.step,
            "accuracy_before": self.accuracy[0]["accuracy"] if self.accuracy else None,
            "accuracy": self.accuracy[-1]["accuracy"] if self.accuracy else None,
            "last": last,
            "seconds": time.time() - started,
            "weights": str(self.run_dir / "student.safetensors"),
        }


def train_matcher(
    cfg: MatcherConfig, resume: bool = False, quiet: bool = False, log: Callable = print
) -> dict:
    """Train (or resume) the Student of ``cfg``; returns :meth:`MatcherTrainer.fit`'s summary."""
    return MatcherTrainer(cfg, resume=resume, quiet=quiet, log=log).fit()
