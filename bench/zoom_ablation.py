"""SelfDZSR ablation under one small training budget: what the Ref, matching and AdaSTN buy.

Trains the same SelfDZSR recipe (configs/zoom/selfdzsr_x4.yaml, shrunk by the overrides below)
once per variant, from the same seed and data order, then scores each on held-out simulated
captures (whole image, full / centre / corner PSNR, selfdzsr convention), with GT and Ref put in
the LR's geometry (``zoomsr eval``'s default) and again on the files as they are (``_captured``):

    zoomsr simulate --photos ../shared/data/photos --ratio 4 -o data/sim_x4 --max-size 1024
    zoomsr simulate --photos ../shared/data/Set14/HR --ratio 4 -o data/sim_x4_val --seed 1
    .venv/bin/python bench/zoom_ablation.py --train data/sim_x4 --val data/sim_x4_val

At x2 the Ref covers a quarter of the image instead of a sixteenth (simulate with --ratio 2 and
pass --config configs/zoom/selfdzsr_x2.yaml).

Runs live in --runs (one folder per variant) and are resumed, so an interrupted bench continues;
each variant's scores at a step count are kept in its folder (scores_<steps>.json), so a finished
variant is not scored again. Prints the table and writes it as md/csv/json to --out. Variants run
as separate processes (one --variants each, same --runs) or several seeds and lengths (one --runs
per seed) are put in one table with ``--collect RUNS [RUNS ...]``, which trains nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from zoomsr.atomic import write_text
from zoomsr.infer.evaluate import evaluate_zoom
from zoomsr.infer.zoom import ZoomOptions
from zoomsr.metrics import MetricSuite, get_convention
from zoomsr.tables import text_table, write_report
from zoomsr.train.config import load_config
from zoomsr.train.engine import Trainer

REPO = Path(__file__).resolve().parents[1]

# name -> model.config overrides; the first is the published design.
VARIANTS = {
    "selfdzsr": {},
    "ref zeroed": {"use_ref": False},
    "no alignment": {"align": "none"},
    "deformable conv": {"align": "deform"},
    "no matching": {"matching": False},
}

COLUMNS = [
    "variant",
    "seed",
    "steps",
    "psnr",
    "psnr_centre",
    "psnr_corner",
    "psnr_captured",
    "psnr_centre_captured",
    "psnr_corner_captured",
    "params",
    "train_s",
]


def scores(model: torch.nn.Module, val: str) -> dict[str, float]:
    """Whole-image PSNR on the held-out captures with GT and Ref in the LR's geometry
    (``zoomsr eval``'s default), and on the files as they are (``--gt captured``)."""
    suite = MetricSuite(get_convention("selfdzsr"), ("psnr",), ("full", "centre", "corner"))
    row = {}
    for align, suffix in ((True, ""), (False, "_captured")):
        opts = ZoomOptions(method="whole", quiet=True)
        report = evaluate_zoom(model, [val], suite, "model", opts, align_gt=align)
        row.update({k + suffix: report.summary[0][k] for k in suite.columns})
    return row


def budget_overrides(args) -> list[str]:
    return [
        f"data.train.zoom=[{args.train}]",
        f"data.val.path={args.val}",
        f"data.val.every={args.steps}",
        f"data.batch={args.batch}",
        f"data.train.lr_patch={args.patch}",
        "data.workers=0",
        f"model.config.n_feats={args.feats}",
        f"model.config.n_blocks={args.blocks}",
        f"optim.lr={args.lr}",
        f"run.steps={args.steps}",
        f"run.checkpoint_every={max(1, args.steps // 4)}",
        f"run.seed={args.seed}",
    ]


def run_variant(name: str, changes: dict, args) -> dict:
    out = args.runs / name.replace(" ", "_")
    cached = out / f"scores_{args.steps}.json"
    if cached.is_file() and json.loads(cached.read_text()).get("val") == args.val:
        return json.loads(cached.read_text())
    overrides = [*budget_overrides(args), f"run.out={out}"]
    overrides += [f"model.config.{k}={v}" for k, v in changes.items()]
    cfg = load_config(args.config, overrides)
    resume = (out / "state.pt").exists()
    trainer = Trainer(cfg, resume=resume, quiet=args.quiet)
    started = time.time()
    trainer.fit()
    seconds = time.time() - started
    model = trainer.model.eval()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    row = {"variant": name, "seed": args.seed, "steps": trainer.step}
    row.update(scores(model, args.val), params=params)
    row["train_s"] = round(seconds) if not resume else "(resumed)"
    row["val"] = args.val  # scores of another held-out set are not reused
    write_text(cached, json.dumps(row, indent=1))
    return row


def collected_rows(runs: list[Path]) -> list[dict]:
    """Every cached scores_<steps>.json under the run folders, by steps, seed and variant."""
    rows = [json.loads(p.read_text()) for r in runs for p in sorted(r.glob("*/scores_*.json"))]
    order = list(VARIANTS)
    return sorted(rows, key=lambda r: (r["steps"], r.get("seed", 0), order.index(r["variant"])))


def budget(args, per_row: bool = False) -> str:
    """The run settings for the report; steps and seed are columns when rows are collected."""
    length = "" if per_row else f"{args.steps} steps, seed {args.seed}, "
    return (
        f"{Path(args.config).name}, {length}batch {args.batch}, LR patch {args.patch}, "
        f"{args.feats} features, {args.blocks} blocks, Adam {args.lr:g}, "
        f"{torch.get_num_threads()} CPU thread(s); train {args.train}, held-out {args.val}"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--train", help="simulated zoom samples to train on (scale of --config)")
    p.add_argument("--val", help="held-out simulated zoom samples")
    p.add_argument("--config", default=str(REPO / "configs" / "zoom" / "selfdzsr_x4.yaml"))
    p.add_argument("--runs", type=Path, default=REPO / "runs" / "zoom_ablation")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "zoom_ablation"))
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--patch", type=int, default=32, help="LR patch side")
    p.add_argument("--feats", type=int, default=32)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--collect",
        nargs="+",
        type=Path,
        metavar="RUNS",
        help="train nothing: tabulate the scores cached in these --runs folders",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args()

    if args.collect:
        rows = collected_rows(args.collect)
        if not rows:
            raise SystemExit(f"zoom_ablation: no scores_*.json under {args.collect}")
        note = f"{budget(args, per_row=True)}; collected from {', '.join(map(str, args.collect))}"
        print(text_table(rows, COLUMNS))
        paths = write_report(args.out, "SelfDZSR ablation", note, {"ablation": (rows, COLUMNS)})
        print("written: " + ", ".join(str(x) for x in paths))
        return
    if not (args.train and args.val):
        raise SystemExit("zoom_ablation: --train and --val are needed (or --collect RUNS)")

    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(
            f"zoom_ablation: unknown variant(s) {unknown}; choose from {list(VARIANTS)}"
        )
    rows = []
    for name in names:
        rows.append(run_variant(name, VARIANTS[name], args))
        print(text_table(rows, COLUMNS), flush=True)
    note = budget(args)
    paths = write_report(args.out, "SelfDZSR ablation", note, {"ablation": (rows, COLUMNS)})
    print(note)
    print("written: " + ", ".join(str(x) for x in paths))


if __name__ == "__main__":
    main()
