"""``zoomsr upscale``: super-resolve image files."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoomsr.cli.common import add_common_flags, progress, resolve_device
from zoomsr.errors import ZoomsrError

EPILOG = """\
examples:
  zoomsr upscale photo.png -o photo_x2.png --scale 2
  zoomsr upscale photos/ 'more/*.jpg' -o out/ --scale 4 --model bicubic
Alpha is upscaled separately; gray and 16-bit images stay gray and 16-bit.
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "upscale",
        help="super-resolve image files",
        description="Super-resolve images (files, folders or globs).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files, folders or globs")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="output file, or folder for several inputs",
    )
    p.add_argument(
        "--model", default="bicubic", help="model name from 'zoomsr models' (default bicubic)"
    )
    p.add_argument("--scale", type=int, default=None, help="scale factor (default: the model's)")
    p.add_argument(
        "--format", dest="suffix", default=None, help="output extension for folders, e.g. .png"
    )
    p.add_argument("--overwrite", action="store_true", help="allow replacing an input file")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from zoomsr.infer.pipelines import output_path_for, upscale_file
    from zoomsr.io import list_images
    from zoomsr.models.registry import load_model

    sources = [p for spec in args.inputs for p in list_images(spec)]
    if not sources:
        raise ZoomsrError("no input images found")
    out = Path(args.output)
    many = len(sources) > 1
    if many and out.exists() and not out.is_dir():
        raise ZoomsrError(f"'{out}' is a file; several inputs need an output folder")
    suffix = (
        args.suffix if args.suffix is None or args.suffix.startswith(".") else f".{args.suffix}"
    )
    device = resolve_device(args.device)
    model = load_model(args.model, args.scale, device)
    for src in progress(args.quiet)(sources, "upscale"):
        dst = output_path_for(src, out, many, suffix)
        upscale_file(model, src, dst, overwrite=args.overwrite, inputs=sources)
        if not args.quiet:
            print(f"{src} -> {dst}")
    return 0
