"""EDSR-PyTorch checkpoints (EDSR, EDSR-baseline, RCAN) -> zoomsr models.

zoomsr's EDSR and RCAN keep the official module names, so the state dict loads as is; what
the converter adds is reading the file safely, stripping DataParallel prefixes and inferring
the architecture (depth, width, scale) from the tensor shapes, then a strict load.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from zoomsr.errors import ZoomsrError
from zoomsr.models.registry import load_model


def read_official_state(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ZoomsrError(f"checkpoint '{path}' not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad file
        raise ZoomsrError(f"cannot read checkpoint '{path}': {str(err).splitlines()[0]}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ZoomsrError(f"'{path}' does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _count(state, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in state if (m := rx.match(k))})


def infer_scale(state: dict[str, torch.Tensor], n_feats: int) -> int:
    """From the sub-pixel upsampler: log2(s) convs to 4C (s = 2^n), or one conv to 9C (s = 3)."""
    convs = [k for k in state if re.fullmatch(r"tail\.0\.\d+\.weight", k)]
    if len(convs) == 1 and state[convs[0]].shape[0] == 9 * n_feats:
        return 3
    return 2 ** len(convs)


def infer_architecture(state: dict[str, torch.Tensor]) -> tuple[str, int, dict]:
    """(model name, scale, config) of an EDSR-PyTorch state dict."""
    if "head.0.weight" not in state:
        raise ZoomsrError("not an EDSR-PyTorch EDSR/RCAN checkpoint (no 'head.0.weight')")
    n_feats = state["head.0.weight"].shape[0]
    scale = infer_scale(state, n_feats)
    if any("conv_du" in k for k in state):
        groups = _count(state, r"body\.(\d+)\.body\.0\.body\.0\.weight")
        blocks = _count(state, r"body\.0\.body\.(\d+)\.body\.0\.weight")
        reduction = n_feats // state["body.0.body.0.body.3.conv_du.0.weight"].shape[0]
        config = {
            "n_resgroups": groups,
            "n_resblocks": blocks,
            "n_feats": n_feats,
            "reduction": reduction,
        }
        return "rcan", scale, config
    blocks = _count(state, r"body\.(\d+)\.body\.0\.weight")
    # The residual scale is not stored: EDSR-PyTorch uses 0.1 for its wide model only.
    name = "edsr" if n_feats == 256 else "edsr-baseline"
    config = {
        "n_resblocks": blocks,
        "n_feats": n_feats,
        "res_scale": 0.1 if n_feats == 256 else 1.0,
    }
    return name, scale, config


def convert_edsr_pytorch(path: str | Path, res_scale: float | None = None) -> nn.Module:
    """Load an official EDSR/RCAN ``.pt`` into the matching zoomsr model."""
    state = read_official_state(path)
    name, scale, config = infer_architecture(state)
    if res_scale is not None and name != "rcan":
        config["res_scale"] = res_scale
    model = load_model(name, scale, **config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ZoomsrError(f"'{path}' does not fit {name}: {str(err).splitlines()[0]}") from None
    return model
