"""Image regions for dual-zoom evaluation, as the SelfDZSR papers define them.

For an H x W image and centre fraction s (the zoom ratio the reference covers):
``cH = (H - H//s)//2``, ``cW = (W - W//s)//2``; the *centre* is the ``H//s x W//s`` rectangle at
``(cH, cW)``; the *corner* is the rest of the frame, cut into four strips: left (all rows),
right (all rows), top-middle and bottom-middle (the centre's columns). A corner PSNR comes from
the area-weighted MSE of the four strips; corner SSIM and LPIPS are the plain mean of the four.
"""

from __future__ import annotations

from typing import NamedTuple

from zoomsr.errors import ZoomsrError

REGIONS = ("full", "centre", "corner")


class Box(NamedTuple):
    top: int
    left: int
    height: int
    width: int

    def crop(self, x):
        return x[..., self.top : self.top + self.height, self.left : self.left + self.width]

    @property
    def area(self) -> int:
        return self.height * self.width


def centre_box(height: int, width: int, fraction: float) -> Box:
    ch, cw = int(height // fraction), int(width // fraction)
    return Box((height - ch) // 2, (width - cw) // 2, ch, cw)


def corner_boxes(height: int, width: int, fraction: float) -> list[Box]:
    c = centre_box(height, width, fraction)
    right = c.left + c.width
    bottom = c.top + c.height
    return [
        Box(0, 0, height, c.left),  # left strip, full height
        Box(0, right, height, width - right),  # right strip, full height
        Box(0, c.left, c.top, c.width),  # top-middle
        Box(bottom, c.left, height - bottom, c.width),  # bottom-middle
    ]


def region_boxes(region: str, height: int, width: int, fraction: float | None) -> list[Box]:
    """The parts a region is made of (one box, except the corner's four)."""
    if region == "full":
        return [Box(0, 0, height, width)]
    if region not in REGIONS:
        raise ZoomsrError(f"unknown region '{region}'; choose from {', '.join(REGIONS)}")
    if not fraction or fraction <= 1:
        raise ZoomsrError(f"region '{region}' needs a centre fraction > 1 (the zoom ratio)")
    if region == "centre":
        return [centre_box(height, width, fraction)]
    return [b for b in corner_boxes(height, width, fraction) if b.area > 0]
