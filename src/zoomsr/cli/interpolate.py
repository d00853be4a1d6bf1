"""``zoomsr interpolate``: blend the weights of two models of one architecture (ESRGAN-style)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "interpolate",
        help="blend two models' weights: (1-alpha)*A + alpha*B",
        description="Network interpolation: blend the parameters of two models of the same "
        "architecture, e.g. a PSNR-oriented and a GAN-trained one, to trade fidelity for detail.",
    )
    p.add_argument("a", help="first model file (.safetensors)")
    p.add_argument("b", help="second model file (.safetensors)")
    p.add_argument("--alpha", type=float, required=True, help="weight of B, in [0, 1]")
    p.add_argument("-o", "--output", required=True, help="output .safetensors file")
    p.set_defaults(func=run)


def run(args) -> int:
    from zoomsr.models.interpolate import interpolate_files

    out = interpolate_files(args.a, args.b, args.alpha, args.output)
    print(f"wrote {out}")
    return 0
