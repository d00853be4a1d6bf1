"""Normalizing-flow models: SDFlow (unpaired real-world SR and downscaling) and its blocks."""

from zoomsr.models.flow.encoder import LRContentEncoder
from zoomsr.models.flow.flows import ConditionalFlow, DegFlow, HRFlow, HRLatents, LRFlow
from zoomsr.models.flow.sdflow import SDFlow, SDFlowConfig

__all__ = [
    "ConditionalFlow",
    "DegFlow",
    "HRFlow",
    "HRLatents",
    "LRContentEncoder",
    "LRFlow",
    "SDFlow",
    "SDFlowConfig",
]
