"""Cost of the degradation presets against the training step they feed.

For each preset and scale: the time to degrade a batch of N HR patches in one vectorised call,
the time the trainer's dataset spends on the same N items one at a time (what a DataLoader
worker does: crop, augment, degrade), and the time of one training step (forward, backward,
Adam) of the blind recipe's model, a compact EDSR-baseline 8x48, on that batch:

    OMP_NUM_THREADS=1 .venv/bin/python bench/degrade_cost.py
    .venv/bin/python bench/degrade_cost.py --batch 16 --repeats 5 --presets bsrgan

``share`` is the degradation's part of a step done in the main process (per-item time /
(per-item + train step)); with ``data.workers`` > 0 it overlaps the step instead. Times are
medians of --repeats warm runs on real patches (SR291). Prints the table and writes it as
md/csv/json to --out (default bench/results/degrade_cost).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import time
from pathlib import Path

import torch

from zoomsr.data.degraded import DegradedTrainSet
from zoomsr.data.sisr import load_training_images
from zoomsr.models.registry import load_model
from zoomsr.ops.degrade import PRESETS, Degradation
from zoomsr.tables import text_table, write_report

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["preset", "scale", "batch", "hr_patch", "batched_ms", "per_item_ms", "step_ms", "share"]


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def train_step_ms(scale: int, lr: torch.Tensor, hr: torch.Tensor, repeats: int) -> float:
    model = load_model("edsr-baseline", scale, n_resblocks=8, n_feats=48).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = (model(lr) - hr).abs().mean()
        loss.backward()
        opt.step()

    return median_ms(step, repeats)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "SR291" / "HR")
    p.add_argument("--presets", default=",".join(PRESETS))
    p.add_argument("--scales", default="2,4")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "degrade_cost")
    args = p.parse_args()

    images = load_training_images([str(args.data)])
    rows = []
    for scale in map(int, args.scales.split(",")):
        patch = 48 * scale  # the recipes' LR patch of 48 (x2: 96 HR, x4: 192 HR)
        steps_ms = None
        for preset in args.presets.split(","):
            data = DegradedTrainSet(images, scale, patch, seed=0, degradation=Degradation(preset))
            n = args.batch
            hr = torch.stack([data.hr_patch(i) for i in range(n)])
            degradation, g = Degradation(preset), torch.Generator().manual_seed(0)
            batched = median_ms(functools.partial(degradation, hr, scale, g), args.repeats)
            counter = iter(range(10**9))

            def items(data=data, counter=counter, n=n):
                start = next(counter) * n
                return [data[i] for i in range(start, start + n)]

            per_item = median_ms(items, args.repeats)
            if steps_ms is None:  # the model step does not depend on the preset
                lr, hr_batch = (torch.stack(t) for t in zip(*items(), strict=True))
                steps_ms = train_step_ms(scale, lr, hr_batch, args.repeats)
            rows.append(
                {
                    "preset": preset,
                    "scale": scale,
                    "batch": n,
                    "hr_patch": patch,
                    "batched_ms": round(batched, 1),
                    "per_item_ms": round(per_item, 1),
                    "step_ms": round(steps_ms, 1),
                    "share": round(per_item / (per_item + steps_ms), 3),
                }
            )
            print(text_table(rows[-1:], COLUMNS).splitlines()[-1], flush=True)
    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    note = (
        f"CPU, {threads} thread(s); median of {args.repeats} warm runs; HR patches from "
        f"{args.data.name if args.data.name != 'HR' else args.data.parent.name}; train step: "
        "EDSR-baseline 8x48, L1, Adam (forward + backward + update)."
    )
    print(text_table(rows, COLUMNS))
    print(note)
    write_report(args.out, "Degradation cost vs training step", note, {"degrade": (rows, COLUMNS)})


if __name__ == "__main__":
    main()
