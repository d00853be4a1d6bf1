"""Flags and the run of zero-shot models (ZSSR) for ``zoomsr upscale``."""

from __future__ import annotations

import sys
from pathlib import Path

from zoomsr.errors import ZoomsrError


def iteration_progress(quiet: bool):
    """A ``(iterable, desc) -> iterable`` bar counting training iterations, on a terminal only."""
    if quiet or not sys.stderr.isatty():
        return lambda it, _desc: it
    from tqdm import tqdm

    return lambda it, desc: tqdm(it, desc=desc, unit="it", leave=False, dynamic_ncols=True)


def add_zeroshot_flags(parser) -> None:
    g = parser.add_argument_group("zero-shot models (--model zssr)")
    g.add_argument(
        "--kernel",
        metavar="K.npy|auto",
        help="SR kernel of the input: a .npy file ('zoomsr kernel'), or auto (KernelGAN first, "
        "as 'zoomsr kernel' makes it); default bicubic",
    )
    g.add_argument(
        "--iterations",
        type=int,
        metavar="N",
        help="most ZSSR training iterations per scale step (default 3000; it stops earlier "
        "when its learning rate has decayed)",
    )
    g.add_argument(
        "--gradual",
        action="store_true",
        help="x2 in the official code's six anisotropic steps (X2_GRADUAL_IDEAL_CONF: about 6x "
        "the time for a few tenths of a dB; bicubic kernel only)",
    )


def wants_zeroshot(args, model) -> bool:
    """Whether ``model`` trains on the input itself; the zero-shot flags need such a model."""
    if getattr(model, "task", None) == "zeroshot":
        return True
    if args.kernel is not None or args.iterations is not None or args.gradual:
        raise ZoomsrError(
            "--kernel, --iterations and --gradual apply to zero-shot models only (--model zssr)"
        )
    return False


def run_zeroshot(args, model, sources: list[Path], out: Path, suffix: str | None) -> int:
    """ZSSR each input into ``out`` (a file, or a folder for several inputs)."""
    from zoomsr.infer.pipelines import output_path_for
    from zoomsr.infer.zeroshot import ZeroShotOptions, check_options, zssr_file

    opts = ZeroShotOptions(kernel=args.kernel, iterations=args.iterations, gradual=args.gradual)
    kernel = check_options(opts, int(model.scale))  # a bad kernel file fails before any training
    many = len(sources) > 1
    bar = iteration_progress(args.quiet)
    for src in sources:
        dst = output_path_for(src, out, many, suffix)
        zssr_file(
            model,
            src,
            dst,
            opts,
            overwrite=args.overwrite,
            inputs=sources,
            progress=bar,
            kernel=kernel,
        )
        if not args.quiet:
            report = model.last_report
            print(
                f"{src} -> {dst} ({report.total_iterations} iterations, {report.train_seconds:.0f} s training)"
            )
    return 0
