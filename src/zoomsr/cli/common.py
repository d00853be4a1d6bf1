"""Helpers shared by the sub-commands: progress bars, devices, list arguments, overrides."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from zoomsr.devices import resolve_device  # noqa: F401  (re-exported for the sub-commands)
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


def int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ZoomsrError(f"{what} must be integers separated by commas, got '{text}'") from None
    if not values or any(v < 1 for v in values):
        raise ZoomsrError(f"{what} must be positive integers, got '{text}'")
    return values


def flag_overrides(overrides: Iterable[str], flags: dict[str, object]) -> list[str]:
    """``--set`` items, then ``key=value`` for each flag given (not None), so flags win."""
    return [*overrides, *(f"{key}={value}" for key, value in flags.items() if value is not None)]


def echo(*lines: Iterable[str] | str) -> None:
    for line in lines:
        print(line)
