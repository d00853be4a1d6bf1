"""``zoomsr train-matcher``: train SelfDZSR's correspondence extractor (the Student) on photos."""

from __future__ import annotations

import argparse
import functools

EPILOG = """\
examples:
  zoomsr train-matcher --photos ../shared/data/photos --out runs/student_x4
  zoomsr train-matcher --photos ../shared/data/photos --out runs/student_x4 --resume
  zoomsr train-matcher --photos photos/ --out runs/student_x2 --set data.ratio=2 --steps 5000
  zoomsr train-matcher --photos photos/ --out runs/distilled \\
      --teacher runs/student_x4/student.safetensors
Then use it in a SelfDZSR recipe: --set zoom.student=runs/student_x4/student.safetensors
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train-matcher",
        help="train the SelfDZSR matcher (Student) on pairs of views of photos",
        description=(
            "Contrastive (InfoNCE) training of SelfDZSR's two-branch VGG16 correspondence "
            "extractor on random-homography view pairs of photos, with optional distillation "
            "from a teacher extractor. Writes RUN/student.safetensors."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--photos",
        action="append",
        metavar="DIR",
        help="folder, file or glob of photos (repeatable)",
    )
    p.add_argument("--config", metavar="YAML", help="recipe (default: the built-in one, as in "
                   "configs/matcher/student.yaml)")  # fmt: skip
    p.add_argument("--out", metavar="RUN", help="run folder (overrides run.out)")
    p.add_argument("--steps", type=int, help="total steps (overrides run.steps)")
    p.add_argument(
        "--init", metavar="imagenet|random|FILE", help="start weights (overrides run.init)"
    )
    p.add_argument("--teacher", metavar="FILE", help="distil from this extractor (loss.teacher)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--device", help="cpu, cuda or auto (overrides run.device)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args) -> int:
    from zoomsr.cli.common import flag_overrides
    from zoomsr.errors import ZoomsrError
    from zoomsr.train.matcher import load_matcher_config, train_matcher

    photos = f"[{','.join(repr(p) for p in args.photos)}]" if args.photos else None
    overrides = flag_overrides(
        args.overrides,
        {
            "data.photos": photos,
            "run.out": args.out,
            "run.steps": args.steps,
            "run.init": args.init,
            "loss.teacher": args.teacher,
            "run.device": args.device,
        },
    )
    if args.steps is not None and args.steps < 1:
        raise ZoomsrError(f"--steps must be positive, got {args.steps}")
    cfg = load_matcher_config(args.config, overrides)
    log = functools.partial(print, flush=True)  # progress lines show up in redirected logs too
    summary = train_matcher(cfg, resume=args.resume, quiet=args.quiet, log=log)
    before, after = summary["accuracy_before"], summary["accuracy"]
    scores = ""
    if before is not None and after is not None:
        scores = f"; matching accuracy {100 * before:.2f}% -> {100 * after:.2f}%"
    print(f"done: step {summary['step']}{scores}; weights in {summary['weights']}")
    return 0
