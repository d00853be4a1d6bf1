"""Backbone architectures (torchvision's own), input normalisation and named feature taps.

Layer names follow the VGG papers: ``conv{block}_{n}``, ``relu{block}_{n}``, ``pool{block}``
(VGG16 relu3_2 = index 13, VGG19 relu3_2 = 13, relu4_2 = 22, relu5_2 = 31). AlexNet layers
are numbered flat: ``conv1..conv5``, ``relu1..relu5`` (indices 1, 4, 7, 9, 11), ``pool1..3``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import torch
from torch import nn

from zoomsr.backbones.sources import WeightSource, load_weights
from zoomsr.backbones.specs import (
    CAFFE_MEAN_BGR,
    IMAGENET_MEAN,
    IMAGENET_STD,
    backbone_spec,
)
from zoomsr.errors import ZoomsrError

DEFAULT_LAYERS = ("relu3_2", "relu4_2", "relu5_2")


def _architecture(name: str, device: str | torch.device) -> nn.Sequential:
    import torchvision.models  # imported here: it takes ~2 s, and listing/installing needs none

    spec = backbone_spec(name)
    # Built on the meta device: the classifier is never used, and initialising it (and the
    # features, about to be overwritten) with random numbers would cost about a second.
    with torch.device("meta"):
        model = getattr(torchvision.models, spec.arch)()
    features = model.features
    return features if str(device) == "meta" else features.to_empty(device=device)


def build_features(name: str) -> nn.Sequential:
    """``torchvision.models.<arch>().features`` for a backbone, with UNINITIALISED weights."""
    return _architecture(name, "cpu")


@functools.cache
def _layer_table(name: str) -> tuple[tuple[str, int], ...]:
    flat = backbone_spec(name).arch == "alexnet"
    table, block, conv, tag = [], 1, 0, ""
    for index, module in enumerate(_architecture(name, "meta")):
        if isinstance(module, nn.Conv2d):
            conv += 1
            tag = str(conv) if flat else f"{block}_{conv}"
            table.append((f"conv{tag}", index))
        elif isinstance(module, nn.ReLU):
            table.append((f"relu{tag}", index))
        elif isinstance(module, nn.MaxPool2d):
            table.append((f"pool{block}", index))
            block += 1
            conv = conv if flat else 0
    return tuple(table)


def layer_names(name: str) -> dict[str, int]:
    """Layer name -> index into the backbone's ``features``."""
    return dict(_layer_table(name))


def conv_indices(name: str) -> list[int]:
    """Indices of the convolutions in the backbone's ``features``, in order."""
    return [i for n, i in _layer_table(name) if n.startswith("conv")]


def resolve_layer(name: str, layer: str | int) -> int:
    """The ``features`` index of a layer given by name (``"relu3_2"``) or index."""
    table = layer_names(name)
    if isinstance(layer, int) and 0 <= layer <= max(table.values()):
        return layer
    if layer in table:
        return table[layer]
    relus = ", ".join(n for n in table if n.startswith("relu"))
    raise ZoomsrError(f"backbone '{name}' has no layer {layer!r}; ReLU taps: {relus}")


def as_rgb(x: torch.Tensor) -> torch.Tensor:
    """An NCHW batch with 3 channels; gray (1 channel) is replicated."""
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected an N×3×H×W or N×1×H×W tensor, got shape {tuple(x.shape)}")
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class ImageNetNormalize(nn.Module):
    """RGB [0,1] -> torchvision's ImageNet input, (x - mean) / std."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class CaffeNormalize(nn.Module):
    """RGB [0,1] -> the Caffe input of the Oxford VGG weights: BGR, 0-255, minus channel means.

    Applied to the input, not folded into the first bias: with zero padding the fold would be
    wrong at the image borders.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flip(1) * 255.0 - self.mean


def normalizer(name: str) -> nn.Module:
    """The input normalisation a backbone's weights were trained with."""
    kind = backbone_spec(name).normalization
    return CaffeNormalize() if kind == "caffe" else ImageNetNormalize()


def _freeze(module: nn.Module) -> nn.Module:
    module.eval()
    module.requires_grad_(False)
    return module


def load_features(
    name: str,
    weights: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> nn.Sequential:
    """The raw ``features`` network of a backbone (no input normalisation), frozen.

    For LPIPS and anyone scaling the input themselves; ``.weight_source`` tells where the
    weights came from.
    """
    state, source = load_weights(name, weights, cache_dir)
    features = build_features(name)
    try:
        features.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = str(err).splitlines()[1].strip() if "\n" in str(err) else str(err)
        raise ZoomsrError(
            f"weights '{source.path}' do not fit backbone '{name}': {detail}"
        ) from None
    features.weight_source = source
    return _freeze(features)


class _Frozen(nn.Module):
    """A module that stays in eval mode: ``.train()`` of a parent model does not change it."""

    def train(self, mode: bool = True):
        return super().train(False)


class Backbone(_Frozen):
    """A frozen ImageNet feature network on RGB [0,1] input, its normalisation included.

    ``features`` is the raw torchvision ``features`` network; ``normalize`` maps RGB [0,1]
    to what the weights expect (ImageNet mean/std, or Caffe BGR/0-255/means).
    """

    def __init__(
        self,
        name: str,
        weights: str | os.PathLike | None = None,
        *,
        cache_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        self.name = name
        self.normalize = normalizer(name)
        self.features = load_features(name, weights, cache_dir=cache_dir)
        _freeze(self)

    @property
    def weight_source(self) -> WeightSource:
        return self.features.weight_source

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.normalize(as_rgb(x)))


def load_backbone(
    name: str,
    weights: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> Backbone:
    """A frozen backbone (eval mode, no gradients for its weights) on RGB [0,1] input.

    ``name``: "alexnet", "vgg16", "vgg19_caffe" or "vgg19". ``weights``: an explicit file;
    otherwise torchvision's cache, then zoomsr's (see :mod:`zoomsr.backbones.sources`).
    """
    return Backbone(name, weights, cache_dir=cache_dir)


class FeatureExtractor(_Frozen):
    """Activations of a frozen backbone at named layers, for perceptual losses.

    ``forward(x)`` takes RGB [0,1] (or gray) and returns ``{layer: activation}`` in the order
    of ``layers``. The network is cut after the deepest tap. With ``normalize=False`` the input
    goes to the raw features unchanged (LPIPS applies its own scaling layer).
    """

    def __init__(
        self,
        backbone_name: str,
        layers: Sequence[str | int] = DEFAULT_LAYERS,
        *,
        weights: str | os.PathLike | None = None,
        normalize: bool = True,
        cache_dir: str | os.PathLike | None = None,
    ):
        super().__init__()
        if isinstance(layers, str | int):
            layers = (layers,)
        if not layers:
            raise ValueError("FeatureExtractor needs at least one layer")
        self.backbone_name = backbone_name
        self.layers = tuple(layers)
        taps: dict[int, list[str | int]] = {}
        for layer in self.layers:
            taps.setdefault(resolve_layer(backbone_name, layer), []).append(layer)
        self._taps = taps
        features = load_features(backbone_name, weights, cache_dir=cache_dir)
        self.weight_source = features.weight_source
        self.normalize = normalizer(backbone_name) if normalize else nn.Identity()
        self.body = features[: max(taps) + 1]
        _freeze(self)

    def forward(self, x: torch.Tensor) -> dict[str | int, torch.Tensor]:
        x = self.normalize(as_rgb(x))
        out: dict[str | int, torch.Tensor] = {}
        last = len(self.body) - 1
        for index, module in enumerate(self.body):
            x = module(x)
            if index in self._taps:
                # torchvision's ReLUs work in place: copy a tap the next layer would overwrite
                # (a conv output); ReLU outputs are never modified afterwards and stay as is.
                following = self.body[index + 1] if index < last else None
                value = x.clone() if getattr(following, "inplace", False) else x
                for layer in self._taps[index]:
                    out[layer] = value
        return {layer: out[layer] for layer in self.layers}
