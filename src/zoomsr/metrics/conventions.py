"""Named ways of computing a number, so every table can say how its numbers were made."""

from __future__ import annotations

from dataclasses import dataclass, replace

from zoomsr.errors import ZoomsrError


@dataclass(frozen=True)
class Convention:
    """How PSNR/SSIM/LPIPS are computed.

    ``shave=None`` means "the scale factor" (pixels removed on every border).
    ``quantize`` rounds the output to 8 bits first, as scoring a saved PNG does.
    """

    name: str
    y_only: bool
    shave: int | None
    ssim_sample_covariance: bool
    quantize: bool = True
    lpips_net: str = "alex"
    summary: str = ""

    def shave_for(self, scale: int) -> int:
        return scale if self.shave is None else self.shave

    def describe(self, scale: int | None = None) -> str:
        space = "Y (BT.601, 16-235, float)" if self.y_only else "RGB"
        shave = (
            f"shave {self.shave_for(scale)}"
            if scale is not None
            else ("shave = scale" if self.shave is None else f"shave {self.shave}")
        )
        ssim = "skimage SSIM (sample cov.)" if self.ssim_sample_covariance else "Wang SSIM"
        quant = "8-bit output" if self.quantize else "float output"
        return f"{self.name}: {space}, {shave}, {ssim} 11x11 σ1.5, LPIPS-{self.lpips_net} v0.1, {quant}"

    def with_overrides(self, *, y_only: bool | None = None, shave: int | None = None) -> Convention:
        """A custom variant; it is renamed so a table never claims a convention it did not use."""
        changes = {}
        if y_only is not None and y_only != self.y_only:
            changes["y_only"] = y_only
        if shave is not None and shave != self.shave:
            changes["shave"] = shave
        if not changes:
            return self
        tag = ",".join(
            f"{k}={'y' if v is True else 'rgb' if v is False else v}" for k, v in changes.items()
        )
        return replace(self, name=f"{self.name}[{tag}]", **changes)


CONVENTIONS = {
    "sisr": Convention(
        name="sisr",
        y_only=True,
        shave=None,
        ssim_sample_covariance=False,
        summary="SISR papers: Y channel, shave = scale, Wang SSIM (valid window)",
    ),
    "selfdzsr": Convention(
        name="selfdzsr",
        y_only=False,
        shave=0,
        ssim_sample_covariance=True,
        summary="SelfDZSR papers: RGB, no shave, skimage SSIM over channels, LPIPS-alex",
    ),
}


def get_convention(name: str) -> Convention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ZoomsrError(
            f"unknown metric convention '{name}'; choose from {', '.join(CONVENTIONS)}"
        ) from None
