"""Models, resolved by name through :mod:`zoomsr.models.registry`."""

from zoomsr.models.registry import ModelSpec, get_spec, list_models, load_model

__all__ = ["ModelSpec", "get_spec", "list_models", "load_model"]
