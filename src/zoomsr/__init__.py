"""zoomsr: real-world image super-resolution."""

__version__ = "0.1.0"

from zoomsr.errors import ZoomsrError

__all__ = ["ZoomsrError", "__version__"]
