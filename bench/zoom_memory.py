"""Peak memory and time of ``zoomsr zoom`` on the full 12 MP iPhone 11 Pro pair, /usr/bin/time -v.

    .venv/bin/python bench/zoom_memory.py --model selfdzsr-pp-x2
    .venv/bin/python bench/zoom_memory.py --random-weights selfdzsr-pp --scale 2

Time and memory do not depend on the weights: ``--random-weights ARCH`` measures an untrained
network of that architecture (saved to a temporary file) when no trained one is at hand.
Extra arguments go to ``zoomsr zoom`` (e.g. ``--tile 128``). Prints a table and writes it as
--out.md, .csv and .json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _measure import report_row, run_timed

REPO = Path(__file__).resolve().parents[1]
PAIR = REPO.parent / "shared" / "data" / "dualzoom" / "iphone11pro_IMG_20"


def random_model(arch: str, scale: int, folder: Path) -> Path:
    import torch

    from zoomsr.models.checkpoints import save_weights
    from zoomsr.models.registry import load_model

    torch.manual_seed(0)
    return save_weights(
        load_model(arch, scale, "cpu"), folder / f"{arch}_x{scale}_random.safetensors"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="selfdzsr-pp-x2", help="name or .safetensors")
    p.add_argument("--random-weights", metavar="ARCH", help="measure an untrained ARCH instead")
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--wide", type=Path, default=PAIR / "wide.jpg")
    p.add_argument("--tele", type=Path, default=PAIR / "tele.jpg")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "zoom_memory")
    args, extra = p.parse_known_args()
    zoomsr = Path(sys.executable).with_name("zoomsr")
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if args.random_weights:
            model = str(random_model(args.random_weights, args.scale, Path(tmp)))
        cmd = [str(zoomsr), "zoom", str(args.wide), "--ref", str(args.tele)]
        cmd += ["-o", str(Path(tmp) / "out.png"), "--model", model, "-q", *extra]
        timed = run_timed(cmd)
    row = {
        "model": f"{args.random_weights} (untrained)" if args.random_weights else args.model,
        "scale": args.scale,
        "input": f"{args.wide.parent.name}: {args.wide.name} + {args.tele.name}",
        "options": " ".join(extra) or "(defaults)",
        **timed,
    }
    report_row(row, args.out, "zoomsr zoom: peak memory and time")


if __name__ == "__main__":
    main()
