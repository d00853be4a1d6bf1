"""``zoomsr upscale``: super-resolve image files."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoomsr.cli.batching import add_batch_flags, batch_result
from zoomsr.cli.common import add_common_flags, progress, resolve_device
from zoomsr.cli.flow import add_flow_flags, run_flow, wants_flow
from zoomsr.cli.zeroshot import add_zeroshot_flags, run_zeroshot, wants_zeroshot
from zoomsr.errors import ZoomsrError

EPILOG = """\
examples:
  zoomsr upscale photo.png -o photo_x2.png --scale 2
  zoomsr upscale photos/ 'more/*.jpg' -o out/ --scale 4 --model bicubic
  zoomsr upscale --list files.txt -o out/ --scale 4 --shard 0/2   # resumable; half the list
  zoomsr upscale photo.png -o sr.png --model sdflow.safetensors --samples 3 --tau 0.8
      # 3 SR samples sr_s0.png .. sr_s2.png of a trained/converted SDFlow (x4; --tau 0: the mode)
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
    p.add_argument("inputs", nargs="*", metavar="IN", help="image files, folders or globs")
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
    p.add_argument(
        "--scale", type=int, default=None, help="scale factor (default: the model's, or 4)"
    )
    p.add_argument(
        "--format", dest="suffix", default=None, help="output extension for folders, e.g. .png"
    )
    p.add_argument("--overwrite", action="store_true", help="allow replacing an input file")
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        help="LR tile size (default: from --max-memory; 0: no tiling)",
    )
    p.add_argument(
        "--tile-overlap",
        type=int,
        default=16,
        help="LR pixels shared by neighbouring tiles (default 16)",
    )
    p.add_argument(
        "--max-memory",
        default="2GB",
        help="activation memory budget for automatic tiles (default 2GB)",
    )
    p.add_argument(
        "--ensemble", action="store_true", help="x8 self-ensemble (flips/rotations; 8x slower)"
    )
    p.add_argument("--half", action="store_true", help="float16 on CUDA")
    add_zeroshot_flags(p)
    add_flow_flags(p)
    add_batch_flags(p, "one image, folder or glob per line")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from zoomsr.infer.batch import parse_shard, rank_device, read_list
    from zoomsr.infer.engine import InferOptions, parse_memory
    from zoomsr.infer.pipelines import output_path_for, upscale_file
    from zoomsr.io import list_images
    from zoomsr.models.registry import list_models, load_model

    shard = parse_shard(args.shard)
    specs = (
        [*args.inputs, *(r[0] for r in read_list(args.list, False))] if args.list else args.inputs
    )
    sources = [p for spec in specs for p in list_images(spec)]
    if not sources:
        raise ZoomsrError("no input images: name files, folders or globs, or --list FILE")
    out = Path(args.output)
    many = len(sources) > 1
    if many and out.exists() and not out.is_dir():
        raise ZoomsrError(f"'{out}' is a file; several inputs need an output folder")
    suffix = (
        args.suffix if args.suffix is None or args.suffix.startswith(".") else f".{args.suffix}"
    )
    device = resolve_device(rank_device(args.device))
    if (args.tile is not None and args.tile < 0) or args.tile_overlap < 0:
        raise ZoomsrError("--tile and --tile-overlap must be >= 0")
    if args.tile and args.tile <= 2 * args.tile_overlap:
        raise ZoomsrError(f"--tile {args.tile} must exceed twice the overlap ({args.tile_overlap})")
    opts = InferOptions(
        tile=args.tile,
        overlap=args.tile_overlap,
        ensemble=args.ensemble,
        half=args.half and device.type == "cuda",
        max_memory=parse_memory(args.max_memory),
    )
    name = args.model or f"default-x{args.scale or 4}"
    if args.model is None and name not in {s.name for s in list_models()}:
        raise ZoomsrError(
            f"no shipped default model for x{args.scale}; name one with --model (see 'zoomsr models')"
        )
    from zoomsr.infer.flow import check_flow_name

    check_flow_name(name)  # SDFlow has no shipped weights: say what to do before building it
    model = load_model(name, args.scale, device)
    if wants_flow(args, model):  # sampled SR, --samples N outputs each (cli/flow.py)
        return run_flow(args, model, name, sources, out, suffix, "upscale")
    if wants_zeroshot(args, model):  # trains on each input itself: its own loop (cli/zeroshot.py)
        return run_zeroshot(args, model, sources, out, suffix)
    if opts.half:
        model.half()
    bar = progress(args.quiet)
    if many or out.is_dir():
        return _run_batch(args, model, sources, out, suffix, opts, shard, bar)
    for src in bar(sources, "upscale"):
        dst = output_path_for(src, out, many, suffix)
        upscale_file(
            model, src, dst, opts=opts, overwrite=args.overwrite, inputs=sources, progress=bar
        )
        if not args.quiet:
            print(f"{src} -> {dst}")
    return 0


# ---------------------------------------------------------------- batch: a folder of outputs


def _run_batch(args, model, sources, out, suffix, opts, shard, bar) -> int:
    """Several inputs or an output folder: resumable (manifest in OUT), one summary line."""
    from zoomsr.infer.pipelines import upscale_batch

    report = upscale_batch(
        model,
        sources,
        out,
        suffix=suffix,
        opts=opts,
        overwrite=args.overwrite,
        shard=shard,
        progress=bar,
        on_result=batch_result(args.quiet),
    )
    print(report.summary("upscale"))
    return 2 if report.failed else 0
