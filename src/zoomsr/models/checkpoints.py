"""zoomsr model files: safetensors whose metadata holds the model name, scale and config.

``load_model(path)`` needs nothing else: the file says what to build.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from zoomsr import __version__
from zoomsr.atomic import atomic_write
from zoomsr.errors import ZoomsrError

FORMAT = "zoomsr-model"
FORMAT_VERSION = "1"


def save_weights(model: nn.Module, path: str | Path, extra: dict | None = None) -> Path:
    """Write a model's state dict and identity atomically as ``*.safetensors``."""
    path = Path(path)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "zoomsr_version": __version__,
        "model": model.model_name,
        "scale": str(model.scale),
        "config": json.dumps(getattr(model, "config", {})),
        **{k: str(v) for k, v in (extra or {}).items()},
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write(path, lambda p: save_file(state, str(p), metadata=meta))
    return path


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """State dict and metadata of a zoomsr model file; a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ZoomsrError(f"model file '{path}' not found")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ZoomsrError(f"cannot read model file '{path}': {err}") from None
    if meta.get("format") != FORMAT:
        raise ZoomsrError(
            f"'{path}' is not a zoomsr model file (no zoomsr metadata); "
            "convert official checkpoints with 'zoomsr convert'"
        )
    return state, meta


def load_checkpoint_model(path: str | Path, scale: int | None = None, device="cpu") -> nn.Module:
    from zoomsr.models.registry import load_model

    state, meta = read_weights(path)
    file_scale = int(meta["scale"])
    if scale is not None and scale != file_scale:
        raise ZoomsrError(f"'{path}' is a x{file_scale} model; it cannot upscale x{scale}")
    model = load_model(meta["model"], file_scale, "cpu", **json.loads(meta.get("config", "{}")))
    matcher = meta.get("matcher")
    if matcher == "imagenet":  # shipped zoom weights leave out the frozen ImageNet matcher
        model.matcher.load_imagenet()
        state = {**{f"matcher.{k}": v for k, v in model.matcher.state_dict().items()}, **state}
    elif matcher:
        raise ZoomsrError(f"'{path}' names an unknown matcher '{matcher}'")
    try:
        model.load_state_dict(state, strict=True)  # copies fp16 files into fp32 parameters
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ZoomsrError(
            f"weights in '{path}' do not fit model '{meta['model']}': {first}"
        ) from None
    model.weights_path = str(path)
    return model.eval().to(device)


def shipping_state(
    state: dict[str, torch.Tensor],
    meta: dict[str, str],
    half: bool = False,
    drop_imagenet_matcher: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A smaller copy of a model file's contents for ``zoomsr/weights``: float16 tensors
    (``half``) and, for zoom models whose frozen matcher is ImageNet VGG16, no ``matcher.*``
    (:func:`load_checkpoint_model` rebuilds it from the backbone cache)."""
    if drop_imagenet_matcher:
        from zoomsr.models.zoom import StudentExtractor

        imagenet = StudentExtractor().load_imagenet().state_dict()
        if any(not v.equal(state.get(f"matcher.{k}", v.new_empty(0))) for k, v in imagenet.items()):
            raise ValueError("the matcher of these weights is not ImageNet VGG16; keep it")
        state = {k: v for k, v in state.items() if not k.startswith("matcher.")}
        meta = {**meta, "matcher": "imagenet"}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return state, meta
