"""Official SDFlow checkpoints (``sunwj/sdflow``) -> zoomsr :class:`~zoomsr.models.flow.SDFlow`.

The official scripts load four state dicts: ``lrencoder.pth`` (LRImageEncoderFM),
``hrnet.pth`` (HRFlow with the HF flow), ``contentnet.pth`` (ContentFlow = LR flow) and
``degnet.pth`` (DegFlow); key layout in the parity fixture README §2 (reference §2, §10.14).

What the conversion changes, besides renaming keys:
- the repeat counts (flow steps, RRDBs, FM blocks) are read from the keys and become the
  model config, so reduced models (the parity fixture) convert as well as the official one;
- the inv-1x1 constants ``l_mask``, ``u_mask``, ``l_eye`` are checked, not kept (zoomsr builds
  them); the permutation ``w_p`` and ``s_sign`` are kept as ``perm`` and ``sign``;
- fp16-stored tensors become float32 (the official loader's ``copy_`` does the same).
Every official key must be used and every zoomsr key filled.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from zoomsr.convert.edsr_pytorch import read_official_state
from zoomsr.errors import ZoomsrError
from zoomsr.models.flow.sdflow import SDFlow
from zoomsr.models.registry import load_model

Tensor = torch.Tensor

# Per file: (official prefix regex, zoomsr prefix), first match wins.
_PREFIXES: dict[str, list[tuple[str, str]]] = {
    "hrnet": [
        (r"blocks\.1\.split\.conditional_flow\.", "hr_flow.hf."),
        (r"blocks\.(\d+)\.squeeze_transition\.transitions\.", r"hr_flow.levels.\1.transition."),
        (r"blocks\.(\d+)\.steps\.", r"hr_flow.levels.\1.steps."),
    ],
    "contentnet": [
        (r"blocks\.0\.squeeze_transition\.transitions\.", "lr_flow.transition_in."),
        (r"blocks\.0\.expand_transition\.transitions\.", "lr_flow.transition_out."),
        (r"blocks\.0\.steps\.", "lr_flow.steps."),
    ],
    "degnet": [
        (r"(means|log_stds)$", r"deg_flow.\1"),
        (r"deg_net\.cond_net\.0\.", "deg_flow.cond_net."),
        (r"deg_net\.cond_net\.2\.", "deg_flow.cond_proj."),
        (r"deg_net\.squeeze_transition\.transitions\.", "deg_flow.transition."),
        (r"deg_net\.additional_flow_steps\.", "deg_flow.steps."),
    ],
    "lrencoder": [
        (r"in_conv\.1\.", "lr_encoder.conv_in."),
        (r"mf_conv\.(\d+)\.", "lr_encoder.mf_conv.\\1."),  # index remapped below
        (r"trunk\.(\d+)\.conv([12])\.1\.", r"lr_encoder.trunk.\1.conv\2."),
        (r"trunk\.(\d+)\.(fm[12])\.", r"lr_encoder.trunk.\1.\2."),
        (r"out_conv\.1\.", "lr_encoder.conv_mid."),
        (r"out_conv\.3\.", "lr_encoder.conv_out."),
    ],
}

# Inside every flow: (official fragment regex, zoomsr fragment), all applied.
_PARTS: list[tuple[str, str]] = [
    (r"\.cond_net\.in_conv\.1\.", ".cond_net.conv_in."),
    (r"\.cond_net\.trunk\.(\d+)\.RDB([123])\.", r".cond_net.trunk.\1.rdb\2."),
    (r"\.cond_net\.trans\.1\.", ".cond_net.trunk_conv."),
    (r"\.cond_net\.out_conv\.1\.", ".cond_net.conv_hidden."),
    (r"\.cond_net\.out_conv\.4\.", ".cond_net.conv_out."),
    (r"\.additional_flow_steps\.", ".steps."),
    (r"\.(permute|inv_conv)\.", ".invconv."),
    (r"\.affine_coulping\.", ".coupling."),  # sic: the official typo
    (r"\.affine_injector\.", ".injector."),
    (r"\.net\.conv([12])\.conv2d\.", r".net.conv\1."),
    (r"\.net\.conv3\.conv\.", ".net.out.conv."),
    (r"\.net\.conv3\.logs$", ".net.out.logs"),
    (r"\.invconv\.w_p$", ".invconv.perm"),
    (r"\.invconv\.s_sign$", ".invconv.sign"),
]

_CONSTANTS = {
    "l_mask": lambda c: torch.tril(torch.ones(c, c), -1),
    "u_mask": lambda c: torch.triu(torch.ones(c, c), 1),
    "l_eye": lambda c: torch.eye(c),
}

# Config key -> (file, regex whose group 1 is the repeated index).
_COUNTS = {
    "hr_steps": ("hrnet", r"blocks\.0\.steps\.(\d+)\."),
    "hf_steps": ("hrnet", r"blocks\.1\.split\.conditional_flow\.additional_flow_steps\.(\d+)\."),
    "hf_rrdbs": ("hrnet", r"blocks\.1\.split\.conditional_flow\.cond_net\.trunk\.(\d+)\."),
    "lr_steps": ("contentnet", r"blocks\.0\.steps\.(\d+)\."),
    "deg_steps": ("degnet", r"deg_net\.additional_flow_steps\.(\d+)\."),
    "deg_rrdbs": ("degnet", r"deg_net\.cond_net\.0\.trunk\.(\d+)\."),
    "encoder_blocks": ("lrencoder", r"trunk\.(\d+)\."),
}


def _count(state: dict[str, Tensor], pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in state if (m := rx.match(k))})


def sdflow_config(states: dict[str, dict[str, Tensor]]) -> dict:
    """The :class:`SDFlowConfig` fields the official files imply (repeat counts, mixture size)."""
    config = {key: _count(states[file], rx) for key, (file, rx) in _COUNTS.items()}
    level2 = _count(states["hrnet"], r"blocks\.1\.steps\.(\d+)\.")
    if level2 != config["hr_steps"]:
        raise ZoomsrError(
            f"hrnet has {config['hr_steps']} and {level2} flow steps in its two levels; "
            "zoomsr's SDFlow needs the same count in both"
        )
    if "means" not in states["degnet"]:
        raise ZoomsrError("degnet has no 'means': not an official SDFlow DegFlow state dict")
    config["n_gaussians"] = states["degnet"]["means"].numel()
    return config


def _rename(file: str, key: str) -> str | None:
    for pattern, target in _PREFIXES[file]:
        if m := re.match(pattern, key):
            key = m.expand(target) + key[m.end() :]
            break
    else:
        return None
    if m := re.match(r"lr_encoder\.mf_conv\.(\d+)\.", key):  # Sequential(pad, conv, act) x 8
        key = f"lr_encoder.modulation.{(int(m[1]) - 1) // 3 * 2}." + key[m.end() :]
    for pattern, target in _PARTS:
        key = re.sub(pattern, target, key)
    return key


def convert_sdflow_states(states: dict[str, dict[str, Tensor]]) -> tuple[dict[str, Tensor], dict]:
    """zoomsr ``SDFlow`` state dict and config from the four official state dicts, keyed by
    file stem: ``lrencoder``, ``hrnet``, ``contentnet``, ``degnet``."""
    missing = [f for f in _PREFIXES if f not in states]
    if missing:
        raise ZoomsrError(f"SDFlow conversion needs the {', '.join(missing)} state dict(s)")
    out: dict[str, Tensor] = {}
    for file, state in states.items():
        for key, value in state.items():
            name = key.rsplit(".", 1)[-1]
            if name in _CONSTANTS and re.search(r"\.(permute|inv_conv)\.", key):
                expected = _CONSTANTS[name](value.shape[0])
                if not torch.equal(value.float(), expected):
                    raise ZoomsrError(f"{file}: constant '{key}' is not the inv-1x1 {name}")
                continue
            new = _rename(file, key)
            if new is None:
                raise ZoomsrError(f"{file}: key '{key}' is not part of an official SDFlow")
            out[new] = value.float() if value.is_floating_point() else value
    return out, sdflow_config(states)


def load_sdflow(
    lrencoder_path: str | Path,
    hrnet_path: str | Path,
    contentnet_path: str | Path,
    degnet_path: str | Path,
) -> SDFlow:
    """An :class:`SDFlow` (eval mode) from official lrencoder, hrnet, contentnet, degnet files.

    The four ``.pth`` files the official ``sdflow_sr.py`` / ``sdflow_ds.py`` scripts load; the
    model's repeat counts are read from them."""
    paths = dict(
        lrencoder=lrencoder_path, hrnet=hrnet_path, contentnet=contentnet_path, degnet=degnet_path
    )
    states = {file: read_official_state(path) for file, path in paths.items()}
    state, config = convert_sdflow_states(states)
    model = load_model("sdflow", 4, **config)  # sets the registry identity for save_weights
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split("\n")[1:2]).strip() or str(err)
        raise ZoomsrError(f"the SDFlow files do not fit SDFlow {config}: {detail}") from None
    return model.eval()
