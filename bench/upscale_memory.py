"""Peak memory and time of ``zoomsr upscale`` on a large photo, measured with /usr/bin/time -v.

    .venv/bin/python bench/upscale_memory.py                    # default-x2 on the 12 MP iPhone wide shot
    .venv/bin/python bench/upscale_memory.py --model bicubic --scale 2 --tile 0

Prints a table and writes it as --out.md, .csv and .json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _measure import report_row, run_timed

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO.parent / "shared" / "data" / "dualzoom" / "iphone11pro_IMG_20" / "wide.jpg"


def measure(model: str, scale: int, image: Path, extra: list[str]) -> dict:
    zoomsr = Path(sys.executable).with_name("zoomsr")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        cmd = [str(zoomsr), "upscale", str(image), "-o", str(out)]
        cmd += ["--model", model, "--scale", str(scale), "-q", *extra]
        timed = run_timed(cmd)
    return {
        "model": model,
        "scale": scale,
        "input": image.name,
        "options": " ".join(extra) or "(defaults)",
        **timed,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="default-x2")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--image", type=Path, default=DEFAULT_INPUT)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "upscale_memory")
    args, extra = p.parse_known_args()
    row = measure(args.model, args.scale, args.image, extra)
    report_row(row, args.out, "zoomsr upscale: peak memory and time")


if __name__ == "__main__":
    main()
