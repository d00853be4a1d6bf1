"""``zoomsr prepare``: real wide + tele captures -> an LR / GT / Ref training or test sample."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoomsr.errors import ZoomsrError

EPILOG = """\
Writes LR.png (the wide crop over the tele's view), GT.png (the tele aligned to it, k x its size),
Ref.png (GT's centre 1/k), mask.png and meta.json (ratio, crop box, homography, colour fit,
alignment PSNR before/after); --debug adds debug.png (LR | aligned GT | 4 x difference).

examples:
  zoomsr prepare --wide wide.jpg --tele tele.jpg -o sample/
  zoomsr prepare --wide captures/wide/ --tele captures/tele/ -o dataset/   # matched file names
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "prepare",
        help="align a real wide + tele capture into an LR/GT/Ref sample",
        description="Turn a phone's wide and telephoto captures of one scene into a zoom sample.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--wide", required=True, help="wide capture (or a folder of them)")
    p.add_argument(
        "--tele", required=True, help="telephoto capture (or a folder with the same names)"
    )
    p.add_argument("--mid", help="middle camera capture for a triple sample (or a folder)")
    p.add_argument(
        "--ratio", default="auto", help="auto (feature matching, default), exif, or a number"
    )
    p.add_argument(
        "-o", "--output", required=True, help="sample folder (or dataset folder for folders)"
    )
    p.add_argument("--debug", action="store_true", help="also write debug.png")
    p.add_argument("--overwrite", action="store_true", help="replace an existing sample")
    p.set_defaults(func=run)


def _ratio(text: str):
    if text in ("auto", "exif"):
        return text
    try:
        return float(text)
    except ValueError:
        raise ZoomsrError(f"--ratio must be auto, exif or a number, got '{text}'") from None


def run(args) -> int:
    from zoomsr.data.prepare import prepare_capture, write_prepared
    from zoomsr.io import list_images

    ratio = _ratio(args.ratio)
    wide, tele, out = Path(args.wide), Path(args.tele), Path(args.output)
    if wide.is_dir() != tele.is_dir():
        raise ZoomsrError("--wide and --tele must both be files or both be folders")
    mid = Path(args.mid) if args.mid else None
    if wide.is_dir():
        teles = {p.stem: p for p in list_images(tele)}
        mids = {p.stem: p for p in list_images(mid)} if mid else {}
        jobs = [(w, teles.get(w.stem), mids.get(w.stem), out / w.stem) for w in list_images(wide)]
        missing = [w.name for w, t, m, _ in jobs if t is None or (mid and m is None)]
        if missing:
            raise ZoomsrError(f"no tele (or mid) capture named like {', '.join(missing[:3])}")
    else:
        jobs = [(wide, tele, mid, out)]
    for w, t, m, dst in jobs:
        sample = prepare_capture(w, t, ratio, debug=args.debug, mid_path=m)
        write_prepared(sample, dst, overwrite=args.overwrite)
        meta = sample.meta
        p = meta["psnr_lr_vs_gt_down"]
        print(
            f"{dst}: ratio x{meta['ratio']} (estimated {meta['estimated_ratio']}, EXIF {meta['exif_ratio']}), "
            f"LR {sample.lr.shape[-1]}x{sample.lr.shape[-2]}, alignment PSNR {p['naive_centre_crop']:.2f} -> "
            f"{p['aligned']:.2f} dB"
        )
    return 0
