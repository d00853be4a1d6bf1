"""High-level jobs on image files: upscale and zoom, one file or a resumable batch."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from zoomsr.data.zoom import META_FILE, write_zoom_sample
from zoomsr.errors import ImageWriteError, WeightsNotFoundError, ZoomsrError
from zoomsr.infer.batch import BatchReport, Job, model_identity, run_batch
from zoomsr.infer.engine import InferOptions, run_sisr
from zoomsr.io import IMAGE_EXTENSIONS, read_image, write_image
from zoomsr.ops.resize import imresize


def output_path_for(src: Path, out: Path, many: bool, suffix: str | None) -> Path:
    """Where the result of ``src`` goes: ``out`` itself, or ``out/<name>`` for several inputs."""
    if many or out.is_dir():
        return out / (src.stem + (suffix or src.suffix))
    return out


def upscale_file(
    model: nn.Module,
    src: Path,
    dst: Path,
    *,
    opts: InferOptions | None = None,
    overwrite: bool = False,
    inputs=(),
    progress: Callable = lambda it, _desc: it,
) -> Path:
    """Read, super-resolve (alpha separately, by bicubic), write atomically in the same form."""
    image = read_image(src)
    sr = run_sisr(model, image.color.unsqueeze(0), image.bit_depth, opts, progress)[0]
    alpha = None
    if image.alpha is not None:
        # Alpha is a mask, not texture: interpolate it rather than hallucinate detail.
        alpha = imresize(image.alpha, size=tuple(sr.shape[-2:])).clamp(0, 1)
    return write_image(dst, image.replace(sr, alpha), overwrite=overwrite, inputs=inputs)


def upscale_batch(
    model: nn.Module,
    sources: Sequence[Path],
    out: Path,
    *,
    suffix: str | None = None,
    opts: InferOptions | None = None,
    overwrite: bool = False,
    shard: tuple[int, int] | None = None,
    identity: Mapping | None = None,
    progress: Callable = lambda it, _desc: it,
    on_result: Callable | None = None,
) -> BatchReport:
    """Upscale ``sources`` into the folder ``out``, resumably (see :mod:`zoomsr.infer.batch`).

    ``identity``: further options that change the pixels, recorded with the model's identity.
    """
    if suffix is not None and suffix.lower() not in IMAGE_EXTENSIONS:
        raise ZoomsrError(
            f"unknown image extension '{suffix}' (use one of {', '.join(IMAGE_EXTENSIONS)})"
        )
    opts = opts or InferOptions()
    jobs = [Job((Path(src),), output_path_for(Path(src), out, True, suffix)) for src in sources]
    return run_batch(
        jobs,
        lambda job, tmp: upscale_file(model, job.inputs[0], tmp, opts=opts, progress=progress),
        model_identity(model, task="upscale", **asdict(opts), **(identity or {})),
        out,
        shard=shard,
        overwrite=overwrite,
        progress=progress,
        desc="upscale",
        on_result=on_result,
    )


# ------------------------------------------------------------------------------------------ zoom

# Shipped zoom weights: registered by models/zoo.py once their files are in weights/manifest.json.
SHIPPED_ZOOM_MODELS = ("selfdzsr-pp-x4", "selfdzsr-pp-x2", "selftzsr-pp-x4")


def default_zoom_model(n_refs: int, scale: int | None = None) -> str:
    """The shipped model for a capture with ``n_refs`` references at ``scale`` (default x4):
    one Ref -> SelfDZSR++, two -> SelfTZSR++, at the scales shipped (SHIPPED_ZOOM_MODELS)."""
    family = "selftzsr-pp" if n_refs >= 2 else "selfdzsr-pp"
    name = f"{family}-x{scale or 4}"
    if name not in SHIPPED_ZOOM_MODELS:
        scales = sorted(n.rsplit("-x", 1)[1] for n in SHIPPED_ZOOM_MODELS if n.startswith(family))
        what = "triple-camera model is" if n_refs >= 2 else "zoom models are"
        only = " only" if len(scales) == 1 else ""
        raise ZoomsrError(
            f"the shipped {what} x{' and x'.join(scales)}{only}, not x{scale}; pass --model"
        )
    return name


DEFAULT_ZOOM_MODEL = default_zoom_model(1)


@dataclass
class ZoomReport:
    """What :func:`zoom_files` wrote and how long each stage took."""

    path: Path
    size: tuple[int, int]  # (width, height) of the result
    bytes: int
    seconds: dict[str, float]  # "prepare", "zoom", "write"
    meta: dict


def is_zoom_model(model: nn.Module) -> bool:
    """Whether ``model`` takes ``(lr, refs, ref_boxes)``; shipped weights name their architecture."""
    from zoomsr.models.registry import get_spec

    name = getattr(model, "model_name", None)
    try:
        if name:
            return get_spec(name).task == "zoom"
    except ZoomsrError:  # an architecture not registered here: trust the model's own label
        pass
    return getattr(model, "task", None) == "zoom"


def load_zoom_model(
    name: str = DEFAULT_ZOOM_MODEL, scale: int | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """A zoom model by registered name or model file; a clear error for anything else."""
    from zoomsr.models.registry import is_model_file, list_models, load_model

    name = str(name)
    if (
        name in SHIPPED_ZOOM_MODELS
        and not is_model_file(name)
        and name not in {s.name for s in list_models()}
    ):
        raise WeightsNotFoundError(
            f"the shipped weights of '{name}' are not installed; pass a zoom model file "
            "(.safetensors, e.g. from 'zoomsr train' or 'zoomsr convert') with --model"
        )
    model = load_model(name, scale, device)
    if not is_zoom_model(model):
        raise ZoomsrError(
            f"'{name}' is a single-image model: use 'zoomsr upscale', or give a zoom model "
            f"({', '.join(SHIPPED_ZOOM_MODELS)} or a zoom model file) with --model"
        )
    return model


def _zoom_name(wide: Path, scale: int) -> str:
    return f"{wide.stem}_zoom_x{scale}.png"


def _zoom_output(dst: Path, wide: Path, scale: int) -> Path:
    return dst / _zoom_name(wide, scale) if dst.is_dir() else dst


def _check_zoom_paths(
    dst: Path, inputs: list[Path], save_inputs: Path | None, overwrite: bool
) -> None:
    """Refuse what would fail or destroy something, before any long work."""
    if dst.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ZoomsrError(
            f"cannot write '{dst}': unknown image extension '{dst.suffix}' (use .png, .tif or .jpg)"
        )
    if not overwrite and any(dst.resolve() == p.resolve() for p in inputs):
        raise ImageWriteError(f"refusing to overwrite input '{dst}' (pass --overwrite)")
    if dst.exists() and not overwrite:
        raise ImageWriteError(f"'{dst}' exists; pass --overwrite to replace it")
    if save_inputs is not None and (save_inputs / META_FILE).exists() and not overwrite:
        raise ImageWriteError(f"'{save_inputs}' already holds saved inputs; pass --overwrite")


def _save_zoom_inputs(folder: Path, capture, model_name: str) -> None:
    """LR.png, Ref.png (or Ref{z}x.png for several) and meta.json: the prepared model inputs."""
    names = ["Ref"] if len(capture.refs) == 1 else [f"Ref{z}x" for z in capture.zooms]
    meta = {
        **capture.meta,
        "model": model_name,
        "ref_boxes": {n: list(b) for n, b in zip(names, capture.ref_boxes, strict=True)},
    }
    write_zoom_sample(
        folder, {"LR": capture.lr, **dict(zip(names, capture.refs, strict=True))}, meta
    )


def zoom_files(
    model: nn.Module,
    wide: str | Path,
    refs: Sequence[str | Path],
    dst: str | Path,
    *,
    ratio="auto",
    options=None,
    overwrite: bool = False,
    save_inputs: str | Path | None = None,
    progress: Callable = lambda it, _desc: it,
) -> ZoomReport:
    """Super-resolve a whole wide capture with its reference captures; write ``dst`` atomically.

    ``refs``: the tele (and, for a triple model, the middle camera), any order. ``dst`` is an
    image file (a folder: ``<wide>_zoom_x<s>.png`` in it); it gets the wide file's form: 16-bit
    PNG/TIFF when the wide is 16-bit, gray when it is gray. ``options``: a ``ZoomOptions``.
    """
    from zoomsr.data.capture import prepare_zoom_inputs
    from zoomsr.infer.zoom import ZoomOptions, ref_zooms, run_zoom

    wide, ref_paths = Path(wide), [Path(p) for p in refs]
    dst = _zoom_output(Path(dst), wide, model.scale)
    save_dir = Path(save_inputs) if save_inputs is not None else None
    name = getattr(model, "model_name", type(model).__name__)
    zooms = ref_zooms(model)
    if len(ref_paths) != len(zooms):
        what = "the tele" if len(zooms) == 1 else "the middle camera and the tele"
        raise ZoomsrError(
            f"model '{name}' takes {len(zooms)} reference(s) ({what}), got {len(ref_paths)}"
        )
    _check_zoom_paths(dst, [wide, *ref_paths], save_dir, overwrite)

    seconds = {}
    start = time.perf_counter()
    capture = prepare_zoom_inputs(wide, ref_paths, zooms, ratio, progress)
    if save_dir is not None:
        _save_zoom_inputs(save_dir, capture, name)
    seconds["prepare"] = time.perf_counter() - start

    start = time.perf_counter()
    sr = run_zoom(
        model,
        capture.lr[None],
        [r[None] for r in capture.refs],
        capture.ref_boxes,
        options or ZoomOptions(progress=progress),
    )
    seconds["zoom"] = time.perf_counter() - start

    start = time.perf_counter()
    result = capture.wide.replace(sr.float().cpu().clamp(0, 1))
    write_image(dst, result, overwrite=overwrite, inputs=[wide, *ref_paths])
    seconds["write"] = time.perf_counter() - start
    meta = {**capture.meta, "model": name, "scale": model.scale}
    return ZoomReport(dst, (result.width, result.height), dst.stat().st_size, seconds, meta)


def zoom_batch(
    model: nn.Module,
    captures: Sequence[Sequence[str | Path]],
    out: str | Path,
    *,
    ratio="auto",
    options=None,
    overwrite: bool = False,
    shard: tuple[int, int] | None = None,
    progress: Callable = lambda it, _desc: it,
    on_result: Callable | None = None,
) -> BatchReport:
    """Zoom each capture ``(wide, ref, ...)`` into the folder ``out``, resumably.

    Outputs are ``<wide stem>_zoom_x<s>.png`` in the wide's folder relative to the folder all
    wides share, so captures kept one per folder (``a/wide.jpg``, ``b/wide.jpg``) do not collide.
    """
    from zoomsr.infer.zoom import ZoomOptions, ref_zooms

    out = Path(out)
    captures = [[Path(p) for p in capture] for capture in captures]
    n_refs = len(ref_zooms(model))
    for capture in captures:
        if len(capture) != 1 + n_refs:
            raise ZoomsrError(
                f"capture '{capture[0]}' has {len(capture) - 1} reference(s); model "
                f"'{getattr(model, 'model_name', type(model).__name__)}' takes {n_refs}"
            )
    root = Path(os.path.commonpath([c[0].resolve().parent for c in captures]))
    jobs = [
        Job(tuple(c), out / c[0].resolve().parent.relative_to(root) / _zoom_name(c[0], model.scale))
        for c in captures
    ]
    options = options or ZoomOptions(progress=progress)
    pixels = {k: v for k, v in asdict(options).items() if k not in ("device", "quiet", "progress")}

    def process(job: Job, tmp: Path) -> None:
        wide, *refs = job.inputs  # the batch checked inputs against outputs: overwrite the temp
        zoom_files(
            model, wide, refs, tmp, ratio=ratio, options=options, overwrite=True, progress=progress
        )

    return run_batch(
        jobs,
        process,
        model_identity(model, task="zoom", ratio=ratio, **pixels),
        out,
        shard=shard,
        overwrite=overwrite,
        progress=progress,
        desc="zoom",
        on_result=on_result,
    )
