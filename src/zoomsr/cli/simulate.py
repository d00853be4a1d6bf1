"""``zoomsr simulate``: make dual/triple-zoom sample folders from high-resolution photos."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoomsr.cli.common import int_list, progress
from zoomsr.errors import ZoomsrError

EPILOG = """\
Each photo plays the telephoto camera (GT); the wide camera's LR is a degraded downscale
(blur, MATLAB bicubic, small affine misalignment, colour gain/gamma, shot+read noise, JPEG),
with every drawn parameter written to meta.json. One folder per photo (named by its stem):
  LR.png, GT.png, Ref.png, meta.json                        (two cameras)
  LR.png, GT.png, View2x.png, Ref2x.png, Ref4x.png, meta.json   (--refs 2,4)

examples:
  zoomsr simulate --photos ../shared/data/photos --ratio 4 -o sim_x4 --max-size 1024
  zoomsr simulate --photos photos/ --ratio 4 --refs 2,4 -o sim_triple --seed 1
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="make simulated dual/triple-zoom samples from photos",
        description="Simulate wide + tele (+ middle) captures from high-resolution photos.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--photos", required=True, metavar="DIR", help="folder (or glob) of photos")
    p.add_argument("--ratio", required=True, help="zoom ratio tele / wide, an integer >= 2")
    p.add_argument(
        "--refs",
        default=None,
        help="zoom of each reference camera, ending with the ratio (e.g. 2,4)",
    )
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output dataset folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--max-size", type=int, default=None, metavar="N", help="largest GT side (random crop)"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="allow writing into a non-empty output folder"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=run)


def _ratio(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ZoomsrError(f"--ratio must be a number, got '{text}'") from None
    if not value >= 1.2:  # also catches nan
        raise ZoomsrError(f"--ratio must be at least 1.2 (the tele magnifies the wide), got {text}")
    if not value.is_integer():
        raise ZoomsrError(f"--ratio {text}: simulation needs an integer ratio (2, 3, 4, ...)")
    return int(value)


def run(args) -> int:
    from zoomsr.data.simulate import check_refs, simulate_dataset

    ratio = _ratio(args.ratio)
    refs = check_refs(ratio, int_list(args.refs, "--refs") if args.refs else ())
    if args.max_size is not None and args.max_size < 1:
        raise ZoomsrError(f"--max-size must be a positive number of pixels, got {args.max_size}")
    folders = simulate_dataset(
        args.photos,
        args.output,
        ratio,
        refs,
        seed=args.seed,
        crop=args.max_size,
        overwrite=args.overwrite,
        progress=progress(args.quiet),
    )
    if not args.quiet:
        kind = "dual" if len(refs) == 1 else "refs " + ",".join(map(str, refs))
        print(f"wrote {len(folders)} simulated x{ratio} samples ({kind}) to {Path(args.output)}")
    return 0
