"""Copy a training run's weights into zoomsr/weights and record them in the manifest.

    .venv/bin/python tools/ship_weights.py default-x2 /work/zoomsr_runs/default_x2 \
        --data "SR291 (shared/data/SR291/HR)" --command "zoomsr train configs/sisr/default_x2.yaml" \
        --hardware "2-core x86-64 CPU, 1 thread" --hours 2.1

The file keeps zoomsr's model metadata, so ``load_model`` rebuilds the architecture from it.
Zoom models: ``--half`` stores float16 (loaded back into float32) and ``--drop-imagenet-matcher``
leaves out the frozen ImageNet VGG16 matcher, which loading rebuilds from the backbone cache;
together they keep a SelfDZSR++ file near 4 MB.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.torch import save_file

from zoomsr.models.checkpoints import read_weights, shipping_state
from zoomsr.models.zoo import MANIFEST, WEIGHTS_DIR, read_manifest, sha256_file


def read_results(text: str) -> dict:
    if text.endswith(".json"):
        text = Path(text).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SystemExit(f"ship_weights: --results is not JSON ({err})") from None


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
    p.add_argument("--steps", type=int, help="total steps, when the run fine-tuned another run")
    p.add_argument(
        "--results", default=None, help="benchmark results to record: JSON text or a .json file"
    )
    p.add_argument("--half", action="store_true", help="store float16 tensors")
    p.add_argument(
        "--drop-imagenet-matcher",
        action="store_true",
        help="zoom models: leave out matcher.* (an ImageNet VGG16 matcher, rebuilt on load)",
    )
    args = p.parse_args()

    try:
        state, meta = shipping_state(
            *read_weights(args.run / f"{args.which}.safetensors"),
            args.half,
            args.drop_imagenet_matcher,
        )
    except ValueError as err:
        raise SystemExit(f"ship_weights: {err}") from None
    dst = WEIGHTS_DIR / f"{args.name}.safetensors"
    save_file(state, str(dst), metadata=meta)
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
        "steps": args.steps or int(meta.get("step", 0)),
        "loss": meta.get("loss"),
        "data": args.data,
        "command": args.command,
        "hardware": args.hardware,
        "train_hours": args.hours,
        "results": read_results(args.results) if args.results else None,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{args.name}: {dst} ({dst.stat().st_size / 1e6:.2f} MB), manifest updated")


if __name__ == "__main__":
    main()
