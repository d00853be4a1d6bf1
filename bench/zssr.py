"""ZSSR on a benchmark folder (default Set5 x2, bicubic kernel): PSNR/SSIM, iterations and time.

    OMP_NUM_THREADS=2 .venv/bin/python bench/zssr.py                      # Set5 x2, the recipe
    .venv/bin/python bench/zssr.py --images 1 --crop 48 --iterations 40  # a quick smoke run
    .venv/bin/python bench/zssr.py --gradual     # the official six-step x2 schedule (~6x longer)
    # two processes, one thread each, then a plain call for the table
    for i in 0 1; do OMP_NUM_THREADS=1 .venv/bin/python bench/zssr.py --shard $i/2 & done; wait

Scores follow the SISR convention of ``zoomsr eval`` (Y channel, shave = scale, 8-bit output);
the LR images are the dataset's own (``LR_bicubic/X2`` for Set5). Published: ZSSR paper
(Shocher et al., CVPR 2018), Table 1, Set5 x2 with the bicubic kernel: 37.37 dB PSNR.

Each image is trained from scratch with the recipe's defaults (3000 iterations at most per
scale step, stopping when the learning rate has decayed below 9e-6). ``--crop N`` scores only
the centre N x N of each LR image (and its HR), for quick runs; such runs are written under
another name so they never replace the full table. Each finished image is cached (next to
the table, ``..._cache/``) so runs can be sharded and resumed. Prints the table and writes it as
md/csv/json (default ``bench/results/zssr_<data>_x<scale>[...]``).

``--crop-sampling`` says where the fathers' crops lie: ``gradient`` (zoomsr's default: centres
drawn by gradient magnitude, crops kept inside the image), ``uniform`` (uniform centres, kept
inside) or ``official`` (the official code's placement, whose crops of small or shrunk images
reach past the border into black).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from _shards import sharded_rows

from zoomsr.data.sisr import find_eval_pairs, load_eval_sample
from zoomsr.metrics.conventions import get_convention
from zoomsr.metrics.suite import MetricSuite
from zoomsr.models.registry import load_model
from zoomsr.models.zeroshot.zssr import CROP_SAMPLINGS, GRADUAL_X2
from zoomsr.ops.resize import imresize
from zoomsr.tables import text_table, write_report

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = {("Set5", 2): 37.37}  # ZSSR paper, Table 1 (bicubic kernel)
COLUMNS = [
    "image",
    "lr_size",
    "psnr",
    "ssim",
    "bicubic_psnr",
    "iterations",
    "train_s",
    "output_s",
    "total_s",
    "s_per_iteration",
]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "Set5")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--iterations", type=int, default=3000, help="most per scale step (recipe 3000)")
    p.add_argument("--images", type=int, default=0, help="only the first N images (0: all)")
    p.add_argument("--crop", type=int, default=0, help="centre N x N of each LR only (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--crop-sampling",
        choices=CROP_SAMPLINGS,
        default="gradient",
        help="where fathers' crops lie (see above; default gradient)",
    )
    p.add_argument(
        "--gradual",
        action="store_true",
        help="x2 in the official six anisotropic steps (X2_GRADUAL_IDEAL_CONF; ~6x the time)",
    )
    p.add_argument(
        "--shard",
        default="0/1",
        metavar="I/N",
        help="only every N-th image from the I-th (run N processes; a last plain run writes the table)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    data = args.data.name
    tag = f"zssr_{data}_x{args.scale}"
    if args.crop:
        tag += f"_crop{args.crop}"
    if args.iterations != 3000:
        tag += f"_it{args.iterations}"
    if args.crop_sampling != "gradient":
        tag += f"_{args.crop_sampling}"
    if args.gradual:
        if args.scale != 2:
            raise SystemExit("--gradual is the official x2 schedule: use it with --scale 2")
        tag += "_gradual"
    out = args.out or REPO / "bench" / "results" / tag
    convention = get_convention("sisr")
    suite = MetricSuite(convention, ("psnr", "ssim"))
    pairs = find_eval_pairs(args.data, args.scale)
    pairs = pairs[: args.images] if args.images else pairs

    rows = sharded_rows(
        [pair.name for pair in pairs],
        Path(str(out) + "_cache"),
        args.shard,
        lambda index: score_image(pairs[index], args, suite),
    )
    if rows is None:
        return
    table(rows, args, data, convention, out)


def score_image(pair, args, suite) -> dict:
    """ZSSR on one image from scratch: its table row."""
    sample = load_eval_sample(pair, args.scale)
    lr, hr = sample.lr, sample.hr
    if args.crop:
        h, w = lr.shape[-2:]
        t, l0 = max(0, (h - args.crop) // 2), max(0, (w - args.crop) // 2)
        lr = lr[..., t : t + args.crop, l0 : l0 + args.crop]
        s = args.scale
        hr = hr[..., s * t : s * (t + lr.shape[-2]), s * l0 : s * (l0 + lr.shape[-1])]
    model = load_model(
        "zssr",
        args.scale,
        args.device,
        iterations=args.iterations,
        seed=args.seed,
        crop_sampling=args.crop_sampling,
        **(GRADUAL_X2 if args.gradual else {}),
    )
    started = time.perf_counter()
    sr = model(lr)
    total = time.perf_counter() - started
    report = model.last_report
    bicubic = imresize(lr.double(), args.scale, levels=2**sample.bit_depth - 1).float()
    scores = suite(sr, hr, args.scale)
    row = {
        "image": pair.name,
        "lr_size": f"{lr.shape[-1]}x{lr.shape[-2]}",
        "psnr": round(scores["psnr"], 3),
        "ssim": round(scores["ssim"], 4),
        "bicubic_psnr": round(suite(bicubic, hr, args.scale)["psnr"], 3),
        "iterations": report.total_iterations,
        "train_s": round(report.train_seconds, 1),
        "output_s": round(report.output_seconds, 1),
        "total_s": round(total, 1),
        "s_per_iteration": round(report.train_seconds / report.total_iterations, 4),
        "threads": torch.get_num_threads(),  # per row: shards and the table call can differ
    }
    print(
        f"{pair.name}: {row['psnr']} dB in {row['iterations']} iterations, {row['total_s']} s",
        file=sys.stderr,
    )
    return row


def table(rows: list[dict], args, data: str, convention, out: Path) -> None:
    """Print and write the table with its mean row."""
    mean = {
        "image": "mean",
        "psnr": round(statistics.fmean(r["psnr"] for r in rows), 3),
        "ssim": round(statistics.fmean(r["ssim"] for r in rows), 4),
        "bicubic_psnr": round(statistics.fmean(r["bicubic_psnr"] for r in rows), 3),
        "iterations": round(statistics.fmean(r["iterations"] for r in rows)),
        "train_s": round(statistics.fmean(r["train_s"] for r in rows), 1),
        "output_s": round(statistics.fmean(r["output_s"] for r in rows), 1),
        "s_per_iteration": round(
            sum(r["train_s"] for r in rows) / sum(r["iterations"] for r in rows), 4
        ),
    }
    rows = [*rows, mean]
    threads = "/".join(sorted({str(r.get("threads", "?")) for r in rows[:-1]}))
    published = PUBLISHED.get((data, args.scale))
    note = (
        f"ZSSR (zoomsr recipe defaults, bicubic kernel, seed {args.seed}, at most "
        f"{args.iterations} iterations per scale step, {args.crop_sampling} crop placement"
        + (", the official gradual x2 steps" if args.gradual else "")
        + ") "
        f"on {data} x{args.scale}"
        + (f", centre {args.crop}x{args.crop} LR crops" if args.crop else "")
        + f"; {convention.describe(args.scale)}; {args.device}, {threads} thread(s) per image. "
        + (
            f"Published (ZSSR paper, Table 1): {published} dB; here {mean['psnr']} dB "
            f"({mean['psnr'] - published:+.2f})."
            if published and not args.crop
            else ""
        )
    )
    print(text_table(rows, COLUMNS))
    print(note)
    write_report(out, f"ZSSR on {data} x{args.scale}", note, {"zssr": (rows, COLUMNS)})


if __name__ == "__main__":
    main()
