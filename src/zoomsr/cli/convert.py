"""``zoomsr convert``: official checkpoints -> zoomsr model files."""

from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """\
formats:
  edsr-pytorch   EDSR, EDSR-baseline and RCAN state dicts of EDSR-PyTorch (e.g. edsr_baseline_x2-1bc95232.pt);
                 the architecture and scale are read from the tensor shapes
example:
  zoomsr convert edsr-pytorch edsr_baseline_x2-1bc95232.pt -o edsr_baseline_x2.safetensors
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert an official checkpoint to a zoomsr model file",
        description="Convert an official checkpoint to a zoomsr .safetensors model file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("format", choices=["edsr-pytorch"], help="layout of the input checkpoint")
    p.add_argument("checkpoint", help="official checkpoint file")
    p.add_argument("-o", "--output", required=True, help="output .safetensors file")
    p.add_argument(
        "--res-scale", type=float, default=None, help="EDSR residual scaling if not the default"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=run)


def run(args) -> int:
    from zoomsr.convert.edsr_pytorch import convert_edsr_pytorch
    from zoomsr.errors import ZoomsrError
    from zoomsr.models.checkpoints import save_weights

    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise ZoomsrError(f"output '{out}' must end in .safetensors")
    if out.exists() and not args.overwrite:
        raise ZoomsrError(f"'{out}' exists; pass --overwrite to replace it")
    model = convert_edsr_pytorch(args.checkpoint, res_scale=args.res_scale)
    save_weights(model, out, {"converted_from": Path(args.checkpoint).name})
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{model.model_name} x{model.scale} ({n:,} parameters) -> {out}")
    return 0
