"""``zoomsr convert``: official checkpoints -> zoomsr model files."""

from __future__ import annotations

import argparse
import inspect
import re
from pathlib import Path

EPILOG = """\
formats ('zoomsr convert --list' shows them all, with the files each takes):
  edsr-pytorch   EDSR, EDSR-baseline and RCAN state dicts of EDSR-PyTorch (e.g. edsr_baseline_x2-1bc95232.pt);
                 the architecture and scale are read from the tensor shapes
  selfdzsr       official SelfDZSR (ECCV 2022) RefSR_model_*.pth, then Student_model_*.pth
  selfdzsr-auxlr its auxiliary-LR generator, KernelGen_model_*.pth
  (and every other SelfDZSR-family format of zoomsr.convert.selfdzsr, e.g. the ++ models)
examples:
  zoomsr convert edsr-pytorch edsr_baseline_x2-1bc95232.pt -o edsr_baseline_x2.safetensors
  zoomsr convert selfdzsr RefSR_model_401.pth Student_model_400.pth -o selfdzsr_x4.safetensors
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert an official checkpoint to a zoomsr model file",
        description="Convert official checkpoint file(s) to a zoomsr .safetensors model file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("format", nargs="?", help="layout of the input checkpoint(s); see --list")
    p.add_argument(
        "checkpoint", nargs="*", help="official checkpoint file(s), in the format's order"
    )
    p.add_argument("-o", "--output", help="output .safetensors file")
    p.add_argument("--list", action="store_true", help="list the formats and the files they take")
    p.add_argument(
        "--res-scale", type=float, default=None, help="EDSR residual scaling if not the default"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run)


def _formats() -> dict:
    """Format name -> (converter, the checkpoint files it takes): EDSR-PyTorch plus whatever
    ``zoomsr.convert.registry.CONVERTERS`` holds (its converters take file paths in order)."""
    from zoomsr.convert.edsr_pytorch import convert_edsr_pytorch
    from zoomsr.convert.registry import CONVERTERS

    formats = {"edsr-pytorch": (convert_edsr_pytorch, ["MODEL.pt"])}
    for name, fn in CONVERTERS.items():
        params = inspect.signature(fn).parameters.values()
        names = [p.name.removesuffix("_path") for p in params if p.default is p.empty]
        files = [("checkpoint" if n == "path" else n).upper() + ".pth" for n in names]
        formats[name] = (fn, files)
    return formats


def run(args) -> int:
    from zoomsr.errors import ZoomsrError
    from zoomsr.models.checkpoints import save_weights

    formats = _formats()
    if args.list:
        width = max(len(name) for name in formats)
        for name, (fn, files) in formats.items():
            summary = (inspect.getdoc(fn) or "").splitlines()[0]
            summary = re.sub(r":\w+:`~?([^`]+)`", r"\1", summary).replace("``", "")
            print(f"{name.ljust(width)}  {' '.join(files)}  {summary}".rstrip())
        return 0
    if args.format is None:
        raise ZoomsrError("name a format and its checkpoint file(s); 'zoomsr convert --list'")
    if args.format not in formats:
        raise ZoomsrError(f"unknown format '{args.format}'; choose from {', '.join(formats)}")
    fn, files = formats[args.format]
    if len(args.checkpoint) != len(files):
        raise ZoomsrError(
            f"format '{args.format}' takes {len(files)} checkpoint file(s): {' '.join(files)}; "
            f"got {len(args.checkpoint)}"
        )
    if not args.output:
        raise ZoomsrError("name the output file with -o/--output")
    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise ZoomsrError(f"output '{out}' must end in .safetensors")
    if out.exists() and not args.overwrite:
        raise ZoomsrError(f"'{out}' exists; pass --overwrite to replace it")
    for path in args.checkpoint:
        if not Path(path).is_file():
            raise ZoomsrError(f"checkpoint '{path}' not found")
    if args.format == "edsr-pytorch":
        model = fn(args.checkpoint[0], res_scale=args.res_scale)
    else:
        if args.res_scale is not None:
            raise ZoomsrError("--res-scale applies to edsr-pytorch only")
        model = fn(*args.checkpoint)
    if not hasattr(model, "model_name"):  # e.g. the auxiliary-LR generator: named by its format
        model.model_name = args.format
    sources = ",".join(Path(c).name for c in args.checkpoint)
    save_weights(model, out, {"converted_from": sources})
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{model.model_name} x{model.scale} ({n:,} trainable parameters) -> {out}")
    return 0
