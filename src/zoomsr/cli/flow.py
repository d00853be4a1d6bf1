"""Flags and the run of flow models (SDFlow), shared by ``zoomsr upscale`` and ``zoomsr downscale``."""

from __future__ import annotations

from pathlib import Path

from zoomsr.cli.common import progress
from zoomsr.errors import ZoomsrError


def add_flow_flags(parser) -> None:
    g = parser.add_argument_group("flow models (--model sdflow FILE.safetensors)")
    g.add_argument(
        "--tau",
        type=float,
        default=None,
        help="sampling temperature (default 0.8; 0: the mode, deterministic)",
    )
    g.add_argument(
        "--samples",
        type=int,
        default=None,
        metavar="N",
        help="samples per input, written as OUT_s0, OUT_s1, ... (default 1: OUT itself)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the samples (default 0; same seed, same samples)",
    )


def wants_flow(args, model) -> bool:
    """Whether ``model`` is a flow model; the flow flags need one."""
    from zoomsr.infer.flow import is_flow_model

    if is_flow_model(model):
        return True
    if args.tau is not None or args.samples is not None or args.seed is not None:
        raise ZoomsrError("--tau, --samples and --seed apply to flow models only (--model sdflow)")
    return False


def flow_options(args):
    from zoomsr.infer.engine import parse_memory
    from zoomsr.infer.flow import DEFAULT_TAU, FlowOptions, check_options

    opts = FlowOptions(
        tau=DEFAULT_TAU if args.tau is None else args.tau,
        samples=1 if args.samples is None else args.samples,
        seed=0 if args.seed is None else args.seed,
        tile=args.tile,
        overlap=args.tile_overlap,
        max_memory=parse_memory(args.max_memory),
    )
    check_options(opts)
    return opts


def run_flow(args, model, name: str, sources: list[Path], out: Path, suffix, direction: str) -> int:
    """Sample ``direction`` (upscale | downscale) for each input into ``out``."""
    from zoomsr.infer.flow import flow_file, require_trained
    from zoomsr.infer.pipelines import output_path_for

    opts = flow_options(args)
    require_trained(model, name)
    for flag in ("ensemble", "half", "shard"):
        if getattr(args, flag, None):
            raise ZoomsrError(f"--{flag} does not apply to flow models")
    many = len(sources) > 1
    if many and out.exists() and not out.is_dir():
        raise ZoomsrError(f"'{out}' is a file; several inputs need an output folder")
    if many:
        out.mkdir(parents=True, exist_ok=True)
    bar = progress(args.quiet)
    for src in bar(sources, direction):
        dst = output_path_for(src, out, many, suffix)
        written = flow_file(
            model,
            src,
            dst,
            direction,
            opts,
            overwrite=args.overwrite,
            inputs=sources,
            progress=bar,
        )
        if not args.quiet:
            print(f"{src} -> {', '.join(map(str, written))}")
    return 0
