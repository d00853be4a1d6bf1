"""The ``zoomsr`` command: sub-command dispatch and the one-line error contract."""

from __future__ import annotations

import argparse
import importlib
import sys

from zoomsr import __version__
from zoomsr.errors import ZoomsrError

# Each module in zoomsr.cli named here provides ``add_parser(subparsers)`` that registers
# one sub-command and sets ``func=run`` where ``run(args) -> int``.
COMMANDS = (
    "upscale",
    "downscale",
    "zoom",
    "eval",
    "train",
    "convert",
    "interpolate",
    "models",
    "backbones",
    "simulate",
    "prepare",
    "train_matcher",
    "kernel",
)

DESCRIPTION = """\
zoomsr: real-world image super-resolution.

Common jobs:
  zoomsr upscale photo.png -o photo_x2.png --scale 2     super-resolve single images
  zoomsr eval --model bicubic --data Set5 --scale 2,3,4   score a model on a benchmark
  zoomsr models                                          list the models
  zoomsr backbones install                               install ImageNet backbones offline
"""


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that reports usage errors on one line, as every zoomsr error is."""

    def error(self, message: str):  # type: ignore[override]
        raise ZoomsrError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="zoomsr",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"zoomsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"zoomsr.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except ZoomsrError as err:
        print(f"zoomsr: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoomsr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
