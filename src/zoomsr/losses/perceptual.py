"""Perceptual (VGG feature) loss on an ImageNet backbone from :mod:`zoomsr.backbones`."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class Perceptual(nn.Module):
    """Distance between backbone features of output and target at the given ReLU taps.

    ``backbone``: ``vgg19_caffe`` (offline default), ``vgg19`` (torchvision's, as the papers;
    needs a local file) or ``vgg16``. Caffe features are two orders of magnitude larger than
    torchvision's: ``feature_scale`` divides them so published weights stay meaningful.
    """

    def __init__(
        self,
        layers=("relu5_4",),
        backbone: str = "vgg19_caffe",
        criterion: str = "mse",
        weights=None,
        feature_scale: float = 1.0,
    ):
        super().__init__()
        from zoomsr.backbones import FeatureExtractor

        self.layers = tuple(layers)
        self.extractor = FeatureExtractor(backbone, self.layers)
        self.weights = tuple(weights) if weights else (1.0,) * len(self.layers)
        self.distance = F.mse_loss if criterion == "mse" else F.l1_loss
        self.feature_scale = feature_scale

    def forward(self, sr, hr, lr=None):
        fs = self.extractor(sr)
        ft = self.extractor(hr.detach())
        s = self.feature_scale
        return sum(
            w * self.distance(fs[k] / s, ft[k].detach() / s)
            for w, k in zip(self.weights, self.layers, strict=True)
        )
