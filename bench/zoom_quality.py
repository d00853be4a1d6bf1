"""The zoom family against single-image baselines, all trained under one budget.

Every trained row runs its recipe (its configs/ file, shrunk by the shared budget overrides
below) from the same seed on the same simulated triple-zoom captures, then every row is scored
on held-out captures with the same padding and regions: full / corner / centre PSNR, SSIM and
LPIPS (selfdzsr convention) with GT and Refs put in the LR's geometry (``zoomsr eval``'s default:
the frame of the official test data and of ``zoomsr prepare``, tele aligned to wide), the PSNRs
again on the files as captured (``_captured``), trainable parameters, and seconds per output
megapixel of the model's run on this machine.

    zoomsr simulate --photos ../shared/data/photos --ratio 4 --refs 2,4 -o data/sim_triple \\
        --max-size 1024
    zoomsr simulate --photos ../shared/data/Set14/HR --ratio 4 --refs 2,4 \\
        -o data/sim_triple_val --seed 1
    .venv/bin/python bench/zoom_quality.py --train data/sim_triple --val data/sim_triple_val
    # the README's table: runs trained to 450 steps at a constant lr, then
    .venv/bin/python bench/zoom_quality.py --train ... --val ... --steps 600 --decay-at 450

The dual-zoom models train and test on the same captures with the x4 Ref only; the EDSR-baseline
learns LR -> GT of the same captures with L1 (the supervised answer to the same data, misaligned
as it is). Runs live in --runs and resume, so ``--steps`` can grow across calls: each call adds
the scores at its step count to ``history.json`` there, and the trend table shows them all.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from zoomsr.infer.evaluate import evaluate_zoom
from zoomsr.infer.zoom import ZoomOptions
from zoomsr.metrics import MetricSuite, get_convention
from zoomsr.models.registry import load_model
from zoomsr.tables import text_table, write_report
from zoomsr.train.config import load_config
from zoomsr.train.engine import Trainer

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

# label -> a registered model scored as it is, or a config trained under the budget (+ overrides).
ROWS = {
    "bicubic": {"model": "bicubic"},
    "default SISR (shipped)": {"model": "default-x4"},
    "EDSR-baseline": {"config": "sisr/default_x4.yaml", "sisr": True},
    "SelfDZSR": {"config": "zoom/selfdzsr_x4.yaml"},
    "SelfDZSR++ l1": {"config": "zoom/selfdzsr_pp_x4.yaml", "set": ["loss=1*L1"]},
    "SelfDZSR++ l1+LOSW": {"config": "zoom/selfdzsr_pp_x4.yaml"},
    "SelfTZSR++ l1": {"config": "zoom/selftzsr_pp_x4.yaml", "set": ["loss=1*L1"]},
    "SelfTZSR++ l1+LOSW": {"config": "zoom/selftzsr_pp_x4.yaml"},
}
METRICS = ("psnr", "ssim", "lpips")
REGIONS = ("full", "corner", "centre")


def budget_overrides(args, sisr: bool) -> list[str]:
    """The shared budget: same steps, batch, patch, width, depth, optimiser and lr (constant,
    or cut tenfold from step ``--decay-at``)."""
    common = [
        f"data.train.zoom=[{args.train}]",
        f"data.val.path={args.val}",
        f"data.val.every={args.steps}",
        f"data.batch={args.batch}",
        "data.workers=0",
        f"optim.lr={args.lr}",
        "schedule.name=step",
        # constant lr (the budget, not a schedule, is compared), or one tenfold cut
        f"schedule.step={args.decay_at or 100000000}",
        "schedule.gamma=0.1",
        f"run.steps={args.steps}",
        f"run.checkpoint_every={args.checkpoint_every}",
        f"run.seed={args.seed}",
    ]
    if sisr:
        return [
            *common,
            "data.train.hr=[]",
            f"data.train.patch={4 * args.patch}",
            "loss=1*L1",
            "model.config.n_resblocks=" + str(args.blocks),
            f"model.config.n_feats={args.feats}",
        ]
    return [
        *common,
        f"data.train.lr_patch={args.patch}",
        f"model.config.n_feats={args.feats}",
        f"model.config.n_blocks={args.blocks}",
    ]


def train_row(label: str, recipe: dict, args) -> tuple[Path, int]:
    """Train (or resume) one row's recipe; returns its model file and step."""
    out = args.runs / label.replace(" ", "_").replace("+", "p")
    overrides = [*budget_overrides(args, recipe.get("sisr", False)), f"run.out={out}"]
    cfg = load_config(CONFIGS / recipe["config"], [*overrides, *recipe.get("set", [])])
    trainer = Trainer(cfg, resume=(out / "state.pt").exists(), quiet=args.quiet)
    trainer.fit()
    return out / "last.safetensors", trainer.step


def score(model: torch.nn.Module, label: str, args) -> dict:
    """The metrics with GT and Refs in the LR's geometry (``zoomsr eval``'s default), full /
    corner / centre PSNR again on the files as captured (``--gt captured``), params, s/MP."""
    opts = ZoomOptions(method="whole", quiet=True)
    suite = MetricSuite(get_convention("selfdzsr"), METRICS, REGIONS)
    report = evaluate_zoom(model, [args.val], suite, label, opts)
    rows = report.per_image
    seconds = sum(r["seconds"] for r in rows) / sum(r["megapixels"] for r in rows)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    row = {k: v for k, v in report.summary[0].items() if k in suite.columns}
    psnr = MetricSuite(get_convention("selfdzsr"), ("psnr",), REGIONS)
    captured = evaluate_zoom(model, [args.val], psnr, label, opts, align_gt=False).summary[0]
    row.update({f"{k}_captured": captured[k] for k in psnr.columns})
    return {"model": label, **row, "params": params, "s_per_mp": round(seconds, 3)}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--train", required=True, help="simulated x4 triple-zoom training captures")
    p.add_argument("--val", required=True, help="held-out simulated x4 triple-zoom captures")
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "zoom_quality")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "zoom_quality"))
    p.add_argument("--rows", default=",".join(ROWS), help="comma-separated subset of the rows")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=32, help="LR patch side")
    p.add_argument("--feats", type=int, default=32)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument(
        "--decay-at",
        type=int,
        default=None,
        metavar="STEP",
        help="cut the lr tenfold from this step on (default: constant); resumed runs keep their "
        "earlier steps, so the trend table reads on from them",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args()

    labels = [v.strip() for v in args.rows.split(",") if v.strip()]
    unknown = [n for n in labels if n not in ROWS]
    if unknown:
        raise SystemExit(f"zoom_quality: unknown row(s) {unknown}; choose from {list(ROWS)}")
    args.runs.mkdir(parents=True, exist_ok=True)
    history_file = args.runs / "history.json"
    history = json.loads(history_file.read_text()) if history_file.is_file() else {}

    rows = []
    for label in labels:
        recipe = ROWS[label]
        if "model" in recipe:
            row = {**score(load_model(recipe["model"], 4), label, args), "steps": "-"}
        else:
            path, step = train_row(label, recipe, args)
            row = {**score(load_model(str(path)), label, args), "steps": step}
            # Re-read first: rows may train in parallel processes sharing --runs.
            if history_file.is_file():
                history = {**history, **json.loads(history_file.read_text())}
            history.setdefault(label, {})[str(step)] = row["psnr"]
            history_file.write_text(json.dumps(history, indent=1))
        rows.append(row)
        columns = list(rows[0])
        print(text_table(rows, columns), flush=True)

    steps = sorted({int(s) for h in history.values() for s in h})
    trend = [
        {"model": label, **{f"psnr@{s}": history[label].get(str(s), "") for s in steps}}
        for label in labels
        if label in history
    ]
    lr_text = f"cut to {args.lr / 10:g} from step {args.decay_at}" if args.decay_at else "constant"
    budget = (
        f"trained rows: {args.steps} steps, batch {args.batch}, LR patch {args.patch}, "
        f"{args.feats} features, {args.blocks} blocks, Adam {args.lr:g} {lr_text}, seed "
        f"{args.seed}, {torch.get_num_threads()} CPU thread(s); train {args.train}, held-out "
        f"{args.val}; GT and Refs in the LR's geometry (_captured: as the files are); s_per_mp = seconds per output megapixel"
    )
    tables = {"quality": (rows, list(rows[0]))}
    if trend:
        tables["full-image PSNR over training"] = (trend, list(trend[0]))
        print(text_table(trend, list(trend[0])))
    paths = write_report(args.out, "Zoom models vs single-image baselines", budget, tables)
    print(budget)
    print("written: " + ", ".join(str(x) for x in paths))


if __name__ == "__main__":
    main()
