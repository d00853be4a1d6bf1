"""Device names as users type them: cpu, cuda, cuda:N, auto."""

from __future__ import annotations

import torch

from zoomsr.errors import ZoomsrError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ZoomsrError(f"unknown device '{name}'; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ZoomsrError(f"device '{name}' was asked for but no CUDA GPU is available; use cpu")
    return device
