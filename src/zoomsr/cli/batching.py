"""Flags and printing shared by the sub-commands that run resumable batches (upscale, zoom)."""

from __future__ import annotations

import sys


def add_batch_flags(parser, line: str) -> None:
    parser.add_argument(
        "--list", metavar="FILE", help=f"a text file of jobs: {line} ('#' comments)"
    )
    parser.add_argument(
        "--shard",
        metavar="I/N",
        default=None,
        help="process only the I-th of N parts of the batch (default under torchrun: RANK/WORLD_SIZE)",
    )


def batch_result(quiet: bool):
    """Per-job printing: 'IN -> OUT' when done (unless quiet), failures on stderr."""

    def show(job, status: str, message: str | None) -> None:
        if status == "failed":
            print(f"zoomsr: {message}", file=sys.stderr)
        elif status == "done" and not quiet:
            print(f"{job.inputs[0]} -> {job.output}")

    return show
