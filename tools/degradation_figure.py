"""The figure of docs/degradations.md: a row per preset, its LR samples of one HR crop.

    .venv/bin/python tools/degradation_figure.py            # -> docs/degradation_samples.png

Each row shows the HR crop, then ``--samples`` LR images drawn by the preset from seeds 0, 1, ...
(x4; shown enlarged by pixel repetition, so the LR pixels stay visible). Deterministic: the same
seeds give the same figure.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from zoomsr.atomic import atomic_write
from zoomsr.io import read_image
from zoomsr.ops.degrade import PRESETS, degrade

REPO = Path(__file__).resolve().parents[1]
LABEL = 110  # px for the row labels


def to_pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray((x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--image",
        type=Path,
        default=REPO.parent / "shared" / "data" / "Set14" / "HR" / "baboon.png",
    )
    p.add_argument("--crop", type=int, default=128, help="HR crop side (a multiple of the scale)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "degradation_samples.png")
    args = p.parse_args()

    img = read_image(args.image).color
    h, w = img.shape[-2:]
    c = args.crop
    hr = img[:, (h - c) // 2 : (h - c) // 2 + c, (w - c) // 2 : (w - c) // 2 + c][None]
    rows = [("HR\ncrop", [hr[0]])]  # (the default font draws no spaces)
    for preset in PRESETS:
        lrs = [degrade(hr, preset, args.scale, seed=s)[0][0] for s in range(args.samples)]
        # Pixel repetition back to the HR size; Real-ESRGAN's final resize can differ by a pixel.
        shown = [F.interpolate(lr[None], size=(c, c), mode="nearest")[0] for lr in lrs]
        rows.append((f"{preset}\nx{args.scale}\nseeds\n0-{args.samples - 1}", shown))

    pad = 6
    width = LABEL + args.samples * (c + pad) + pad
    canvas = Image.new("RGB", (width, len(rows) * (c + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, tiles) in enumerate(rows):
        top = pad + r * (c + pad)
        draw.multiline_text((pad, top + 4), label, fill="black")
        for i, tile in enumerate(tiles):
            canvas.paste(to_pil(tile), (LABEL + i * (c + pad), top))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, lambda tmp: canvas.save(tmp, format="PNG", optimize=True))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
