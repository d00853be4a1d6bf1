"""Every official layout ``zoomsr convert`` reads from file paths: name -> loader.

Each loader takes the official checkpoint files in order (``*_path`` parameters) and returns
the zoomsr model in eval mode. EDSR-PyTorch, which also takes a scale, is listed by the CLI.
"""

from __future__ import annotations

from collections.abc import Callable

from zoomsr.convert.sdflow import load_sdflow
from zoomsr.convert.selfdzsr import CONVERTERS as SELFDZSR_CONVERTERS

CONVERTERS: dict[str, Callable] = {**SELFDZSR_CONVERTERS, "sdflow": load_sdflow}
