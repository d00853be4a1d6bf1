"""Training LR made by a degradation pipeline: ``data.train.degradation: <name or YAML>``.

``bicubic`` keeps the exact benchmark LR of :class:`~zoomsr.data.sisr.SISRTrainSet`. A preset
name (``bsrgan``, ``realesrgan``, ``div2krk``; see docs/degradations.md) or a YAML file
(``preset: <name>`` plus any of that preset's parameters) degrades each HR patch on the fly.
``<kind>:<argument>`` values are looked up in :data:`LEARNED`, the hook for degradations that
are models (``sdflow:<checkpoint>[@tau]``, :class:`SDFlowDegradation`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from zoomsr.data.sisr import SISRTrainSet, item_generator
from zoomsr.errors import ZoomsrError
from zoomsr.ops.degrade import PRESETS, Degradation

DEGRADE_SALT = 0xDE62AD  # separates the degradation stream from the patch stream of an item

# A degradation maps (hr (N, 3, H, W), scale, generator) to (lr, record).
DegradeFn = Callable[[torch.Tensor, int, torch.Generator], tuple[torch.Tensor, dict]]
# "<kind>:<argument>" degradations: kind -> factory taking the argument (e.g. a checkpoint path).
LEARNED: dict[str, Callable[[str], DegradeFn]] = {}


def degradation_names() -> list[str]:
    return ["bicubic", *sorted(PRESETS)]


def _unknown(spec: str) -> ZoomsrError:
    return ZoomsrError(
        f"unknown degradation '{spec}'; use one of {', '.join(degradation_names())} "
        "or a .yaml file with 'preset: <name>'"
    )


def load_degradation_yaml(path: str | Path) -> Degradation:
    """A preset with parameters from a YAML file: ``preset: bsrgan`` plus overrides, e.g.
    ``jpeg_quality: [60, 95]`` (Real-ESRGAN's stages: ``first: {sigma: [0.2, 2]}``)."""
    path = Path(path)
    try:
        data = OmegaConf.to_container(OmegaConf.load(path))
    except (OSError, OmegaConfBaseException, ValueError) as err:
        raise ZoomsrError(f"cannot read degradation file '{path}': {err}") from None
    if not isinstance(data, dict) or "preset" not in data:
        raise ZoomsrError(
            f"degradation file '{path}' needs a 'preset:' key ({', '.join(sorted(PRESETS))})"
        )
    name = str(data.pop("preset"))
    if name not in PRESETS:
        raise ZoomsrError(
            f"'{path}': unknown preset '{name}'; use one of {', '.join(sorted(PRESETS))}"
        )
    schema = PRESETS[name].config
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), data))
    except ConfigKeyError as err:
        key = str(getattr(err, "full_key", "") or "?")
        valid = _keys(OmegaConf.to_container(OmegaConf.structured(schema)))
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ZoomsrError(f"'{path}': unknown {name} parameter '{key}'{hint}") from None
    except OmegaConfBaseException as err:
        raise ZoomsrError(f"'{path}': bad value: {str(err).splitlines()[0]}") from None
    return Degradation(name, cfg)


def _keys(node: Any, prefix: str = "") -> list[str]:
    out = []
    for k, v in node.items():
        out.append(prefix + k)
        if isinstance(v, dict):
            out += _keys(v, f"{prefix}{k}.")
    return out


def resolve_degradation(spec: str) -> DegradeFn | None:
    """The degradation named by ``spec``; ``None`` for ``bicubic`` (the exact benchmark LR)."""
    spec = str(spec).strip()
    if spec == "bicubic":
        return None
    if spec in PRESETS:
        return Degradation(spec)
    if spec.endswith((".yaml", ".yml")):
        if not Path(spec).is_file():
            raise ZoomsrError(f"degradation file '{spec}' not found")
        return load_degradation_yaml(spec)
    kind, sep, arg = spec.partition(":")
    if sep and kind in LEARNED:
        return LEARNED[kind](arg)
    raise _unknown(spec)


class SDFlowDegradation:
    """``sdflow:<checkpoint>[@tau]``: LR sampled by a trained SDFlow's downscaling flow (x4 only).

    The model file is read once, here; each call downscales the HR patches with temperature
    ``tau`` (default 0.8, the official scripts') drawing the noise and the mixture component
    from the item's generator, so items stay pure functions of their index. The LR is rounded
    to 8-bit levels like every other training LR. Runs on the CPU, in the data loader.
    """

    def __init__(self, argument: str):
        from zoomsr.models.registry import load_model

        path, tau = argument.strip(), 0.8
        head, at, tail = path.rpartition("@")
        if at and not Path(path).is_file():
            try:
                path, tau = head, float(tail)
            except ValueError:  # an '@' that is part of the file name
                tau = 0.8
        if not path:
            raise ZoomsrError("data.train.degradation 'sdflow:' needs a model file: sdflow:FILE")
        if not Path(path).is_file():
            raise ZoomsrError(
                f"SDFlow degradation model '{path}' not found (data.train.degradation: "
                "sdflow:FILE[@tau], a trained or converted .safetensors)"
            )
        if not tau >= 0:
            raise ZoomsrError(f"the SDFlow degradation's tau must be >= 0, got {tau}")
        model = load_model(path, None, "cpu")
        if getattr(model, "task", None) != "flow":
            raise ZoomsrError(
                f"'{path}' is a {getattr(model, 'model_name', '?')} model, not a flow model: "
                "sdflow:FILE needs an SDFlow file"
            )
        self.model, self.tau, self.path = model.eval().requires_grad_(False), tau, path
        self.scale = int(model.scale)

    def check(self, scale: int, patch: int) -> None:
        if scale != self.scale:
            raise ZoomsrError(
                f"the SDFlow degradation '{self.path}' makes x{self.scale} LR only; "
                f"this run is x{scale} (set model.scale={self.scale})"
            )
        if patch < 12:
            raise ZoomsrError(
                f"the SDFlow degradation needs HR patches of at least 12, got {patch}"
            )

    @torch.no_grad()
    def __call__(self, hr: torch.Tensor, scale: int, generator: torch.Generator):
        self.check(scale, min(hr.shape[-2:]))
        lr = self.model.downscale(hr.float(), self.tau, generator=generator)
        return torch.round(lr * 255) / 255, {"model": self.path, "tau": self.tau}


LEARNED["sdflow"] = SDFlowDegradation


class DegradedTrainSet(SISRTrainSet):
    """:class:`SISRTrainSet` patches whose LR comes from ``degradation``.

    The HR patch is the bicubic set's patch for the same index; the degradation draws from
    its own ``(seed, DEGRADE_SALT, index)`` generator, so items stay pure functions of the index.
    """

    def __init__(
        self, images, scale, patch, seed=0, flip=True, rot90=True, *, degradation: DegradeFn
    ):
        super().__init__(images, scale, patch, seed, flip, rot90)
        check = getattr(degradation, "check", None)  # learned degradations: scale, patch size
        if check is not None:
            check(scale, patch)
        self.degradation = degradation

    def item_with_record(self, index: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
        hr = self.hr_patch(index).contiguous()
        g = item_generator(self.seed, index, DEGRADE_SALT)
        lr, record = self.degradation(hr[None], self.scale, g)
        return lr[0].contiguous(), hr, record

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        lr, hr, _ = self.item_with_record(index)
        return lr, hr
