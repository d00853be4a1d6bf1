"""KernelGAN + ZSSR on photos degraded by random anisotropic Gaussian kernels (DIV2KRK-style), x2.

    OMP_NUM_THREADS=2 .venv/bin/python bench/kernelgan.py                 # 6 photos, the recipes
    .venv/bin/python bench/kernelgan.py --images 1 --hr-size 192 --iterations 30 --kernel-iterations 100

Test set (the KernelGAN paper's DIV2KRK procedure, via the authors' BlindSR_dataset_generator):
each HR is the centre ``--hr-size`` crop of a photo from ../shared/data/photos; its kernel is an
11x11 anisotropic Gaussian with covariance eigenvalues U(0.35, 5), angle U(0, π) and ±40%
multiplicative noise per tap (seeded per image); LR = (HR ⋆ k)[::2, ::2], saved to 8 bits.

For each image: KernelGAN estimates the kernel from the LR alone (``--kernel-runs`` seeded runs,
the medoid kept, as ``zoomsr kernel`` does; the first run alone is the published recipe and is
scored too); ZSSR x2 runs with the bicubic kernel (its ideal-case recipe) and with the estimated
kernel (its given-kernel recipe);
``--true-kernel`` adds ZSSR with the true kernel (an upper bound). PSNR/SSIM follow the SISR
convention (Y, shave 2, 8-bit output). ``kernel_ncc`` is the normalised correlation of a kernel
with the true one. Writes the table (md/csv/json) and a figure of true vs estimated kernels
(PNG) to ``--out`` (default ``bench/results/kernelgan_x2[...]``). ``--save-set DIR`` writes
the test set in the paired layout, so any SISR model is scored on it with ``zoomsr eval``:

    .venv/bin/python bench/kernelgan.py --save-set out/div2krk_x2 --set-only
    zoomsr eval --model default-x2 --data out/div2krk_x2 --scale 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _shards import parse_shard
from PIL import Image, ImageDraw

from zoomsr.atomic import atomic_write, write_text
from zoomsr.infer.zeroshot import kernel_picture
from zoomsr.io import list_images, read_image
from zoomsr.metrics.conventions import get_convention
from zoomsr.metrics.suite import MetricSuite
from zoomsr.models.registry import load_model
from zoomsr.models.zeroshot.kernelgan import estimate_kernel
from zoomsr.models.zeroshot.kernels import (
    align_kernel,
    bicubic_kernel,
    kernel_similarity,
    random_blindsr_kernel,
)
from zoomsr.ops.color import quantize
from zoomsr.ops.degrade.kernels import blur_downsample
from zoomsr.ops.resize import imresize
from zoomsr.tables import text_table, write_report

REPO = Path(__file__).resolve().parents[1]
SCALE = 2
COLUMNS = [
    "image",
    "kernel",
    "chosen_seed",
    "dead_runs",
    "kernel_ncc",
    "single_ncc",
    "bicubic_ncc",
    "psnr_interp",
    "psnr_zssr_bicubic",
    "psnr_zssr_single",
    "psnr_zssr_kernelgan",
    "psnr_zssr_true",
    "ssim_zssr_bicubic",
    "ssim_zssr_kernelgan",
    "kernelgan_s",
    "zssr_bicubic_s",
    "zssr_kernelgan_s",
]


def degrade(hr: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    lr = blur_downsample(hr, torch.from_numpy(kernel), SCALE)
    return quantize(lr.clamp(0, 1))


def make_test_set(photos: Path, images: int, hr_size: int, seed: int, skip: int = 0) -> list[tuple]:
    """``(name, hr, lr, true_kernel, kernel_params)`` for ``images`` photos from the ``skip``-th
    (sorted by name): the centre ``hr_size`` crop (even) as HR, LR = (HR ⋆ k)[::2, ::2] on 8 bits,
    k seeded per image (by its place in the folder)."""
    items = []
    chosen = list(enumerate(list_images(str(photos))))[skip : skip + images]
    for index, path in chosen:
        hr = read_image(path).color[None]
        h, w = hr.shape[-2:]
        s = min(hr_size, h, w) // SCALE * SCALE
        hr = hr[..., (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        gen = torch.Generator().manual_seed(seed * 1000 + index)
        true_k, params = random_blindsr_kernel(SCALE, gen)
        items.append((path.stem, hr, degrade(hr, true_k), true_k, params))
    return items


def save_test_set(items: list[tuple], root: Path) -> None:
    """``root/HR/NAME.png``, ``root/LR/NAMEx2.png`` (the paired layout ``zoomsr eval`` reads)
    and ``root/kernels/NAME.npy`` (the true kernels, for ``zoomsr upscale --kernel``)."""
    for sub in ("HR", "LR", "kernels"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name, hr, lr, true_k, _ in items:
        for folder, file, img in (("HR", name, hr), ("LR", f"{name}x{SCALE}", lr)):
            pixels = (img[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(pixels).save(root / folder / f"{file}.png")
        np.save(root / "kernels" / f"{name}.npy", true_k)
    print(f"test set of {len(items)} images written to {root}", file=sys.stderr)


def zssr(lr: torch.Tensor, kernel: np.ndarray | None, args) -> tuple[torch.Tensor, float, int]:
    model = load_model("zssr", SCALE, args.device, iterations=args.iterations, seed=args.seed)
    steps, kernels = ((float(SCALE),), [kernel]) if kernel is not None else (None, None)
    started = time.perf_counter()
    sr = model.upscale(lr, steps=steps, kernels=kernels)
    return sr, time.perf_counter() - started, model.last_report.total_iterations


# Version of ZSSR's given-kernel recipe: cached rows of another one get their given-kernel
# columns recomputed (with the cached KernelGAN kernel), the rest is kept.
GIVEN_KERNEL_RECIPE = "kernelgan-zssr"  # plain uniform crops, gradient-weighted L1 (official)


def given_kernel_scores(row: dict, lr, hr, est_k, single_k, true_k, suite, args) -> dict:
    """ZSSR with the estimated kernel, with the first run's alone when the medoid is another
    run's (and optionally with the true kernel), into ``row``."""
    sr_est, t_est, _ = zssr(lr, est_k, args)
    scores = suite(sr_est, hr, SCALE)
    row["psnr_zssr_kernelgan"] = round(scores["psnr"], 3)
    row["ssim_zssr_kernelgan"] = round(scores["ssim"], 4)
    row["zssr_kernelgan_s"] = round(t_est, 1)
    same = np.array_equal(single_k, est_k)
    row["psnr_zssr_single"] = (
        row["psnr_zssr_kernelgan"]
        if same
        else round(suite(zssr(lr, single_k, args)[0], hr, SCALE)["psnr"], 3)
    )
    row["given_kernel_recipe"] = GIVEN_KERNEL_RECIPE
    return true_kernel_score(row, lr, hr, true_k, suite, args) if args.true_kernel else row


def true_kernel_score(row: dict, lr, hr, true_k, suite, args) -> dict:
    """ZSSR with the true kernel (the best any kernel estimate can do), into ``row``."""
    sr_true, _, _ = zssr(lr, true_k, args)
    row["psnr_zssr_true"] = round(suite(sr_true, hr, SCALE)["psnr"], 3)
    return row


def run_image(name, hr, lr, true_k, params, suite, bicubic_k, args) -> tuple[dict, ...]:
    """KernelGAN, then ZSSR with the bicubic and with the estimated kernel, on one test image."""
    started = time.perf_counter()
    est_k, report = estimate_kernel(
        lr,
        SCALE,
        device=args.device,
        iterations=args.kernel_iterations,
        seed=args.seed,
        runs=args.kernel_runs,
    )
    kg_s = time.perf_counter() - started
    single_k = report.runs[0].kernel_x2  # the first seed's run: the published one-run recipe
    sr_bic, t_bic, _ = zssr(lr, None, args)
    interp = imresize(lr.double(), SCALE, levels=255).float()
    row = {
        "image": name,
        "kernel": f"λ {params['lambda1']:.2f}/{params['lambda2']:.2f} θ {params['theta']:.2f}",
        "kernel_ncc": round(kernel_similarity(est_k, true_k), 4),
        "single_ncc": round(kernel_similarity(single_k, true_k), 4),
        "kernel_runs": args.kernel_runs,
        "chosen_seed": report.seed,
        "dead_runs": [r.seed for r in report.runs if not r.prior_met],
        "bicubic_ncc": round(kernel_similarity(bicubic_k, true_k), 4),
        "psnr_interp": round(suite(interp, hr, SCALE)["psnr"], 3),
        "kernelgan_s": round(kg_s, 1),
        "zssr_bicubic_s": round(t_bic, 1),
    }
    scores = suite(sr_bic, hr, SCALE)
    row["psnr_zssr_bicubic"] = round(scores["psnr"], 3)
    row["ssim_zssr_bicubic"] = round(scores["ssim"], 4)
    row = given_kernel_scores(row, lr, hr, est_k, single_k, true_k, suite, args)
    return row, est_k, single_k


def kernel_figure(items: list[tuple[str, list[np.ndarray], list[float]]], path: Path) -> None:
    """One row per image: the true kernel, the first run's and the medoid's (one colour scale a
    row), with their NCC to the true one."""
    heads = ("true", "KernelGAN, 1 run", "KernelGAN, medoid")
    cell, size, pad, label = 12, 17, 10, 18
    side = cell * size
    width = len(heads) * (side + pad) + pad + 160
    height = label + len(items) * (side + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for col, head in enumerate(heads):
        draw.text((pad + col * (side + pad), 2), head, fill="black")
    for row, (name, kernels, nccs) in enumerate(items):
        top = label + row * (side + pad)
        peak = max(k.max() for k in kernels)
        for col, k in enumerate(kernels):
            n = k.shape[0]
            box = np.zeros((size, size))
            o = (size - min(n, size)) // 2
            c = (n - min(n, size)) // 2
            box[o : o + min(n, size), o : o + min(n, size)] = k[c : c + size, c : c + size]
            tile = Image.fromarray(kernel_picture(box, cell, peak))
            canvas.paste(tile, (pad + col * (side + pad), top))
        text = f"{name}\nNCC 1 run {nccs[0]:.3f}\nNCC medoid {nccs[1]:.3f}"
        draw.text((len(heads) * (side + pad) + pad, top + side // 2 - 18), text, fill="black")
    atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))


def with_mean(rows: list[dict], numeric: list[str]) -> list[dict]:
    """``rows`` and a last row of the means of the ``numeric`` columns."""
    means = {c: round(statistics.fmean(r[c] for r in rows), 4) for c in numeric}
    return [*rows, {"image": "mean", **means}]


def cached_row(cache: Path, name: str) -> dict | None:
    path = cache / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def current(row: dict | None, with_true_kernel: bool = False) -> bool:
    """Whether a cached row was made with the current given-kernel recipe (and has the
    true-kernel column, when asked)."""
    if row is None:
        return False
    has_true = "psnr_zssr_true" in row or not with_true_kernel
    return (
        row.get("given_kernel_recipe") == GIVEN_KERNEL_RECIPE and has_true and "kernel_runs" in row
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "data" / "photos")
    p.add_argument("--images", type=int, default=6, help="first N photos (sorted by name)")
    p.add_argument("--hr-size", type=int, default=512, help="centre crop of each photo (HR)")
    p.add_argument("--iterations", type=int, default=3000, help="ZSSR, most per scale step")
    p.add_argument("--kernel-iterations", type=int, default=3000, help="KernelGAN")
    p.add_argument(
        "--kernel-runs", type=int, default=3, help="KernelGAN restarts; the medoid kernel is used"
    )
    p.add_argument("--true-kernel", action="store_true", help="also ZSSR with the true kernel")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--save-set", type=Path, help="also write the test set: DIR/HR, DIR/LR, DIR/kernels"
    )
    p.add_argument("--set-only", action="store_true", help="with --save-set: only write it")
    p.add_argument(
        "--shard",
        default="0/1",
        metavar="I/N",
        help="only every N-th image from the I-th (run N processes; a last plain run writes the table)",
    )
    args = p.parse_args()
    if args.set_only and not args.save_set:
        raise SystemExit("--set-only needs --save-set DIR")
    shard, shards = parse_shard(args.shard)
    if args.images < 1:
        raise SystemExit("--images must be at least 1")

    tag = "kernelgan_x2"
    if (args.iterations, args.kernel_iterations, args.hr_size) != (3000, 3000, 512):
        tag += f"_hr{args.hr_size}_it{args.iterations}_kit{args.kernel_iterations}"
    if args.kernel_runs != 3:
        tag += f"_runs{args.kernel_runs}"
    out = args.out or REPO / "bench" / "results" / tag
    suite = MetricSuite(get_convention("sisr"), ("psnr", "ssim"))
    bicubic_k = align_kernel(bicubic_kernel(SCALE), SCALE)
    test_set = make_test_set(args.photos, args.images, args.hr_size, args.seed)
    if args.save_set:
        save_test_set(test_set, args.save_set)
        if args.set_only:
            return
    cache = Path(str(out) + "_cache")  # one row + kernel per finished image: reruns skip them
    cache.mkdir(parents=True, exist_ok=True)
    for index, (name, hr, lr, true_k, params) in enumerate(test_set):
        row = cached_row(cache, name)
        if index % shards != shard or current(row, args.true_kernel):
            continue
        if current(row):  # only the true-kernel column is missing
            row = true_kernel_score(row, lr, hr, true_k, suite, args)
        else:  # none yet, or made by an older recipe
            row, est_k, single_k = run_image(name, hr, lr, true_k, params, suite, bicubic_k, args)
            np.save(cache / f"{name}_kernel.npy", est_k)
            np.save(cache / f"{name}_kernel_run1.npy", single_k)
        write_text(cache / f"{name}.json", json.dumps(row))  # last: it marks the image done
        print(
            f"{name}: NCC {row['kernel_ncc']} (bicubic {row['bicubic_ncc']}), ZSSR "
            f"{row['psnr_zssr_bicubic']} -> {row['psnr_zssr_kernelgan']} dB",
            file=sys.stderr,
        )
    cached = {name: cached_row(cache, name) for name, *_ in test_set}
    done = [name for name, row in cached.items() if current(row, args.true_kernel)]
    if len(done) < len(test_set):
        print(f"{len(done)} of {len(test_set)} images done (cache {cache}); rerun for the table")
        return
    rows, figure = [], []
    for name, _hr, _lr, true_k, _params in test_set:
        row = {**cached[name], "dead_runs": " ".join(map(str, cached[name]["dead_runs"]))}
        rows.append(row)
        kernels = [np.load(cache / f"{name}_{k}.npy") for k in ("kernel_run1", "kernel")]
        figure.append((name, [true_k, *kernels], [row["single_ncc"], row["kernel_ncc"]]))
    rows = with_mean(rows, [c for c in COLUMNS[4:] if all(c in r for r in rows)])
    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    note = (
        f"{len(test_set)} photos, centre {args.hr_size}px HR, x2 with DIV2KRK-style random kernels "
        f"(seed {args.seed}); KernelGAN {args.kernel_iterations} iterations, "
        f"{args.kernel_runs} runs (seeds {args.seed}..{args.seed + args.kernel_runs - 1}), the "
        "medoid kernel kept (single: the first run alone); ZSSR at most "
        f"{args.iterations} iterations per step, bicubic-kernel recipe vs given-kernel recipe "
        f"({GIVEN_KERNEL_RECIPE}: plain uniform crops, gradient-weighted L1, 2 back-projections); "
        f"{get_convention('sisr').describe(SCALE)}; {args.device}, {threads} thread(s)."
    )
    print(text_table(rows, COLUMNS))
    print(note)
    write_report(out, "KernelGAN kernels for ZSSR (x2)", note, {"kernelgan": (rows, COLUMNS)})
    kernel_figure(figure, Path(str(out) + "_kernels.png"))


if __name__ == "__main__":
    main()
