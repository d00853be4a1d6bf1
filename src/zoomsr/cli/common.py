"""Helpers shared by the sub-commands: progress bars, devices, list arguments."""

from __future__ import annotations

import sys
from collections.abc import Iterable

import torch

from zoomsr.errors import ZoomsrError


def progress(quiet: bool):
    """A ``(iterable, desc) -> iterable`` that shows a tqdm bar on a terminal only."""
    if quiet or not sys.stderr.isatty():
        return lambda it, _desc: it
    from tqdm import tqdm

    return lambda it, desc: tqdm(it, desc=desc, unit="img", leave=False, dynamic_ncols=True)


def add_common_flags(parser) -> None:
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when present; default)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ZoomsrError(f"unknown device '{name}'; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ZoomsrError(
            "--device cuda was asked for but no CUDA GPU is available; use --device cpu"
        )
    return device


def int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ZoomsrError(f"{what} must be integers separated by commas, got '{text}'") from None
    if not values or any(v < 1 for v in values):
        raise ZoomsrError(f"{what} must be positive integers, got '{text}'")
    return values


def echo(*lines: Iterable[str] | str) -> None:
    for line in lines:
        print(line)
