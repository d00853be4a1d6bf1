"""Network interpolation (Wang et al., ESRGAN): theta = (1 - alpha) theta_A + alpha theta_B."""

from __future__ import annotations

from pathlib import Path

from zoomsr.errors import ZoomsrError
from zoomsr.models.checkpoints import load_checkpoint_model, read_weights, save_weights


def interpolate_files(a: str | Path, b: str | Path, alpha: float, out: str | Path) -> Path:
    if not 0.0 <= alpha <= 1.0:
        raise ZoomsrError(f"--alpha must be in [0, 1], got {alpha}")
    state_b, meta_b = read_weights(b)
    model = load_checkpoint_model(a)
    state_a = model.state_dict()
    if meta_b["model"] != model.model_name or int(meta_b["scale"]) != model.scale:
        raise ZoomsrError(
            f"cannot interpolate {model.model_name} x{model.scale} with {meta_b['model']} x{meta_b['scale']}"
        )
    if state_a.keys() != state_b.keys() or any(
        state_a[k].shape != state_b[k].shape for k in state_a
    ):
        raise ZoomsrError(f"'{a}' and '{b}' have different architectures")
    blended = {
        k: (1 - alpha) * v + alpha * state_b[k] if v.is_floating_point() else v
        for k, v in state_a.items()
    }
    model.load_state_dict(blended)
    return save_weights(
        model, out, {"interpolated": f"{Path(a).name}*{1 - alpha:g}+{Path(b).name}*{alpha:g}"}
    )
