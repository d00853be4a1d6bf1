"""Shipped weights: ``zoomsr/weights/manifest.json`` names each file, its model and provenance.

Every entry becomes a registered model (e.g. ``default-x2``) whose weights are checked
against the manifest's SHA-256 when loaded.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from zoomsr.backbones.installer import sha256_file
from zoomsr.errors import ZoomsrError
from zoomsr.models.registry import ModelSpec, register

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"


def read_manifest() -> dict:
    if not MANIFEST.is_file():
        return {"models": {}}
    return json.loads(MANIFEST.read_text())


@cache
def verified_weights(name: str) -> Path:
    entry = read_manifest()["models"][name]
    path = WEIGHTS_DIR / entry["file"]
    if not path.is_file():
        raise ZoomsrError(
            f"shipped weights '{path.name}' of model '{name}' are missing; reinstall zoomsr"
        )
    if sha256_file(path) != entry["sha256"]:
        raise ZoomsrError(
            f"shipped weights '{path.name}' do not match their SHA-256; reinstall zoomsr"
        )
    return path


def _builder(name: str):
    def build(scale: int, **_config):
        from zoomsr.models.checkpoints import load_checkpoint_model

        return load_checkpoint_model(verified_weights(name), scale)

    return build


def register_shipped() -> None:
    from zoomsr.models.registry import get_spec

    for name, entry in read_manifest()["models"].items():
        register(
            ModelSpec(
                name=name,
                task=get_spec(entry["model"]).task,
                build=_builder(name),
                scales=(int(entry["scale"]),),
                default_scale=int(entry["scale"]),
                summary=entry.get("summary", f"shipped weights ({entry['model']})"),
            )
        )


register_shipped()
