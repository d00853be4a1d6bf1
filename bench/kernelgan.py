"""KernelGAN + ZSSR on photos degraded by random anisotropic Gaussian kernels (DIV2KRK-style), x2.

    OMP_NUM_THREADS=2 .venv/bin/python bench/kernelgan.py                 # 6 photos, the recipes
    .venv/bin/python bench/kernelgan.py --images 1 --hr-size 192 --iterations 30 --kernel-iterations 100

Test set (the KernelGAN paper's DIV2KRK procedure, via the authors' BlindSR_dataset_generator):
each HR is the centre ``--hr-size`` crop of a photo from ../shared/data/photos; its kernel is an
11x11 anisotropic Gaussian with covariance eigenvalues U(0.35, 5), angle U(0, π) and ±40%
multiplicative noise per tap (seeded per image); LR = (HR ⋆ k)[::2, ::2], saved to 8 bits.

For each image: KernelGAN estimates the kernel from the LR alone; ZSSR x2 runs with the
bicubic kernel (its ideal-case recipe) and with the estimated kernel (its given-kernel recipe);
``--true-kernel`` adds ZSSR with the true kernel (an upper bound). PSNR/SSIM follow the SISR
convention (Y, shave 2, 8-bit output). ``kernel_ncc`` is the normalised correlation of a kernel
with the true one. Writes the table (md/csv/json) and a figure of true vs estimated kernels
(PNG) to ``--out`` (default ``bench/results/kernelgan_x2[...]``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from zoomsr.atomic import atomic_write
from zoomsr.infer.zeroshot import kernel_picture
from zoomsr.io import list_images, read_image
from zoomsr.metrics.conventions import get_convention
from zoomsr.metrics.suite import MetricSuite
from zoomsr.models.registry import load_model
from zoomsr.models.zeroshot.kernelgan import estimate_kernel
from zoomsr.models.zeroshot.kernels import (
    align_kernel,
    bicubic_kernel,
    downscale_with_kernel,
    kernel_similarity,
    random_blindsr_kernel,
)
from zoomsr.ops.color import quantize
from zoomsr.ops.resize import imresize
from zoomsr.tables import text_table, write_report

REPO = Path(__file__).resolve().parents[1]
SCALE = 2
COLUMNS = [
    "image",
    "kernel",
    "kernel_ncc",
    "bicubic_ncc",
    "psnr_interp",
    "psnr_zssr_bicubic",
    "psnr_zssr_kernelgan",
    "psnr_zssr_true",
    "ssim_zssr_bicubic",
    "ssim_zssr_kernelgan",
    "kernelgan_s",
    "zssr_s",
]


def degrade(hr: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    lr = downscale_with_kernel(hr, torch.from_numpy(kernel), SCALE)
    return quantize(lr.clamp(0, 1))


def zssr(lr: torch.Tensor, kernel: np.ndarray | None, args) -> tuple[torch.Tensor, float, int]:
    model = load_model("zssr", SCALE, args.device, iterations=args.iterations, seed=args.seed)
    steps, kernels = ((float(SCALE),), [kernel]) if kernel is not None else (None, None)
    started = time.perf_counter()
    sr = model.upscale(lr, steps=steps, kernels=kernels)
    return sr, time.perf_counter() - started, model.last_report.total_iterations


def kernel_figure(items: list[tuple[str, np.ndarray, np.ndarray, float]], path: Path) -> None:
    """One row per image: true kernel, estimated kernel (same scale each), and their NCC."""
    cell, size, pad, label = 12, 17, 10, 18
    side = cell * size
    width = 2 * side + 3 * pad + 150
    height = label + len(items) * (side + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((pad, 2), "true", fill="black")
    draw.text((2 * pad + side, 2), "KernelGAN", fill="black")
    for row, (name, true, est, ncc) in enumerate(items):
        top = label + row * (side + pad)
        peak = max(true.max(), est.max())
        for col, k in enumerate((true, est)):
            n = k.shape[0]
            box = np.zeros((size, size))
            o = (size - min(n, size)) // 2
            c = (n - min(n, size)) // 2
            box[o : o + min(n, size), o : o + min(n, size)] = k[c : c + size, c : c + size]
            tile = Image.fromarray(kernel_picture(box, cell, peak))  # one colour scale a pair
            canvas.paste(tile, (pad + col * (side + pad), top))
        draw.text(
            (3 * pad + 2 * side, top + side // 2 - 12), f"{name}\nNCC {ncc:.3f}", fill="black"
        )
    atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG"))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "data" / "photos")
    p.add_argument("--images", type=int, default=6, help="first N photos (sorted by name)")
    p.add_argument("--hr-size", type=int, default=512, help="centre crop of each photo (HR)")
    p.add_argument("--iterations", type=int, default=3000, help="ZSSR, most per scale step")
    p.add_argument("--kernel-iterations", type=int, default=3000, help="KernelGAN")
    p.add_argument("--true-kernel", action="store_true", help="also ZSSR with the true kernel")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    if args.images < 1:
        raise SystemExit("--images must be at least 1")

    tag = "kernelgan_x2"
    if (args.iterations, args.kernel_iterations, args.hr_size) != (3000, 3000, 512):
        tag += f"_hr{args.hr_size}_it{args.iterations}_kit{args.kernel_iterations}"
    out = args.out or REPO / "bench" / "results" / tag
    suite = MetricSuite(get_convention("sisr"), ("psnr", "ssim"))
    bicubic_k = align_kernel(bicubic_kernel(SCALE), SCALE)
    photos = list_images(str(args.photos))[: args.images]
    rows, figure = [], []
    for index, path in enumerate(photos):
        hr = read_image(path).color[None]
        h, w = hr.shape[-2:]
        s = min(args.hr_size, h, w) // SCALE * SCALE
        hr = hr[..., (h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        gen = torch.Generator().manual_seed(args.seed * 1000 + index)
        true_k, params = random_blindsr_kernel(SCALE, gen)
        lr = degrade(hr, true_k)

        started = time.perf_counter()
        est_k, _ = estimate_kernel(
            lr, SCALE, device=args.device, iterations=args.kernel_iterations, seed=args.seed
        )
        kg_s = time.perf_counter() - started
        sr_bic, t_bic, _ = zssr(lr, None, args)
        sr_est, t_est, _ = zssr(lr, est_k, args)
        interp = imresize(lr.double(), SCALE, levels=255).float()
        row = {
            "image": path.stem,
            "kernel": f"λ {params['lambda1']:.2f}/{params['lambda2']:.2f} θ {params['theta']:.2f}",
            "kernel_ncc": round(kernel_similarity(est_k, true_k), 4),
            "bicubic_ncc": round(kernel_similarity(bicubic_k, true_k), 4),
            "psnr_interp": round(suite(interp, hr, SCALE)["psnr"], 3),
            "kernelgan_s": round(kg_s, 1),
            "zssr_s": round(t_bic + t_est, 1),
        }
        for name, sr in (("bicubic", sr_bic), ("kernelgan", sr_est)):
            scores = suite(sr, hr, SCALE)
            row[f"psnr_zssr_{name}"] = round(scores["psnr"], 3)
            row[f"ssim_zssr_{name}"] = round(scores["ssim"], 4)
        if args.true_kernel:
            sr_true, t_true, _ = zssr(lr, true_k, args)
            row["psnr_zssr_true"] = round(suite(sr_true, hr, SCALE)["psnr"], 3)
            row["zssr_s"] = round(row["zssr_s"] + t_true, 1)
        rows.append(row)
        figure.append((path.stem, true_k, est_k, row["kernel_ncc"]))
        print(
            f"{path.stem}: NCC {row['kernel_ncc']} (bicubic {row['bicubic_ncc']}), ZSSR "
            f"{row['psnr_zssr_bicubic']} -> {row['psnr_zssr_kernelgan']} dB",
            file=sys.stderr,
        )
    numeric = [c for c in COLUMNS[2:] if all(c in r for r in rows)]
    rows.append(
        {"image": "mean", **{c: round(statistics.fmean(r[c] for r in rows), 4) for c in numeric}}
    )
    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    note = (
        f"{len(photos)} photos, centre {args.hr_size}px HR, x2 with DIV2KRK-style random kernels "
        f"(seed {args.seed}); KernelGAN {args.kernel_iterations} iterations; ZSSR at most "
        f"{args.iterations} iterations per step, bicubic-kernel recipe vs given-kernel recipe; "
        f"{get_convention('sisr').describe(SCALE)}; {args.device}, {threads} thread(s)."
    )
    print(text_table(rows, COLUMNS))
    print(note)
    write_report(out, "KernelGAN kernels for ZSSR (x2)", note, {"kernelgan": (rows, COLUMNS)})
    kernel_figure(figure, Path(str(out) + "_kernels.png"))


if __name__ == "__main__":
    main()
