"""Score an output against its ground truth with a convention, over image regions."""

from __future__ import annotations

import torch

from zoomsr.errors import ZoomsrError
from zoomsr.metrics.conventions import Convention
from zoomsr.metrics.psnr import psnr_from_mse, shave_border, squared_error, to_metric_space
from zoomsr.metrics.regions import region_boxes
from zoomsr.metrics.ssim import ssim_map
from zoomsr.ops.color import quantize

METRICS = ("psnr", "ssim", "lpips")


def parse_list(text: str | list[str] | tuple[str, ...], allowed: tuple[str, ...], what: str):
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    items = [t for t in items if t]
    for item in items:
        if item not in allowed:
            raise ZoomsrError(f"unknown {what} '{item}'; choose from {', '.join(allowed)}")
    return items


class MetricSuite:
    """Computes the chosen metrics on the chosen regions of (output, ground truth) pairs."""

    def __init__(
        self,
        convention: Convention,
        metrics=("psnr", "ssim"),
        regions=("full",),
        centre_fraction: float | None = None,  # None: the scale (the Ref covers the centre 1/s)
        device: str | torch.device = "cpu",
    ):
        self.convention = convention
        self.metrics = tuple(metrics)
        self.regions = tuple(regions)
        self.centre_fraction = centre_fraction
        self.device = torch.device(device)
        self._lpips = None

    @property
    def columns(self) -> list[str]:
        return [m if r == "full" else f"{m}_{r}" for r in self.regions for m in self.metrics]

    def _lpips_value(self, a: torch.Tensor, b: torch.Tensor) -> float:
        if self._lpips is None:
            from zoomsr.metrics.lpips import LPIPS

            self._lpips = LPIPS(self.convention.lpips_net).to(self.device)
        with torch.no_grad():
            return float(self._lpips(a.float().to(self.device), b.float().to(self.device)))

    def __call__(self, output: torch.Tensor, target: torch.Tensor, scale: int) -> dict[str, float]:
        """``output`` and ``target``: ``(1, C, H, W)`` in [0, 1], same size."""
        if output.shape != target.shape:
            raise ZoomsrError(
                f"output {tuple(output.shape[-2:])} and ground truth {tuple(target.shape[-2:])} differ in size"
            )
        conv = self.convention
        if conv.quantize:
            output = quantize(output)
        shave = conv.shave_for(scale)
        out_rgb, tgt_rgb = shave_border(output, shave), shave_border(target, shave)
        out_m = shave_border(to_metric_space(output, conv.y_only), shave)
        tgt_m = shave_border(to_metric_space(target, conv.y_only), shave)
        h, w = out_m.shape[-2:]
        row: dict[str, float] = {}
        for region in self.regions:
            boxes = region_boxes(region, h, w, self.centre_fraction or scale)
            suffix = "" if region == "full" else f"_{region}"
            if "psnr" in self.metrics:
                # Area-weighted: the MSE over all parts together.
                sse = sum(float(squared_error(b.crop(out_m), b.crop(tgt_m))[0]) for b in boxes)
                count = sum(b.area * out_m.shape[1] for b in boxes)
                row[f"psnr{suffix}"] = float(
                    psnr_from_mse(torch.tensor(sse / count, dtype=torch.float64))
                )
            if "ssim" in self.metrics:
                vals = [
                    float(
                        ssim_map(
                            b.crop(out_m),
                            b.crop(tgt_m),
                            sample_covariance=conv.ssim_sample_covariance,
                        ).mean()
                    )
                    for b in boxes
                ]
                row[f"ssim{suffix}"] = sum(vals) / len(vals)
            if "lpips" in self.metrics:
                vals = [self._lpips_value(b.crop(out_rgb), b.crop(tgt_rgb)) for b in boxes]
                row[f"lpips{suffix}"] = sum(vals) / len(vals)
        return row
