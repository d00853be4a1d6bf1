"""Shared by the bench scripts: run a command under /usr/bin/time -v, return peak RSS and time."""

from __future__ import annotations

import re
import subprocess
import time


def run_timed(cmd: list[str]) -> dict:
    """Run ``cmd``; ``{"peak_rss_gib", "seconds"}``, or SystemExit with its last error line."""
    started = time.time()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    seconds = time.time() - started
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.startswith("zoomsr:")]
        raise SystemExit(f"failed: {(lines or proc.stderr.strip().splitlines() or ['?'])[-1]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return {"peak_rss_gib": round(rss_kb / 2**20, 2), "seconds": round(seconds, 1)}


def markdown_row_table(row: dict) -> str:
    cols = list(row)
    return "\n".join(
        [
            "| " + " | ".join(cols) + " |",
            "|" + "---|" * len(cols),
            "| " + " | ".join(str(row[c]) for c in cols) + " |",
        ]
    )
