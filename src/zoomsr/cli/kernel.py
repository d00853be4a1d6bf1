"""``zoomsr kernel``: estimate an image's SR kernel with KernelGAN."""

from __future__ import annotations

import argparse

from zoomsr.cli.common import add_common_flags, resolve_device

EPILOG = """\
examples:
  zoomsr kernel photo.png -o photo_k2.npy --scale 2 --plot photo_k2.png
  zoomsr upscale photo.png -o photo_x2.png --model zssr --scale 2 --kernel photo_k2.npy
The kernel is a float32 .npy array summing to 1, aligned as ZSSR uses it (KernelGAN's
convention). x4 kernels are the x2 estimate applied twice. One run of 3000 iterations takes
about a minute on 2 CPU cores; by default three seeded runs are made and the kernel they agree
on most (the medoid) is kept, since a single run sometimes fails (--runs 1: the published
recipe).
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "kernel",
        help="estimate an image's SR (downscaling) kernel with KernelGAN",
        description="Estimate the SR kernel of one image with KernelGAN (trained on the image itself).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="IN", help="image file")
    p.add_argument("-o", "--output", required=True, metavar="K.npy", help="kernel file to write")
    p.add_argument("--scale", type=int, required=True, help="SR factor of the kernel: 2 or 4")
    p.add_argument("--plot", metavar="K.png", help="also write a picture of the kernel")
    p.add_argument(
        "--iterations", type=int, default=None, help="KernelGAN iterations (default 3000)"
    )
    p.add_argument(
        "--runs",
        type=int,
        default=None,
        help="KernelGAN runs (seeds SEED, SEED+1, ...); the medoid kernel is kept (default 3)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_common_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from zoomsr.cli.zeroshot import iteration_progress
    from zoomsr.errors import ZoomsrError
    from zoomsr.infer.zeroshot import kernel_file

    if args.iterations is not None and args.iterations < 1:
        raise ZoomsrError(f"--iterations must be at least 1, got {args.iterations}")
    if args.runs is not None and args.runs < 1:
        raise ZoomsrError(f"--runs must be at least 1, got {args.runs}")
    kernel, path = kernel_file(
        args.input,
        args.output,
        args.scale,
        plot=args.plot,
        iterations=args.iterations,
        runs=args.runs,
        seed=args.seed,
        device=resolve_device(args.device),
        progress=iteration_progress(args.quiet),
    )
    if not args.quiet:
        print(f"{args.input} -> {path} ({kernel.shape[0]}x{kernel.shape[1]}, x{args.scale})")
    return 0
