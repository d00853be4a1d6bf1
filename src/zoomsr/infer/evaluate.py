"""Evaluate a model on benchmark folders: per-image rows and per-(dataset, scale) means."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from zoomsr.data.sisr import find_eval_pairs, load_eval_sample
from zoomsr.infer.engine import run_sisr
from zoomsr.metrics.suite import MetricSuite


@dataclass
class EvalReport:
    convention: str
    columns: list[str]
    per_image: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)


def evaluate_sisr(
    model_for_scale: Callable[[int], nn.Module],
    datasets: Iterable[str | Path],
    scales: Iterable[int],
    suite: MetricSuite,
    model_label: str,
    progress: Callable[[Iterable, str], Iterable] = lambda it, _desc: it,
    max_images: int = 0,
) -> EvalReport:
    """Score ``model_for_scale(s)`` on every dataset at every scale."""
    report = EvalReport(convention=suite.convention.describe(), columns=suite.columns)
    for scale in scales:
        model = model_for_scale(scale)
        for root in datasets:
            root = Path(root)
            pairs = find_eval_pairs(root, scale)
            pairs = pairs[:max_images] if max_images else pairs
            rows = []
            for pair in progress(pairs, f"{root.name} x{scale}"):
                sample = load_eval_sample(pair, scale)
                sr = run_sisr(model, sample.lr, sample.bit_depth)
                metrics = suite(sr, sample.hr, scale)
                rows.append(
                    {
                        "model": model_label,
                        "data": root.name,
                        "scale": scale,
                        "image": pair.name,
                        **metrics,
                    }
                )
            report.per_image += rows
            mean = {c: sum(r[c] for r in rows) / len(rows) for c in suite.columns}
            report.summary.append(
                {
                    "model": model_label,
                    "data": root.name,
                    "scale": scale,
                    "images": len(rows),
                    **mean,
                }
            )
    return report
