"""Official SelfDZSR (ECCV 2022) and SelfDZSR++ / SelfTZSR++ (TPAMI 2024) checkpoints -> zoomsr.

``RefSR_model_*.pth`` (restoration) and ``Student_model_*.pth`` (matcher) make one
:class:`~zoomsr.models.zoom.SelfDZSR`, :class:`~zoomsr.models.zoom.SelfDZSRpp` or
:class:`~zoomsr.models.zoom.SelfTZSRpp` (the ++ models share the ECCV Student and KernelGen
layouts); ``KernelGen_model_*.pth`` makes an :class:`~zoomsr.models.zoom.AuxLRGenerator`.
Files hold ``{'state_dict': ...}`` (reference §7).

What the conversion changes, besides renaming keys by the tables below:
- space-to-depth: the official ``DownBlock`` orders channels (dy·s + dx)·3 + c, zoomsr uses
  ``nn.PixelUnshuffle`` (c·s² + dy·s + dx), so the input channels of the first conv after it
  are permuted (``ref_head.2``, ``KernelGen.head.0``, the GT part of ``guide_net.0.0``);
- AdaSTN: ``transform_matrix_conv`` (4 ch) and ``translation_conv`` (2 ch) become one 6-channel
  ``affine`` conv; the grouped ``concat2`` keeps its channel pairing, because zoomsr concatenates
  [x ; guide] in the same order;
- constants (``regular_matrix``, the Student's ImageNet ``mean``/``std``) are checked, not kept;
- fp16-stored tensors are cast to float32, as the official loader's ``copy_`` does.
Every official key must be used and every zoomsr key filled (strict, unlike the official loader).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch

from zoomsr.convert.edsr_pytorch import read_official_state
from zoomsr.errors import ZoomsrError
from zoomsr.models.registry import load_model
from zoomsr.models.zoom.adastn import regular_grid
from zoomsr.models.zoom.auxlr import AuxLRGenerator
from zoomsr.models.zoom.matching import IMAGENET_MEAN, IMAGENET_STD
from zoomsr.models.zoom.selfdzsr import SelfDZSR
from zoomsr.models.zoom.selfdzsr_pp import SelfDZSRpp
from zoomsr.models.zoom.selftzsr_pp import SelfTZSRpp

Tensor = torch.Tensor

# (official key regex, zoomsr key template); groups fill the template. Parameters only:
# AdaSTN affine convs and constants are handled separately.
_REFSR_KEYS: list[tuple[str, str]] = [
    (r"ref_extractor\.0\.(weight|bias)", "ref_encoder.0.{0}"),
    (r"ref_extractor\.1\.0\.(weight|bias)", "ref_encoder.1.{0}"),
    (r"ref_extractor\.2\.0\.(weight|bias)", "ref_encoder.3.{0}"),
    (r"ref_extractor\.2\.2\.(weight|bias)", "ref_encoder.5.{0}"),
    (r"ref_extractor\.2\.4\.(weight|bias)", "ref_encoder.7.{0}"),
    (r"ref_extractor\.2\.6\.(weight|bias)", "ref_encoder.9.{0}"),
    (r"ref_head\.0\.(weight|bias)", "ref_head.0.{0}"),
    (r"ref_head\.2\.(weight|bias)", "ref_head.2.{0}"),  # weight permuted (space-to-depth)
    (r"deform_conv\.(weight|bias)", "ref_warp.{0}"),
    (r"ada([123])\.concat\.0\.(weight|bias)", "align.{0}.mixer.0.{1}"),
    (r"ada([123])\.concat2\.0\.(weight|bias)", "align.{0}.mixer.2.{1}"),
    (r"ada([123])\.adapt_conv\.weight", "align.{0}.sampler.weight"),
    (r"ref_ada\.concat\.0\.(weight|bias)", "ref_align.mixer.0.{0}"),
    (r"ref_ada\.concat2\.0\.(weight|bias)", "ref_align.mixer.2.{0}"),
    (r"ref_ada\.adapt_conv\.weight", "ref_align.sampler.weight"),
    (r"head\.([01])\.(weight|bias)", "restoration.head.{0}.{1}"),
    (r"concat_fea\.0\.(weight|bias)", "restoration.fuse.0.{0}"),
    (r"predictor\.mean\.(weight|bias)", "restoration.predictor.shift.{0}"),
    (r"predictor\.head\.0\.0\.(weight|bias)", "restoration.predictor.image_head.0.{0}"),
    (r"predictor\.predictor\.([0-4])\.0\.(weight|bias)", "restoration.predictor.body.{0}.{1}"),
    (r"block(\d+)\.res\.([02])\.(weight|bias)", "restoration.blocks.{0}.body.{1}.{2}"),
    (r"block(\d+)\.mlp\.0\.0\.(weight|bias)", "restoration.blocks.{0}.mlp.0.{1}"),
    (r"block(\d+)\.mlp\.1\.(weight|bias)", "restoration.blocks.{0}.mlp.2.{1}"),
    (r"body_lastconv\.(weight|bias)", "restoration.body_out.{0}"),
    (r"up\.(\d)\.0\.(weight|bias)", "restoration.upsampler.{0}.{1}"),
    (r"tail\.([01])\.(weight|bias)", "restoration.tail.{0}.{1}"),
]

# Templates whose first index is doubled: official nested (conv, act) pairs -> flat Sequential.
_DOUBLED = ("restoration.upsampler.", "restoration.predictor.body.")

_KERNELGEN_KEYS: list[tuple[str, str]] = [
    (r"head_mean\.(weight|bias)", "shift_in.{0}"),
    (r"head\.0\.(weight|bias)", "embed.0.{0}"),  # weight permuted (space-to-depth)
    (r"conv_7x7\.0\.(weight|bias)", "spatial.0.{0}"),
    (r"conv_5x5\.0\.(weight|bias)", "spatial.2.{0}"),
    (r"conv_3x3\.0\.(weight|bias)", "spatial.4.{0}"),
    (r"conv_1x1\.([024])\.(weight|bias)", "pointwise.{0}.{1}"),
    (r"tail\.(weight|bias)", "to_rgb.{0}"),
    (r"guide_net\.0\.0\.(weight|bias)", "guide.0.{0}"),  # GT channels permuted
    (r"guide_net\.1\.0\.(weight|bias)", "guide.2.{0}"),
    (r"guide_net\.1\.2\.(weight|bias)", "guide.4.{0}"),
    (r"guide_net\.1\.4\.(weight|bias)", "guide.6.{0}"),
    (r"guide_net\.3\.(weight|bias)", "guide.8.{0}"),
    (r"tail_mean\.(weight|bias)", "shift_out.{0}"),
]

_STUDENT_KEY = r"feature_extraction_image([12])\.model\.(conv\d_\d)\.(weight|bias)"


def downblock_to_unshuffle(weight: Tensor, scale: int, channels: int = 3) -> Tensor:
    """Permute conv input channels from DownBlock order (s·C + c) to PixelUnshuffle (c·s² + s)."""
    o, _, kh, kw = weight.shape
    w = weight.reshape(o, scale * scale, channels, kh, kw).transpose(1, 2)
    return w.reshape(o, channels * scale * scale, kh, kw)


def _rename(state: dict[str, Tensor], table: list[tuple[str, str]]) -> tuple[dict, set]:
    out, used = {}, set()
    compiled = [(re.compile(p), t) for p, t in table]
    for key, value in state.items():
        for rx, template in compiled:
            if m := rx.fullmatch(key):
                groups = list(m.groups())
                if template.startswith("align."):
                    groups[0] = str(int(groups[0]) - 1)  # ada1..3 -> align.0..2
                if template.startswith(_DOUBLED):
                    groups[0] = str(2 * int(groups[0]))  # a parameter-free layer follows each conv
                out[template.format(*groups)] = value.float()
                used.add(key)
                break
    return out, used


def _check_constant(state: dict[str, Tensor], key: str, expected: Tensor, path) -> None:
    if not torch.allclose(state[key].float().reshape(expected.shape), expected, atol=1e-6):
        raise ZoomsrError(
            f"'{path}': constant '{key}' differs from SelfDZSR's; not an official file"
        )


def _adastn_affine(state: dict[str, Tensor], prefix: str) -> tuple[Tensor, Tensor]:
    """Official transform (4 ch) + translation (2 ch) convs -> one 6-channel conv."""
    w = torch.cat(
        [
            state[f"{prefix}.transform_matrix_conv.weight"],
            state[f"{prefix}.translation_conv.weight"],
        ]
    )
    b = torch.cat(
        [state[f"{prefix}.transform_matrix_conv.bias"], state[f"{prefix}.translation_conv.bias"]]
    )
    return w.float(), b.float()


_ADASTN_PARAMS = (
    "regular_matrix",
    "transform_matrix_conv.weight",
    "transform_matrix_conv.bias",
    "translation_conv.weight",
    "translation_conv.bias",
)


def _convert_adastns(
    state: dict[str, Tensor], pairs: list[tuple[str, str]], out: dict, path
) -> set[str]:
    """Fills ``<ours>.affine.*`` in ``out`` for each (official, ours) AdaSTN and checks its
    constant grid; returns the official keys used."""
    used = set()
    grid = regular_grid()
    for official, ours in pairs:
        out[f"{ours}.affine.weight"], out[f"{ours}.affine.bias"] = _adastn_affine(state, official)
        _check_constant(state, f"{official}.regular_matrix", grid, path)
        used |= {f"{official}.{k}" for k in _ADASTN_PARAMS}
    return used


def _finish(path, state: dict, used: set, extra_used: set) -> None:
    left = sorted(set(state) - used - extra_used)
    if left:
        raise ZoomsrError(f"'{path}' has keys zoomsr does not know: {', '.join(left[:5])}")


def _load_strict(model: torch.nn.Module, state: dict[str, Tensor], path, what: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split("\n")[1:2]).strip() or str(err)
        raise ZoomsrError(f"'{path}' does not fit {what}: {detail}") from None


def refsr_scale(state: dict[str, Tensor]) -> int:
    """The scale of a RefSR state dict, from the input width of the paste conv (3·s²)."""
    if "ref_head.2.weight" not in state:
        raise ZoomsrError("not a SelfDZSR RefSR checkpoint (no 'ref_head.2.weight')")
    return round((state["ref_head.2.weight"].shape[1] / 3) ** 0.5)


def convert_refsr_state(state: dict[str, Tensor], path: str | Path = "RefSR") -> tuple[dict, int]:
    """zoomsr ``SelfDZSR`` keys (all but ``matcher.*``) of an official RefSR state, and the scale."""
    scale = refsr_scale(state)
    out, used = _rename(state, _REFSR_KEYS)
    out["ref_head.2.weight"] = downblock_to_unshuffle(out["ref_head.2.weight"], scale)
    pairs = [(f"ada{i}", f"align.{i - 1}") for i in (1, 2, 3)] + [("ref_ada", "ref_align")]
    _finish(path, state, used, _convert_adastns(state, pairs, out, path))
    return out, scale


def convert_student_state(state: dict[str, Tensor], path: str | Path = "Student") -> dict:
    """zoomsr ``StudentExtractor`` keys of an official Student (``ContrasExtractorSep``) state."""
    out, extra = {}, set()
    branch = {"1": "lr_branch", "2": "ref_branch"}
    for key, value in state.items():
        if m := re.fullmatch(_STUDENT_KEY, key):
            out[f"{branch[m[1]]}.{m[2]}.{m[3]}"] = value.float()
            extra.add(key)
    for i in "12":
        for name, const in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD)):
            key = f"feature_extraction_image{i}.{name}"
            if key not in state:
                raise ZoomsrError(f"'{path}' is not a SelfDZSR Student checkpoint (no '{key}')")
            _check_constant(state, key, torch.tensor(const), path)
            extra.add(key)
    _finish(path, state, set(), extra)
    return out


def convert_kernelgen_state(
    state: dict[str, Tensor], path: str | Path = "KernelGen"
) -> tuple[dict, int]:
    """zoomsr ``AuxLRGenerator`` keys of an official KernelGen state, and the scale."""
    if "head.0.weight" not in state or "guide_net.0.0.weight" not in state:
        raise ZoomsrError(f"'{path}' is not a SelfDZSR KernelGen checkpoint")
    scale = round((state["head.0.weight"].shape[1] / 3) ** 0.5)
    out, used = _rename(state, _KERNELGEN_KEYS)
    out["embed.0.weight"] = downblock_to_unshuffle(out["embed.0.weight"], scale)
    g = out["guide.0.weight"]
    folded = 3 * scale**2  # the GT part; the last 3 channels are the LR, unchanged
    out["guide.0.weight"] = torch.cat(
        [downblock_to_unshuffle(g[:, :folded], scale), g[:, folded:]], 1
    )
    _finish(path, state, used, set())
    return out, scale


def load_selfdzsr(refsr_path: str | Path, student_path: str | Path) -> SelfDZSR:
    """A :class:`SelfDZSR` (eval mode) from official RefSR and Student checkpoint files."""
    restoration, scale = convert_refsr_state(read_official_state(refsr_path), refsr_path)
    matcher = convert_student_state(read_official_state(student_path), student_path)
    model = load_model("selfdzsr", scale)  # sets the registry identity for save_weights
    state = {**restoration, **{f"matcher.{k}": v for k, v in matcher.items()}}
    _load_strict(model, state, refsr_path, f"SelfDZSR x{scale}")
    return model.eval()


def load_aux_generator(path: str | Path) -> AuxLRGenerator:
    """An :class:`AuxLRGenerator` (eval mode) from an official ``KernelGen_model_*.pth``."""
    state, scale = convert_kernelgen_state(read_official_state(path), path)
    model = AuxLRGenerator(scale=scale)
    _load_strict(model, state, path, f"the x{scale} auxiliary-LR generator")
    return model.eval()


# -- SelfDZSR++ / SelfTZSR++ (TPAMI 2024) ------------------------------------------------------
# The ++ RefSR files (reference §7) keep the ECCV restoration keys, rename the Ref modules with a
# suffix (``_2`` for the x4 tele Ref, ``_1`` for SelfTZSR++'s x2 wide Ref), drop ``ref_ada``, and
# their AdaSTNs have one grouped ``concat`` conv (-> ``mixer.0``). SelfTZSR++ fuses with
# ``concat_fea_1`` (-> ``restoration.fuse``) and ``concat_fea_2`` (-> ``extra_fuse.0``).

_PP_SHARED_KEYS: list[tuple[str, str]] = [
    (p, t) for p, t in _REFSR_KEYS if t.startswith("restoration.") and ".fuse." not in t
] + [
    (r"ada([123])\.concat\.0\.(weight|bias)", "align.{0}.mixer.0.{1}"),
    (r"ada([123])\.adapt_conv\.weight", "align.{0}.sampler.weight"),
]


def _pp_branch_keys(suffix: str, index: int) -> list[tuple[str, str]]:
    """Keys of one ++ Ref branch (``ref_extractor_<suffix>`` ...) -> ``branches.<index>``."""
    b = f"branches.{index}"
    keys = [(rf"ref_extractor_{suffix}\.0\.(weight|bias)", b + ".encoder.0.{0}")]
    keys.append((rf"ref_extractor_{suffix}\.1\.0\.(weight|bias)", b + ".encoder.1.{0}"))
    for i, j in ((0, 3), (2, 5), (4, 7), (6, 9)):
        keys.append((rf"ref_extractor_{suffix}\.2\.{i}\.(weight|bias)", b + f".encoder.{j}.{{0}}"))
    keys += [
        (rf"ref_head_{suffix}\.0\.(weight|bias)", b + ".head.0.{0}"),
        (rf"ref_head_{suffix}\.2\.(weight|bias)", b + ".head.2.{0}"),  # permuted
        (rf"deform_conv_{suffix}\.(weight|bias)", b + ".warp.{0}"),
    ]
    return keys


# model name -> (official Ref suffixes, widest first; fusion convs in order)
_PP_LAYOUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "selfdzsr-pp": (("2",), ("concat_fea",)),
    "selftzsr-pp": (("1", "2"), ("concat_fea_1", "concat_fea_2")),
}
_PP_FUSE_TARGETS = ("restoration.fuse.0", "extra_fuse.0.0")


def pp_variant(state: dict[str, Tensor], path: str | Path = "RefSR") -> str:
    """``selfdzsr-pp`` or ``selftzsr-pp`` for an official ++ RefSR state; an error otherwise."""
    if "ref_head.2.weight" in state:
        raise ZoomsrError(f"'{path}' is an ECCV SelfDZSR checkpoint; convert it as 'selfdzsr'")
    if "ref_head_1.2.weight" in state:
        return "selftzsr-pp"
    if "ref_head_2.2.weight" in state:
        return "selfdzsr-pp"
    raise ZoomsrError(f"'{path}' is not a SelfDZSR++/SelfTZSR++ RefSR checkpoint (no 'ref_head_2')")


def convert_pp_refsr_state(
    state: dict[str, Tensor], path: str | Path = "RefSR"
) -> tuple[dict, str, int]:
    """zoomsr keys (all but ``matcher.*``) of an official ++ RefSR state, its model name and scale.

    The scale is read from the upsampler (one x2 stage per ``up.<i>``); each Ref head's zoom
    (from its 3·zoom² input channels) must be the model's: the scale, and scale/2 for the wide Ref.
    """
    name = pp_variant(state, path)
    suffixes, fuses = _PP_LAYOUTS[name]
    scale = 2 ** len({k for k in state if re.fullmatch(r"up\.\d\.0\.weight", k)})
    zooms = (scale,) if name == "selfdzsr-pp" else (scale // 2, scale)
    table = list(_PP_SHARED_KEYS)
    for index, suffix in enumerate(suffixes):
        table += _pp_branch_keys(suffix, index)
    for official, ours in zip(fuses, _PP_FUSE_TARGETS[: len(fuses)], strict=True):
        table.append((rf"{official}\.0\.(weight|bias)", ours + ".{0}"))
    out, used = _rename(state, table)
    for index, (suffix, zoom) in enumerate(zip(suffixes, zooms, strict=True)):
        key = f"branches.{index}.head.2.weight"
        found = round((state[f"ref_head_{suffix}.2.weight"].shape[1] / 3) ** 0.5)
        if found != zoom:
            raise ZoomsrError(
                f"'{path}': Ref head 'ref_head_{suffix}' is x{found}, but a x{scale} {name} "
                f"needs x{zoom}"
            )
        out[key] = downblock_to_unshuffle(out[key], zoom)
    pairs = [(f"ada{i}", f"align.{i - 1}") for i in (1, 2, 3)]
    _finish(path, state, used, _convert_adastns(state, pairs, out, path))
    return out, name, scale


def _load_pp(name: str, refsr_path: str | Path, student_path: str | Path) -> torch.nn.Module:
    restoration, found, scale = convert_pp_refsr_state(read_official_state(refsr_path), refsr_path)
    if found != name:
        raise ZoomsrError(f"'{refsr_path}' is a {found} checkpoint; convert it as '{found}'")
    matcher = convert_student_state(read_official_state(student_path), student_path)
    model = load_model(name, scale)  # sets the registry identity for save_weights
    state = {**restoration, **{f"matcher.{k}": v for k, v in matcher.items()}}
    _load_strict(model, state, refsr_path, f"{name} x{scale}")
    return model.eval()


def load_selfdzsr_pp(refsr_path: str | Path, student_path: str | Path) -> SelfDZSRpp:
    """A :class:`SelfDZSRpp` (eval mode) from official ++ ``RefSR`` (dzsr) and Student files."""
    return _load_pp("selfdzsr-pp", refsr_path, student_path)


def load_selftzsr_pp(refsr_path: str | Path, student_path: str | Path) -> SelfTZSRpp:
    """A :class:`SelfTZSRpp` (eval mode) from official ++ ``RefSR`` (tzsr) and Student files."""
    return _load_pp("selftzsr-pp", refsr_path, student_path)


CONVERTERS: dict[str, Callable] = {
    "selfdzsr": load_selfdzsr,
    "selfdzsr-auxlr": load_aux_generator,
    "selfdzsr-pp": load_selfdzsr_pp,
    "selftzsr-pp": load_selftzsr_pp,
}
