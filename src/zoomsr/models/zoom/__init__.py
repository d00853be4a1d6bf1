"""Reference-based SR from several zooms: SelfDZSR and its building blocks."""

from zoomsr.models.zoom.adastn import AdaSTN
from zoomsr.models.zoom.auxlr import AuxLRGenerator
from zoomsr.models.zoom.matching import StudentExtractor, correspondence_offsets
from zoomsr.models.zoom.restoration import Restoration, RGBMeanShift
from zoomsr.models.zoom.selfdzsr import SelfDZSR
from zoomsr.models.zoom.selfdzsr_pp import SelfDZSRpp
from zoomsr.models.zoom.selftzsr_pp import SelfTZSRpp

__all__ = [
    "AdaSTN",
    "AuxLRGenerator",
    "RGBMeanShift",
    "Restoration",
    "SelfDZSR",
    "SelfDZSRpp",
    "SelfTZSRpp",
    "StudentExtractor",
    "correspondence_offsets",
]
