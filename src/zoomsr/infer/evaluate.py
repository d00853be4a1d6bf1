"""Evaluate a model on benchmark folders: per-image rows and per-(dataset, scale) means.

SISR models on image folders (and zoom folders, LR -> GT), zoom models on zoom sample folders.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from zoomsr.data.sisr import EvalSample, find_eval_pairs, load_eval_sample
from zoomsr.data.zoom import find_zoom_samples, load_zoom_sample, read_zoom_sample
from zoomsr.errors import DataError, ZoomsrError
from zoomsr.infer.engine import run_sisr
from zoomsr.infer.zoom import PAD_MULTIPLE, ZoomOptions, ref_zooms, run_zoom
from zoomsr.metrics.suite import MetricSuite
from zoomsr.models.checkpoints import load_checkpoint_model, read_weights
from zoomsr.models.registry import get_spec, is_model_file, list_models, load_model


@dataclass
class EvalReport:
    convention: str
    columns: list[str]
    per_image: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)


def _add_dataset(report: EvalReport, rows: list[dict], label: str, data: str, scale: int) -> None:
    """One dataset's per-image rows, and their mean as its summary row, into ``report``."""
    report.per_image += rows
    mean = {c: sum(r[c] for r in rows) / len(rows) for c in report.columns}
    report.summary.append(
        {"model": label, "data": data, "scale": scale, "images": len(rows), **mean}
    )


def evaluate_sisr(
    model_for_scale: Callable[[int], nn.Module],
    datasets: Iterable[str | Path],
    scales: Iterable[int],
    suite: MetricSuite,
    model_label: str,
    progress: Callable[[Iterable, str], Iterable] = lambda it, _desc: it,
    max_images: int = 0,
    on_image: Callable[[EvalSample, torch.Tensor], None] | None = None,
) -> EvalReport:
    """Score ``model_for_scale(s)`` on every dataset at every scale; ``on_image(sample, sr)``
    sees each output, for measures beyond the suite without a second pass."""
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
                if on_image is not None:
                    on_image(sample, sr)
                rows.append(
                    {
                        "model": model_label,
                        "data": root.name,
                        "scale": scale,
                        "image": pair.name,
                        **metrics,
                    }
                )
            _add_dataset(report, rows, model_label, root.name, scale)
    return report


# --------------------------------------------------------------------------- model choice


@dataclass(frozen=True)
class ModelChoice:
    """What ``--model NAME``, ``--model FILE`` or ``--model NAME FILE`` names."""

    label: str  # as written, for the tables
    task: str  # "sisr" | "zoom" | ...
    name: str | None = None  # registry name; None: the weight file says
    scale: int | None = None  # from a ``-x<s>`` suffix or the weight file
    weights: str | None = None  # a zoomsr model file

    def load(self, scale: int | None = None, device: str | torch.device = "cpu") -> nn.Module:
        if self.weights is not None:
            return load_checkpoint_model(self.weights, scale or self.scale, device)
        return load_model(self.name, scale or self.scale, device)


def split_scale(name: str) -> tuple[str, int | None]:
    """``selfdzsr-x4`` -> (``selfdzsr``, 4) unless the whole name is registered (``default-x2``)."""
    known = {s.name for s in list_models()}
    found = re.fullmatch(r"(.+)-x(\d+)", name)
    if name in known or not found or found[1] not in known:
        return name, None
    return found[1], int(found[2])


def resolve_model(words: Sequence[str]) -> ModelChoice:
    """``[NAME]``, ``[FILE]`` or ``[NAME, FILE]`` (architecture, then its zoomsr weight file)."""
    if not 1 <= len(words) <= 2:
        raise ZoomsrError(
            "--model takes NAME, FILE or NAME FILE (e.g. --model selfdzsr-x4 w.safetensors)"
        )
    label = " ".join(words)
    if len(words) == 1 and is_model_file(words[0]):
        name, weights = None, words[0]
    else:
        name, weights = words[0], (words[1] if len(words) == 2 else None)
    scale = None
    if name is not None:
        name, scale = split_scale(name)
        task = get_spec(name).task
    if weights is not None:
        _, meta = read_weights(weights)
        file_model, file_scale = meta.get("model", "?"), int(meta.get("scale", 0))
        if name is not None and file_model != name:
            raise ZoomsrError(f"'{weights}' holds a {file_model} model, not {name}")
        if scale is not None and scale != file_scale:
            raise ZoomsrError(f"'{weights}' is a x{file_scale} model, not x{scale}")
        scale, task = file_scale, get_spec(file_model).task
    return ModelChoice(label, task, name, scale, weights)


# --------------------------------------------------------------------------- zoom models


def _takes_refs(model: nn.Module) -> bool:
    from zoomsr.infer.pipelines import is_zoom_model

    return is_zoom_model(model)


class SingleImageAsZoom(nn.Module):
    """A single-image model with the zoom signature, ignoring the Refs: baselines are scored on
    exactly the captures, padding, regions and GT frame that the zoom models are."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = model
        self.scale = model.scale
        self.model_name = getattr(model, "model_name", type(model).__name__)

    def forward(self, lr: torch.Tensor, refs, ref_boxes) -> torch.Tensor:
        return self.inner(lr)


def evaluate_zoom(
    model: nn.Module,
    datasets: Iterable[str | Path],
    suite: MetricSuite,
    model_label: str,
    options: ZoomOptions | None = None,
    progress: Callable[[Iterable, str], Iterable] = lambda it, _desc: it,
    max_images: int = 0,
    align_gt: bool = True,
) -> EvalReport:
    """Score a zoom model on folders of zoom samples (``zoomsr simulate`` / ``prepare``).

    Each sample is loaded as the test code does (selfdzsr_reference.md §2.7): for ``whole`` and
    ``tiled`` the LR is edge-padded as SelfDZSR++'s ``img_pad`` and the Refs are cut from the
    padded views; for ``eccv`` nothing is padded (the chop pads). The output and the GT are cut
    back to the original area and scored on the suite's regions with the zoom ratio as the
    centre fraction. A model taking fewer Refs than a sample has gets the narrowest ones.
    ``align_gt`` puts simulated samples in the LR's geometry: GT, and the Refs cut from the
    tele and views, warped by their recorded misalignment, as the official test data are the
    tele aligned to the wide and ``zoomsr zoom`` aligns a real tele (``in_lr_frame``).
    """
    options = options or ZoomOptions()
    if not _takes_refs(model):  # a single-image model scored on the same captures, Refs unused
        model = SingleImageAsZoom(model)
    zooms = ref_zooms(model)
    frame = "tele and views aligned to the LR" if align_gt else "GT and Refs as captured"
    report = EvalReport(f"{suite.convention.describe()}; {frame}", columns=suite.columns)
    for root in datasets:
        root = Path(root)
        if not root.is_dir():
            raise ZoomsrError(f"dataset folder '{root}' does not exist")
        try:
            folders = find_zoom_samples(root)
        except DataError:
            raise ZoomsrError(
                f"{model_label} is a zoom model: '{root}' must hold zoom sample folders "
                "(LR.png, GT.png, meta.json, as 'zoomsr simulate' or 'zoomsr prepare' write them)"
            ) from None
        folders = folders[:max_images] if max_images else folders
        rows = []
        for folder in progress(folders, f"{root.name} x{model.scale}"):
            sample = read_zoom_sample(folder)
            if sample.ratio != model.scale:
                raise ZoomsrError(
                    f"'{folder.name}' is a x{sample.ratio} zoom sample; {model_label} is "
                    f"x{model.scale}"
                )
            if tuple(sample.refs[-len(zooms) :]) != zooms:
                have = ", ".join(f"x{z}" for z in sample.refs)
                need = ", ".join(f"x{z}" for z in zooms)
                raise ZoomsrError(f"{model_label} needs Refs {need}; '{folder.name}' has {have}")
            if options.method == "eccv":
                test = load_zoom_sample(sample, pad=1, align_gt=align_gt)
            else:
                test = load_zoom_sample(
                    sample, pad=PAD_MULTIPLE, official_pad=True, align_gt=align_gt
                )
            n = len(zooms)
            started = time.perf_counter()
            sr = run_zoom(model, test.lr, test.refs[-n:], test.ref_boxes[-n:], options)
            seconds = time.perf_counter() - started
            sr, gt = test.unpad(sr), test.unpad(test.gt)
            metrics = suite(sr, gt, test.ratio)
            rows.append(
                {
                    "model": model_label,
                    "data": root.name,
                    "scale": test.ratio,
                    "image": sample.name,
                    **metrics,
                    "seconds": seconds,  # the model's run only, not the scoring
                    "megapixels": sr.shape[-2] * sr.shape[-1] / 1e6,
                }
            )
        _add_dataset(report, rows, model_label, root.name, model.scale)
    return report
