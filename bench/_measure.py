"""Shared by the bench scripts: run a command under /usr/bin/time -v, return peak RSS and time."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path


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


def report_row(row: dict, out: Path, title: str) -> None:
    """Print one measured row as a table and write it as md/csv/json (zoomsr.tables)."""
    from zoomsr.tables import text_table, write_report

    print(text_table([row], list(row)))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_report(out, title, "", {title: ([row], list(row))})
