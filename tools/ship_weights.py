"""Copy a training run's weights into zoomsr/weights and record them in the manifest.

    .venv/bin/python tools/ship_weights.py default-x2 /work/zoomsr_runs/default_x2 \
        --data "SR291 (shared/data/SR291/HR)" --command "zoomsr train configs/sisr/default_x2.yaml" \
        --hardware "2-core x86-64 CPU, 1 thread" --hours 2.1

The file keeps zoomsr's model metadata, so ``load_model`` rebuilds the architecture from it.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors import safe_open

from zoomsr.models.zoo import MANIFEST, WEIGHTS_DIR, read_manifest, sha256_file


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("name", help="registered name, e.g. default-x2")
    p.add_argument("run", type=Path, help="run folder with last.safetensors / best.safetensors")
    p.add_argument("--which", default="last", choices=["last", "best"])
    p.add_argument("--data", required=True)
    p.add_argument("--command", required=True)
    p.add_argument("--hardware", required=True)
    p.add_argument("--hours", type=float, required=True)
    p.add_argument("--summary", default=None)
    p.add_argument("--results", default=None, help="JSON of benchmark results to record")
    args = p.parse_args()

    src = args.run / f"{args.which}.safetensors"
    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    dst = WEIGHTS_DIR / f"{args.name}.safetensors"
    shutil.copyfile(src, dst)
    manifest = read_manifest()
    config = json.loads(meta.get("config", "{}"))
    manifest["models"][args.name] = {
        "file": dst.name,
        "sha256": sha256_file(dst),
        "bytes": dst.stat().st_size,
        "model": meta["model"],
        "scale": int(meta["scale"]),
        "config": config,
        "summary": args.summary or f"shipped default x{meta['scale']}: {meta['model']} {config}",
        "steps": int(meta.get("step", 0)),
        "loss": meta.get("loss"),
        "data": args.data,
        "command": args.command,
        "hardware": args.hardware,
        "train_hours": args.hours,
        "results": json.loads(args.results) if args.results else None,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{args.name}: {dst} ({dst.stat().st_size / 1e6:.2f} MB), manifest updated")


if __name__ == "__main__":
    main()
