"""Shared fixtures. Tests read ../shared through the ``shared`` fixture only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ZOOMSR_SHARED", REPO.parent / "shared")).resolve()


class SharedData:
    """Paths into ../shared; a missing file fails the test with its name."""

    root = SHARED

    def __call__(self, *parts: str) -> Path:
        path = SHARED.joinpath(*parts)
        if not path.exists():
            pytest.fail(f"shared file missing: {path} (CI always has ../shared; set ZOOMSR_SHARED)")
        return path


@pytest.fixture(scope="session")
def shared() -> SharedData:
    return SharedData()
