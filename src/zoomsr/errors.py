"""User-facing errors.

Anything a user can cause (a missing file, a bad image, an unknown model, a wrong scale)
raises a :class:`ZoomsrError` whose message names the thing and says what to do. The CLI
prints it as one line, ``zoomsr: <message>``, and exits with status 2.
"""

from __future__ import annotations


class ZoomsrError(Exception):
    """An error caused by the user's input or set-up, with a message meant for them."""


class ImageReadError(ZoomsrError):
    """An input file that cannot be decoded as an image."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read '{path}': {reason}")


class ImageWriteError(ZoomsrError):
    """An output that cannot (or must not) be written."""


class DataError(ZoomsrError):
    """A dataset folder whose layout or contents cannot be used."""


class WeightsNotFoundError(ZoomsrError):
    """Network weights that are needed but not installed."""
