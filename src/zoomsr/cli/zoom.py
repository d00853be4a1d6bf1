"""``zoomsr zoom``: super-resolve a whole wide capture with its telephoto reference(s)."""

from __future__ import annotations

import argparse
import sys

from zoomsr.cli.batching import add_batch_flags, batch_result
from zoomsr.cli.common import add_common_flags, progress, resolve_device
from zoomsr.errors import ZoomsrError

EPILOG = """\
The tele (--ref) is matched to the wide image (SIFT + RANSAC), warped onto its footprint at the
model's scale and colour-matched to the wide; the model then restores the whole wide image.
The result keeps the wide file's form (16-bit PNG/TIFF stays 16-bit).

examples:
  zoomsr zoom wide.jpg --ref tele.jpg -o wide_x4.png
  zoomsr zoom wide.jpg --ref tele.jpg -o out.png --model my_selfdzsr.safetensors --tile 256
  zoomsr zoom ultrawide.jpg --ref wide.jpg --ref tele.jpg -o out.png --model selftzsr-pp-x4
  zoomsr zoom wide.jpg --ref tele.jpg -o out.png --ratio exif --save-inputs prepared/
  zoomsr zoom --list captures.txt -o out/ --shard 1/4   # resumable batch: 'WIDE REF' per line
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "zoom",
        help="super-resolve a wide capture with its telephoto reference",
        description="Super-resolve a whole wide capture, guided by the same phone's tele capture.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "wide", nargs="?", metavar="WIDE", help="the wide capture (the image to super-resolve)"
    )
    p.add_argument(
        "--ref",
        action="append",
        metavar="REF",
        help="a narrower capture of the same scene: the tele (repeat for a triple model)",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output image (or folder)")
    p.add_argument(
        "--model",
        default=None,
        help="zoom model name or .safetensors file (default: the shipped selfdzsr-pp-x4, "
        "selfdzsr-pp-x2 with --scale 2, selftzsr-pp-x4 with two --ref)",
    )
    p.add_argument("--scale", type=int, default=None, help="scale factor (default: the model's)")
    p.add_argument(
        "--ratio",
        default="auto",
        help="zoom ratio of each --ref: auto (feature matching, default), exif, a number, "
        "or numbers separated by commas (one per --ref)",
    )
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        help="LR tile side for bounded-memory tiled inference (0: one whole-image pass; "
        "default: auto, tiles above 512x512 LR px)",
    )
    p.add_argument(
        "--save-inputs", metavar="DIR", help="also write the prepared LR / Ref images and meta.json"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_batch_flags(p, "WIDE REF [REF] (tab- or space-separated), outputs in the folder OUT")
    add_common_flags(p)
    p.set_defaults(func=run)


def parse_ratio(text: str, n_refs: int):
    """'auto' / 'exif' / '2.1' -> one value for all refs; '2,4' -> one per ref."""
    if text in ("auto", "exif"):
        return text
    try:
        values = [float(t) for t in text.split(",")]
    except ValueError:
        raise ZoomsrError(
            f"--ratio must be auto, exif or numbers separated by commas, got '{text}'"
        ) from None
    if len(values) == 1:
        return values[0]
    if len(values) != n_refs:
        raise ZoomsrError(f"--ratio gives {len(values)} ratios for {n_refs} --ref images")
    return values


def zoom_options(tile: int | None, bar):
    """--tile N: bounded-memory tiles of N LR px; 0: one whole-image pass; none: auto (tiles
    above 512x512 LR px)."""
    from zoomsr.infer.zoom import ZoomOptions

    if tile is None:
        return ZoomOptions(progress=bar)
    if tile == 0:
        return ZoomOptions(method="whole", progress=bar)
    return ZoomOptions(method="tiled", tile=tile, progress=bar)


def run(args) -> int:
    from zoomsr.infer.pipelines import default_zoom_model, load_zoom_model, zoom_files

    if args.list:
        return _run_batch(args)
    if args.wide is None or not args.ref:
        raise ZoomsrError("give WIDE and --ref REF, or --list FILE (see 'zoomsr zoom --help')")
    ratio = parse_ratio(args.ratio, len(args.ref))
    if args.tile is not None and args.tile < 0:
        raise ZoomsrError("--tile must be >= 0")
    device = resolve_device(args.device)
    name = args.model or default_zoom_model(len(args.ref), args.scale)
    model = load_zoom_model(name, args.scale, device)
    bar = progress(args.quiet)
    report = zoom_files(
        model,
        args.wide,
        args.ref,
        args.output,
        ratio=ratio,
        options=zoom_options(args.tile, bar),
        overwrite=args.overwrite,
        save_inputs=args.save_inputs,
        progress=bar,
    )
    if not args.quiet:
        w, h = report.size
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
        print(
            f"{report.path}: {w}x{h} (x{report.meta['scale']}), {report.bytes / 1e6:.1f} MB, "
            f"{sum(report.seconds.values()):.1f} s ({stages})"
        )
        if args.save_inputs:
            print(f"prepared inputs: {args.save_inputs}")
    if not hasattr(model, "weights_path"):  # after the run: an error stays a single line
        print(f"zoomsr: warning: '{name}' has untrained (random) weights", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- batch: --list FILE -> folder


def _run_batch(args) -> int:
    """Captures from a list file into the folder OUT: resumable, shardable, one summary line."""
    from zoomsr.infer.batch import parse_shard, rank_device, read_list
    from zoomsr.infer.pipelines import default_zoom_model, load_zoom_model, zoom_batch

    if args.wide is not None or args.ref or args.save_inputs:
        raise ZoomsrError(
            "--list takes its captures from the file: drop WIDE, --ref, --save-inputs"
        )
    shard = parse_shard(args.shard)
    captures = read_list(args.list)
    n_refs = max(len(c) - 1 for c in captures)
    ratio = parse_ratio(args.ratio, n_refs)
    if args.tile is not None and args.tile < 0:
        raise ZoomsrError("--tile must be >= 0")
    name = args.model or default_zoom_model(n_refs, args.scale)
    model = load_zoom_model(name, args.scale, resolve_device(rank_device(args.device)))
    bar = progress(args.quiet)
    report = zoom_batch(
        model,
        captures,
        args.output,
        ratio=ratio,
        options=zoom_options(args.tile, bar),
        overwrite=args.overwrite,
        shard=shard,
        progress=bar,
        on_result=batch_result(args.quiet),
    )
    print(report.summary("zoom"))
    if not hasattr(model, "weights_path"):
        print(f"zoomsr: warning: '{name}' has untrained (random) weights", file=sys.stderr)
    return 2 if report.failed else 0
