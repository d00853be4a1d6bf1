"""``zoomsr eval``: score a model on benchmark folders and write a table."""

from __future__ import annotations

import argparse

from zoomsr.cli.common import add_common_flags, int_list, progress, resolve_device
from zoomsr.errors import ZoomsrError
from zoomsr.metrics.conventions import CONVENTIONS

EPILOG = """\
Dataset folders (--data, repeatable) may hold HR/ + LR_bicubic/X{s}/NAMEx{s}.png (the EDSR
benchmark layout), HR/ + LR/, or HR/ alone (LR is then made by MATLAB-exact bicubic
downscaling). Conventions:
  sisr      Y of BT.601 YCbCr (16-235, float), shave = scale, Wang SSIM - as the SISR papers
  selfdzsr  RGB, no shave, scikit-image SSIM over channels, LPIPS-alex - as the SelfDZSR papers

examples:
  zoomsr eval --method bicubic --data ../shared/data/Set5 --scale 2,3,4
  zoomsr eval --model bicubic --data Set5 --data Set14 --scale 4 --metrics psnr,ssim,lpips \\
      --per-image --out results
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="score a model on benchmark folders (PSNR, SSIM, LPIPS)",
        description="Score a super-resolution model on benchmark folders and print a table.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        "--method",
        dest="model",
        required=True,
        metavar="NAME",
        help="model name from 'zoomsr models' (e.g. bicubic) or a .safetensors file; --method is an alias",
    )
    p.add_argument(
        "--data", action="append", required=True, metavar="DIR", help="dataset folder (repeatable)"
    )
    p.add_argument("--scale", default="4", help="scale factor(s), e.g. 4 or 2,3,4 (default 4)")
    p.add_argument(
        "--metrics", default="psnr,ssim", help="comma list of psnr, ssim, lpips (default psnr,ssim)"
    )
    p.add_argument(
        "--convention",
        default="sisr",
        choices=sorted(CONVENTIONS),
        help="how numbers are computed (default sisr; see below)",
    )
    space = p.add_mutually_exclusive_group()
    space.add_argument(
        "--y", dest="y_only", action="store_const", const=True, help="score the Y channel"
    )
    space.add_argument("--rgb", dest="y_only", action="store_const", const=False, help="score RGB")
    p.add_argument(
        "--shave", type=int, default=None, help="border pixels to ignore (default: by convention)"
    )
    p.add_argument(
        "--regions",
        default="full",
        help="comma list of full, centre, corner (dual-zoom evaluation)",
    )
    p.add_argument(
        "--centre-fraction",
        type=float,
        default=None,
        help="zoom ratio whose centre 1/r the reference covers (default: the scale)",
    )
    p.add_argument("--per-image", action="store_true", help="also print one row per image")
    p.add_argument(
        "--out", metavar="PATH", help="write PATH.md/.csv/.json (or just one with that suffix)"
    )
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from zoomsr.infer.evaluate import evaluate_sisr
    from zoomsr.metrics import METRICS, REGIONS, MetricSuite, get_convention
    from zoomsr.metrics.suite import parse_list
    from zoomsr.models.registry import get_spec, is_model_file, load_model
    from zoomsr.tables import report_paths, text_table, write_report

    scales = int_list(args.scale, "--scale")
    metrics = parse_list(args.metrics, METRICS, "metric")
    regions = parse_list(args.regions, REGIONS, "region")
    if args.shave is not None and args.shave < 0:
        raise ZoomsrError("--shave must be >= 0")
    convention = get_convention(args.convention).with_overrides(
        y_only=args.y_only, shave=args.shave
    )
    device = resolve_device(args.device)
    spec = None if is_model_file(args.model) else get_spec(args.model)
    if spec is not None and spec.task != "sisr":
        raise ZoomsrError(
            f"model '{args.model}' is a {spec.task} model; eval of it is not supported yet"
        )
    if args.out:
        report_paths(args.out)  # refuse a bad --out before the work

    suite = MetricSuite(convention, metrics, regions, args.centre_fraction, device=device)
    report = evaluate_sisr(
        lambda s: load_model(args.model, s, device),
        args.data,
        scales,
        suite,
        args.model,
        progress(args.quiet),
    )

    cols_summary = ["model", "data", "scale", "images", *report.columns]
    cols_images = ["model", "data", "scale", "image", *report.columns]
    print(f"convention {report.convention}")
    print(text_table(report.summary, cols_summary))
    if args.per_image:
        print()
        print(text_table(report.per_image, cols_images))
    if args.out:
        tables = {"summary": (report.summary, cols_summary)}
        if args.per_image:
            tables["per_image"] = (report.per_image, cols_images)
        for path in write_report(args.out, f"zoomsr eval: {args.model}", report.convention, tables):
            print(f"wrote {path}")
    return 0
