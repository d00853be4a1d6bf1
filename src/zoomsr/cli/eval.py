"""``zoomsr eval``: score a model on benchmark folders and write a table."""

from __future__ import annotations

import argparse

from zoomsr.cli.common import add_common_flags, int_list, progress, resolve_device
from zoomsr.errors import ZoomsrError
from zoomsr.metrics.conventions import CONVENTIONS

EPILOG = """\
Dataset folders (--data, repeatable) may hold HR/ + LR_bicubic/X{s}/NAMEx{s}.png (the EDSR
benchmark layout), HR/ + LR/, or HR/ alone (LR is then made by MATLAB-exact bicubic
downscaling), or zoom sample folders (LR.png, GT.png, Ref*.png, meta.json, as 'zoomsr simulate'
and 'zoomsr prepare' write them). Zoom models (selfdzsr, ...) take zoom sample folders only;
on zoom sample folders every model, single-image ones included, is scored the same way: the
selfdzsr convention, full, centre and corner regions, the GT in the LR's geometry (--gt), so
that rows compare like with like; the scale is the model's (one --scale for single-image
models). Conventions:
  sisr      Y of BT.601 YCbCr (16-235, float), shave = scale, Wang SSIM - as the SISR papers
  selfdzsr  RGB, no shave, scikit-image SSIM over channels, LPIPS-alex - as the SelfDZSR papers

examples:
  zoomsr eval --method bicubic --data ../shared/data/Set5 --scale 2,3,4
  zoomsr eval --model bicubic --data Set5 --data Set14 --scale 4 --metrics psnr,ssim,lpips \\
      --per-image --out results
  zoomsr eval --model selfdzsr-x4 runs/dzsr/best.safetensors --data zoom_test \\
      --metrics psnr,ssim,lpips
  zoomsr eval --model runs/dzsr/best.safetensors --data zoom_test --zoom-method tiled
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
        nargs="+",
        metavar="MODEL",
        help="NAME from 'zoomsr models' (e.g. bicubic, selfdzsr-x4), a .safetensors file, or "
        "NAME FILE (the architecture and its weights); --method is an alias",
    )
    p.add_argument(
        "--data", action="append", required=True, metavar="DIR", help="dataset folder (repeatable)"
    )
    p.add_argument(
        "--scale",
        default=None,
        help="scale factor(s), e.g. 4 or 2,3,4 (default: the model's, else 4)",
    )
    p.add_argument(
        "--metrics", default="psnr,ssim", help="comma list of psnr, ssim, lpips (default psnr,ssim)"
    )
    p.add_argument(
        "--convention",
        default=None,
        choices=sorted(CONVENTIONS),
        help="how numbers are computed (default sisr; selfdzsr for zoom models; see below)",
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
        default=None,
        help="comma list of full, centre, corner (default full; all three for zoom models)",
    )
    p.add_argument(
        "--zoom-method",
        default="whole",
        choices=["whole", "tiled", "eccv"],
        help="zoom models: one padded pass (whole, default), memory-bounded tiles (tiled) or "
        "the official ECCV chop (eccv)",
    )
    p.add_argument("--tile", type=int, default=None, help="LR tile side for --zoom-method tiled")
    p.add_argument(
        "--centre-fraction",
        type=float,
        default=None,
        help="zoom ratio whose centre 1/r the reference covers (default: the scale)",
    )
    p.add_argument(
        "--gt",
        default="aligned",
        choices=["aligned", "captured"],
        help="zoom models: put a simulated sample's GT and Refs in the LR's geometry, as "
        "'zoomsr prepare' aligns a real tele and the official test data are (aligned, default), "
        "or score the files as they are (captured)",
    )
    p.add_argument("--per-image", action="store_true", help="also print one row per image")
    p.add_argument(
        "--out", metavar="PATH", help="write PATH.md/.csv/.json (or just one with that suffix)"
    )
    add_common_flags(p)
    p.set_defaults(func=run)


def _holds_zoom_samples(folder: str) -> bool:
    from zoomsr.data.zoom import find_zoom_samples
    from zoomsr.errors import DataError

    try:
        return bool(find_zoom_samples(folder))
    except DataError:  # missing, or no sample folders: not zoom data
        return False


def run(args) -> int:
    from zoomsr.infer.evaluate import evaluate_sisr, evaluate_zoom, resolve_model
    from zoomsr.infer.zoom import ZoomOptions
    from zoomsr.metrics import METRICS, REGIONS, MetricSuite, get_convention
    from zoomsr.metrics.suite import parse_list
    from zoomsr.tables import report_paths, text_table, write_report

    choice = resolve_model(args.model)
    if choice.task not in ("sisr", "zoom"):
        raise ZoomsrError(f"model '{choice.label}' is a {choice.task} model; eval cannot score it")
    # Zoom sample folders score single-image models as zoom models are scored (same frame,
    # padding, regions and convention), so that the two can be compared row by row.
    zoom = choice.task == "zoom" or all(_holds_zoom_samples(d) for d in args.data)
    scale_text = args.scale or (str(choice.scale) if choice.scale else "4")
    scales = int_list(scale_text, "--scale")
    metrics = parse_list(args.metrics, METRICS, "metric")
    regions = parse_list(
        args.regions or ("full,centre,corner" if zoom else "full"), REGIONS, "region"
    )
    if args.shave is not None and args.shave < 0:
        raise ZoomsrError("--shave must be >= 0")
    if args.tile is not None and args.tile < 8:
        raise ZoomsrError("--tile must be at least 8")
    convention = get_convention(args.convention or ("selfdzsr" if zoom else "sisr"))
    convention = convention.with_overrides(y_only=args.y_only, shave=args.shave)
    device = resolve_device(args.device)
    if args.out:
        report_paths(args.out)  # refuse a bad --out before the work

    suite = MetricSuite(convention, metrics, regions, args.centre_fraction, device=device)
    if zoom:
        opts = ZoomOptions(method=args.zoom_method, quiet=args.quiet)
        if args.tile is not None:
            opts.tile = args.tile
        if choice.task == "zoom":
            model = choice.load(None, device)
            if args.scale and scales != [model.scale]:
                raise ZoomsrError(
                    f"{choice.label} is a x{model.scale} model; drop --scale {args.scale}"
                )
        elif len(scales) != 1:
            raise ZoomsrError("zoom samples are scored at their zoom ratio: give one --scale")
        else:
            model = choice.load(scales[0], device)
        report = evaluate_zoom(
            model,
            args.data,
            suite,
            choice.label,
            opts,
            progress(args.quiet),
            align_gt=args.gt == "aligned",
        )
    else:
        report = evaluate_sisr(
            lambda s: choice.load(s, device),
            args.data,
            scales,
            suite,
            choice.label,
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
        for path in write_report(
            args.out, f"zoomsr eval: {choice.label}", report.convention, tables
        ):
            print(f"wrote {path}")
    return 0
