"""Peak memory and time of ``zoomsr upscale`` on a large photo, measured with /usr/bin/time -v.

    .venv/bin/python bench/upscale_memory.py                    # default-x2 on the 12 MP iPhone wide shot
    .venv/bin/python bench/upscale_memory.py --model bicubic --scale 2 --tile 0

Prints a Markdown table and writes it (and JSON) next to --out.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO.parent / "shared" / "data" / "dualzoom" / "iphone11pro_IMG_20" / "wide.jpg"


def measure(model: str, scale: int, image: Path, extra: list[str]) -> dict:
    zoomsr = Path(sys.executable).with_name("zoomsr")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        cmd = ["/usr/bin/time", "-v", str(zoomsr), "upscale", str(image), "-o", str(out)]
        cmd += ["--model", model, "--scale", str(scale), "-q", *extra]
        started = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.time() - started
        if proc.returncode != 0:
            raise SystemExit(f"zoomsr failed: {proc.stderr.strip().splitlines()[-1]}")
        rss_kb = int(
            re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)
        )
    return {
        "model": model,
        "scale": scale,
        "input": image.name,
        "options": " ".join(extra) or "(defaults)",
        "peak_rss_gib": round(rss_kb / 2**20, 2),
        "seconds": round(seconds, 1),
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
    cols = list(row)
    table = "\n".join(
        [
            "| " + " | ".join(cols) + " |",
            "|" + "---|" * len(cols),
            "| " + " | ".join(str(row[c]) for c in cols) + " |",
        ]
    )
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
