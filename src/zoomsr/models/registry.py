"""One registry names every model; the CLI, trainer, benchmarks and tests resolve names here."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from zoomsr.errors import ZoomsrError

# Modules whose import registers their models.
_MODEL_MODULES = (
    "zoomsr.models.sisr.bicubic",
    "zoomsr.models.sisr.classic",
    "zoomsr.models.sisr.postup",
    "zoomsr.models.sisr.edsr",
    "zoomsr.models.sisr.rcan",
    "zoomsr.models.zoom.selfdzsr",
    "zoomsr.models.zoom.selfdzsr_pp",
    "zoomsr.models.zoom.selftzsr_pp",
    "zoomsr.models.zeroshot.zssr",
    "zoomsr.models.flow.sdflow",
    "zoomsr.models.zoo",
)


@dataclass(frozen=True)
class ModelSpec:
    """A named model: how to build it and what it does."""

    name: str
    task: str  # "sisr" | "zoom" | "flow"
    build: Callable[..., nn.Module]  # build(scale=s, **config) -> nn.Module
    scales: tuple[int, ...]
    summary: str
    default_scale: int | None = None
    config: dict = field(default_factory=dict)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model '{spec.name}' registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    for module in _MODEL_MODULES:
        importlib.import_module(module)


def list_models() -> list[ModelSpec]:
    _ensure_loaded()
    return sorted(_REGISTRY.values(), key=lambda s: s.name)


def get_spec(name: str) -> ModelSpec:
    _ensure_loaded()
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ZoomsrError(f"unknown model '{name}'{hint}; 'zoomsr models' lists them")


def is_model_file(name: str) -> bool:
    return name.endswith((".safetensors", ".pt", ".pth")) or Path(name).is_file()


def load_model(
    name: str, scale: int | None = None, device: str | torch.device = "cpu", **config
) -> nn.Module:
    """A registered model built for ``scale``, or a zoomsr model file, in eval mode on ``device``."""
    if is_model_file(str(name)):
        from zoomsr.models.checkpoints import load_checkpoint_model

        return load_checkpoint_model(name, scale, device)
    spec = get_spec(name)
    scale = scale or spec.default_scale
    if scale is None:
        raise ZoomsrError(f"model '{name}' needs a scale (--scale); it supports {spec.scales}")
    if scale not in spec.scales:
        raise ZoomsrError(
            f"model '{name}' does not support scale {scale}; it supports {', '.join(map(str, spec.scales))}"
        )
    merged = {**spec.config, **config}
    model = spec.build(scale=scale, **merged)
    if not hasattr(model, "model_name"):  # shipped weights keep the architecture they name
        model.model_name = name
        model.config = merged
    model.scale = scale
    model.task = spec.task
    return model.eval().to(device)
