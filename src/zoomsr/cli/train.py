"""``zoomsr train``: train a model from a YAML recipe."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  zoomsr train configs/course/postup_x2_tv.yaml
  zoomsr train configs/sisr/edsr_baseline_x2.yaml --set optim.lr=2e-4 --set run.steps=500
  zoomsr train configs/sisr/edsr_baseline_x2.yaml --resume            # continue exactly
  zoomsr train configs/sisr/edsr_baseline_x4.yaml --init runs/x2/best.safetensors
  torchrun --nproc_per_node 4 -m zoomsr train configs/sisr/default_x2.yaml   # 4 processes, DDP
  zoomsr train configs/zoom/selfdzsr_x4.yaml --stage auxlr --out runs/selfdzsr_x4_auxlr
  zoomsr train configs/zoom/selfdzsr_x4.yaml \
      --set zoom.auxlr_init=runs/selfdzsr_x4_auxlr/auxlr.safetensors
Paths in configs may use ${oc.env:ZOOMSR_SHARED,../shared}.
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train a model from a YAML config with optional key=value overrides.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (repeatable)",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in run.out from its last checkpoint"
    )
    p.add_argument(
        "--init", metavar="WEIGHTS", help="fine-tune from these weights (matching tensors only)"
    )
    p.add_argument("--out", metavar="DIR", help="run folder (overrides run.out)")
    p.add_argument("--steps", type=int, help="total steps (overrides run.steps)")
    p.add_argument("--device", help="cpu, cuda or auto (overrides run.device)")
    p.add_argument(
        "--stage",
        choices=("auxlr", "joint"),
        help="zoom models: pre-train the aux-LR generator alone, or train jointly (zoom.stage)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args) -> int:
    from zoomsr.cli.common import flag_overrides
    from zoomsr.train import distributed
    from zoomsr.train.config import load_config
    from zoomsr.train.engine import Trainer

    overrides = flag_overrides(
        args.overrides,
        {
            "run.init": args.init,
            "run.out": args.out,
            "run.steps": args.steps,
            "run.device": args.device,
            "zoom.stage": args.stage,
        },
    )
    cfg = load_config(args.config, overrides)
    summary = Trainer(cfg, resume=args.resume, quiet=args.quiet).fit()
    distributed.cleanup()  # under torchrun; a failing rank just exits and torchrun stops the rest
    if not distributed.is_main():
        return 0
    best = summary.get("best_psnr")
    best_text = f", best val PSNR {best:.3f}" if best is not None and best > float("-inf") else ""
    weights = ", ".join(summary.get("weights") or [f"{cfg.run.out}/last.safetensors"])
    print(f"done: step {summary['step']}{best_text}; weights in {weights}")
    return 0
