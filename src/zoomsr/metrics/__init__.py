"""Image quality metrics with named conventions (see :mod:`zoomsr.metrics.conventions`)."""

from zoomsr.metrics.conventions import CONVENTIONS, Convention, get_convention
from zoomsr.metrics.psnr import psnr
from zoomsr.metrics.regions import REGIONS, region_boxes
from zoomsr.metrics.ssim import ssim
from zoomsr.metrics.suite import METRICS, MetricSuite

__all__ = [
    "CONVENTIONS",
    "METRICS",
    "REGIONS",
    "Convention",
    "MetricSuite",
    "get_convention",
    "psnr",
    "region_boxes",
    "ssim",
]
