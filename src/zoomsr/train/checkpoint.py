"""Run folders: weights (safetensors, loadable by ``load_model``) and the resumable state.

A run folder holds ``config.yaml``, ``last.safetensors``, ``best.safetensors`` and
``state.pt`` (step, optimizer, scheduler, RNG, EMA, discriminator, best score). Everything is
written atomically, ``state.pt`` last, so a kill at any moment leaves a consistent pair.
"""

from __future__ import annotations

from pathlib import Path

import torch

from zoomsr.atomic import atomic_write
from zoomsr.errors import ZoomsrError


def atomic_torch_save(obj, path: Path) -> None:
    atomic_write(path, lambda p: torch.save(obj, p))


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_state(run_dir: Path) -> dict:
    path = run_dir / "state.pt"
    if not path.is_file():
        raise ZoomsrError(
            f"cannot resume: '{path}' not found (was the run started with this --out?)"
        )
    # Our own file; it holds optimizer state and RNG tensors, which weights_only handles.
    return torch.load(path, map_location="cpu", weights_only=True)
