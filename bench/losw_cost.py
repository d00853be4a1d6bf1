"""Cost of the LOSW loss against the global SW loss: forward+backward time and peak memory.

Both losses at unit weight on the SR-loss taps (relu3_2/4_2/5_2, weights 1/1/2) of a batch of
N x 3 x 192 x 192 patches, with the VGG19 feature extraction included (image in, gradient on the
image) or excluded (gradient on fixed VGG19 feature maps, the loss alone):

    OMP_NUM_THREADS=1 nice .venv/bin/python bench/losw_cost.py
    .venv/bin/python bench/losw_cost.py --batch 4 --repeats 3 --device cuda

Each case runs in its own process. Peak memory is the growth of the resident set (CPU; reset via
/proc/self/clear_refs) or of torch's CUDA allocator during the first, cold call; time is the
median of --repeats warm calls. Prints the table and writes it as md/csv/json to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from zoomsr.losses.expr import sliced_wasserstein_term
from zoomsr.losses.sliced_wasserstein import losw_window
from zoomsr.tables import text_table, write_report

REPO = Path(__file__).resolve().parents[1]
CASES = [("SW", True), ("LOSW", True), ("SW", False), ("LOSW", False)]
COLUMNS = ["loss", "vgg19", "batch", "patch", "windows", "seconds", "x_sw", "peak_mib"]


def _status_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1))


class PeakMemory:
    """Peak growth (MiB) of process memory over a block: CUDA allocator or resident set."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.base = _status_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _status_kib("VmHWM") * 1024
        self.mib = (peak - self.base) / 2**20


def run_case(name: str, with_vgg: bool, args) -> dict:
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    hr = torch.rand(args.batch, 3, args.size, args.size, generator=gen).to(device)
    sr = (hr + 0.05 * torch.randn(hr.shape, generator=gen).to(device)).clamp(0, 1)
    loss = sliced_wasserstein_term(args.backbone, local=name == "LOSW").to(device)
    windows = "global"
    if name == "LOSW":
        windows = ",".join(str(losw_window(args.size, k)) for k in loss.layers)

    if with_vgg:
        sr.requires_grad_(True)

        def step():
            loss(sr, hr).backward()
            sr.grad = None

    else:
        with torch.no_grad():
            fs, ft = loss.extractor(sr), loss.extractor(hr)
        fs = {k: v.detach().requires_grad_(True) for k, v in fs.items()}
        del loss.extractor  # its weights are not part of the loss-only cost

        def step():
            total = sum(
                w * loss.distance(fs[k], ft[k], k, args.size)
                for k, w in zip(loss.layers, loss.layer_weights, strict=True)
            )
            total.backward()
            for v in fs.values():
                v.grad = None

    with PeakMemory(device) as mem:
        step()
    seconds = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
    return {
        "loss": name,
        "vgg19": "included" if with_vgg else "excluded",
        "batch": args.batch,
        "patch": args.size,
        "windows": windows,
        "seconds": round(statistics.median(seconds), 3),
        "peak_mib": round(mem.mib),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=192, help="GT patch side (px)")
    p.add_argument("--repeats", type=int, default=2, help="warm calls timed per case")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backbone", default="vgg19_caffe", help="as the SW/LOSW loss terms")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "losw_cost")
    p.add_argument("--case", help=argparse.SUPPRESS)  # internal: one case in this process
    args = p.parse_args()
    if args.case:
        name, vgg = args.case.split(":")
        print(json.dumps(run_case(name, vgg == "vgg", args)))
        return

    rows = []
    for name, with_vgg in CASES:
        cmd = [sys.executable, __file__, "--case", f"{name}:{'vgg' if with_vgg else 'feat'}"]
        cmd += ["--batch", str(args.batch), "--size", str(args.size)]
        cmd += ["--repeats", str(args.repeats), "--device", args.device]
        cmd += ["--backbone", args.backbone]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"case {name} failed: {proc.stderr.strip().splitlines()[-1]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"{name} (vgg19 {rows[-1]['vgg19']}): {rows[-1]['seconds']} s", file=sys.stderr)
    for row in rows:
        sw = next(r for r in rows if r["loss"] == "SW" and r["vgg19"] == row["vgg19"])
        row["x_sw"] = round(row["seconds"] / sw["seconds"], 2)
    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    note = (
        f"Forward+backward of the loss at unit weight, {args.device}, {threads} thread(s), "
        f"median of {args.repeats} warm calls; peak_mib = memory growth during the first call "
        f"({'CUDA allocator' if args.device.startswith('cuda') else 'resident set'}). "
        f"Backbone {args.backbone}; LOSW windows per relu3_2/4_2/5_2."
    )
    print(text_table(rows, COLUMNS))
    write_report(args.out, "LOSW vs SW cost", note, {"cost": (rows, COLUMNS)})


if __name__ == "__main__":
    main()
