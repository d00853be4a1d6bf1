"""Training configuration: YAML files plus ``--set a.b=value`` overrides, checked against a schema.

OmegaConf does the merging and type checking; an unknown key is reported with the closest
valid one.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from zoomsr.errors import ZoomsrError

T = TypeVar("T")


@dataclass
class ModelCfg:
    name: str = MISSING
    scale: int = 2
    config: dict[str, Any] = field(default_factory=dict)  # architecture overrides


@dataclass
class TrainDataCfg:
    hr: list[str] = field(default_factory=list)  # HR folders; LR made on the fly
    lr: str | None = None  # paired LR folder (names as in HR, or NAMEx{s})
    patch: int = 96  # HR patch size (a multiple of the scale)
    degradation: str = "bicubic"  # how LR is made from HR
    preload: bool = True
    zoom: list[str] = field(default_factory=list)  # zoom models: folders of zoom samples
    lr_patch: int = 48  # zoom models: LR patch side (GT patch is ratio x this)


@dataclass
class ValDataCfg:
    path: str | None = None  # a benchmark folder (see zoomsr eval); zoom: a folder of samples
    every: int = 500  # steps between validations
    max_images: int = 0  # 0: all


@dataclass
class DataCfg:
    train: TrainDataCfg = field(default_factory=TrainDataCfg)
    val: ValDataCfg = field(default_factory=ValDataCfg)
    batch: int = 16
    workers: int = 0
    flip: bool = True
    rot90: bool = True


@dataclass
class OptimCfg:
    name: str = "adam"
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0: off


@dataclass
class ScheduleCfg:
    name: str = "step"  # step | cosine | constant
    step: int = 200_000  # halve every `step` steps (name=step)
    gamma: float = 0.5
    warmup: int = 0  # linear warm-up steps
    min_lr: float = 1e-7  # floor of the cosine schedule


@dataclass
class GanCfg:
    discriminator: str = "vgg"  # vgg | patch
    lr: float = 1e-4
    kind: str = "ragan"  # vanilla | lsgan | ragan (the GAN term in the loss uses this)


@dataclass
class ZoomCfg:
    """Zoom (reference-based) models; SelfDZSR's recipe (reference §2.5, §4, §5)."""

    stage: str = "joint"  # auxlr: pre-train the aux-LR generator alone | joint: SR net + generator
    student: str | None = None  # frozen matcher: official Student_model_*.pth (or run.init)
    auxlr_init: str | None = None  # generator: auxlr.safetensors of a run, or KernelGen_model_*.pth
    auxlr_lr: float = 5e-5  # generator Adam lr (the SR net's is optim.lr); same schedule
    auxlr_feats: int = 64
    centroid_weight: float = 100.0  # λ_c of the position-preserving loss
    noise_sigma: list[int] = field(default_factory=lambda: [5, 30])  # Gaussian σ of 255, inclusive
    jpeg_quality: list[int] = field(default_factory=lambda: [60, 95])  # inclusive
    sw_backbone: str = "vgg19_caffe"  # SW loss features; vgg19 = torchvision's (local file)
    sw_feature_scales: list[float] | None = None  # per-tap divisors; None: calibrated defaults
    val_pad: int = 8  # whole-image validation: LR edge-padded to a multiple of this
    prealign: bool = False  # ++: warp each LR patch onto its GT by optical flow; masked losses


@dataclass
class FlowCfg:
    """Flow models (SDFlow, task ``flow``): EXPERIMENTAL unpaired training.

    The paper's loss equations could not be read (reference ``sdflow_reference.md`` §6): each
    term below is inferred from the flows or an assumption; ``configs/flow/sdflow_x4.yaml``
    says which. A term whose weight is 0 is not computed.
    """

    nll_hr: float = 1.0  # bits/dim of the HR image: HR flow + HF flow + N(0, I) [inferred]
    nll_lr: float = (
        1.0  # bits/dim of the LR image given E(x_LR): LR + Deg flow + mixture [inferred]
    )
    content: float = 10.0  # L1 of f_LR^-1(z_c) vs BD(HR) / low-passed LR [3rd-party lead]
    content_perceptual: float = 0.0  # VGG L1 of the same decodes (3rd-party: 0.05) [3rd-party]
    domain: float = 0.05  # LSGAN on content latents, both sides fool D [assumption]
    mmd: float = 0.0  # RBF-kernel MMD^2 of the content latents [assumption]
    latent_reg: float = 0.0025  # mean z_c^2 of both sides (3rd-party 0.05 x beta1 0.05)
    deg_reg: float = 0.025  # mean |z_LR - sg(z_c)|, z_d -> 0 (3rd-party 0.05 x beta2 0.5)
    pixel_sr: float = 5.0  # L1 of low-passed BD(SR sample) vs the LR [assumption]
    pixel_ds: float = 1.0  # L1 of low-passed downscaled sample vs BD(HR) [assumption]
    perceptual: float = 0.0  # VGG L1 of the same pairs as pixel_sr / pixel_ds [assumption]
    tau: float = 0.8  # temperature of the samples of the pixel/perceptual terms
    lpf_sigma: float = 1.0  # Gaussian low-pass (5x5) of the content and pixel terms
    content_hr_lowpass: bool = False  # low-pass BD(HR)'s side of `content` too (3rd-party)
    dequantize: bool = True  # (k + u) / 256 inputs, so the NLL is that of 8-bit images
    d_lr: float = 1e-5  # latent discriminator Adam lr (3rd-party), same betas and schedule
    d_channels: int = 64  # latent discriminator width
    backbone: str = "vgg19_caffe"  # perceptual features (content_perceptual, perceptual)
    perceptual_layer: str = "relu5_4"
    feature_scale: float = 100.0  # divides Caffe VGG features (see losses/perceptual.py)


@dataclass
class RunCfg:
    steps: int = 1000
    seed: int = 0
    ema: float = 0.0  # EMA decay of the weights (e.g. 0.999); 0: off
    amp: bool = False  # mixed precision on CUDA
    device: str = "auto"
    log_every: int = 50
    checkpoint_every: int = 500
    out: str = "runs/default"
    init: str | None = None  # fine-tune from these weights


@dataclass
class TrainConfig:
    model: ModelCfg = field(default_factory=ModelCfg)
    data: DataCfg = field(default_factory=DataCfg)
    loss: str = "1*L1"
    optim: OptimCfg = field(default_factory=OptimCfg)
    schedule: ScheduleCfg = field(default_factory=ScheduleCfg)
    gan: GanCfg = field(default_factory=GanCfg)
    zoom: ZoomCfg = field(default_factory=ZoomCfg)
    flow: FlowCfg = field(default_factory=FlowCfg)
    run: RunCfg = field(default_factory=RunCfg)


def _all_keys(node: Any, prefix: str = "") -> list[str]:
    keys = []
    if isinstance(node, dict):
        for k, v in node.items():
            keys.append(f"{prefix}{k}")
            if k != "config":  # free-form architecture overrides
                keys += _all_keys(v, f"{prefix}{k}.")
    return keys


def _unknown_key_error(err: ConfigKeyError, schema: type) -> ZoomsrError:
    key = str(getattr(err, "full_key", "") or "?")
    valid = _all_keys(OmegaConf.to_container(OmegaConf.structured(schema)))
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ZoomsrError(f"unknown config key '{key}'{hint}")


def load_structured(
    schema: type[T], path: str | Path | None = None, overrides: list[str] = ()
) -> T:
    """Defaults of the dataclass ``schema`` <- YAML file <- ``key=value`` overrides; returns a
    typed ``schema`` instance. OmegaConf's errors become one-line :class:`ZoomsrError`s."""
    try:
        cfg = OmegaConf.structured(schema)
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ZoomsrError(f"config file '{path}' not found")
            cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
        for item in overrides:
            if "=" not in item:
                raise ZoomsrError(f"--set expects key=value, got '{item}'")
        if overrides:
            # from_dotlist parses values as YAML: 2e-4, [a, b], null, true.
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        OmegaConf.resolve(cfg)
        missing = OmegaConf.missing_keys(cfg)
        if missing:
            raise ZoomsrError(f"config is missing required key(s): {', '.join(sorted(missing))}")
        return OmegaConf.to_object(cfg)  # type: ignore[return-value]
    except ConfigKeyError as err:
        raise _unknown_key_error(err, schema) from None
    except ValidationError as err:
        first = str(err).splitlines()[0]
        raise ZoomsrError(
            f"bad config value: {first} (key '{getattr(err, 'full_key', '?')}')"
        ) from None
    except OmegaConfBaseException as err:
        raise ZoomsrError(f"bad config: {str(err).splitlines()[0]}") from None


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """Schema defaults <- YAML file <- ``key=value`` overrides; returns a typed config."""
    return load_structured(TrainConfig, path, overrides)


def to_yaml(cfg: TrainConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix[:-1]: node}
    flat: dict[str, Any] = {}
    for k, v in node.items():
        flat.update(_flat(v, f"{prefix}{k}."))
    return flat


# Keys a resumed run may change without changing what it learns: not worth a word.
_RESUME_FREE = (
    "run.steps",
    "run.out",
    "run.device",
    "run.init",
    "run.log_every",
    "run.checkpoint_every",
    "data.workers",
)


def config_changes(saved_yaml: str, cfg: TrainConfig) -> list[str]:
    """``key: old -> new`` for each setting of ``cfg`` that differs from a run's saved
    config.yaml, so a resume with another config file (a lost EMA, another lr) is visible."""
    old = _flat(OmegaConf.to_container(OmegaConf.create(saved_yaml)))
    new = _flat(OmegaConf.to_container(OmegaConf.structured(cfg)))
    return [
        f"{k}: {old.get(k)} -> {new.get(k)}"
        for k in sorted(set(old) | set(new))
        if k not in _RESUME_FREE and old.get(k) != new.get(k)
    ]
