"""``zoomsr downscale``: real-world x1/4 downscaling with a flow model (SDFlow); the flow flags
and run it shares with ``zoomsr upscale`` are in ``cli/flow.py``."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoomsr.cli.common import add_common_flags, resolve_device
from zoomsr.cli.flow import add_flow_flags, flow_options, run_flow
from zoomsr.errors import ZoomsrError

EPILOG = """\
examples:
  zoomsr downscale --model sdflow.safetensors photo.png -o photo_lr.png
  zoomsr downscale --model sdflow.safetensors hr/ -o lr/ --samples 4 --tau 0.8 --seed 1
The LR is H//4 x W//4 (the HR cropped to multiples of 4). --samples N writes OUT_s0 .. OUT_s{N-1}.
SDFlow weights are not shipped: train them (configs/flow/sdflow_x4.yaml) or convert the official
ones with 'zoomsr convert sdflow'.
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "downscale",
        help="real-world x1/4 downscaling with a flow model (SDFlow)",
        description="Make realistic low-resolution images from HR images with a trained SDFlow.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files, folders or globs")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file or folder")
    p.add_argument(
        "--model", required=True, help="a flow model file (.safetensors) or a registered flow model"
    )
    p.add_argument(
        "--format", dest="suffix", default=None, help="output extension for folders, e.g. .png"
    )
    p.add_argument("--overwrite", action="store_true", help="allow replacing an input file")
    p.add_argument(
        "--tile", type=int, default=None, help="HR tile size (default: from --max-memory; 0: none)"
    )
    p.add_argument(
        "--tile-overlap", type=int, default=32, help="HR pixels shared by tiles (default 32)"
    )
    p.add_argument("--max-memory", default="2GB", help="activation budget (default 2GB)")
    add_flow_flags(p)
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from zoomsr.infer.flow import check_flow_name, is_flow_model
    from zoomsr.io import list_images
    from zoomsr.models.registry import get_spec, is_model_file, load_model

    check_flow_name(args.model)
    if not is_model_file(args.model):  # refuse a non-flow name before building anything
        spec = get_spec(args.model)
        if spec.task != "flow":
            raise ZoomsrError(
                f"model '{args.model}' ({spec.task}) cannot downscale: only flow models learn a "
                "downscaling (--model sdflow FILE.safetensors)"
            )
    sources = [p for spec in args.inputs for p in list_images(spec)]
    suffix = (
        args.suffix if args.suffix is None or args.suffix.startswith(".") else f".{args.suffix}"
    )
    flow_options(args)  # bad flags fail before the model loads
    model = load_model(args.model, None, resolve_device(args.device))
    if not is_flow_model(model):
        raise ZoomsrError(
            f"'{args.model}' is a {getattr(model, 'task', 'sisr')} model ({model.model_name}); "
            "only flow models learn a downscaling (--model sdflow FILE.safetensors)"
        )
    return run_flow(args, model, args.model, sources, Path(args.output), suffix, "downscale")
