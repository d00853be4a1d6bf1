"""SelfTZSR++ (Zhang et al., TPAMI 2024): triple-zoom reference-based SR.

Three cameras (reference §1.2, §3.8; fixture README ``selftzsr_pp_x4``): the LR is the
ultra-wide view, Ref 0 the wide camera (x2 view of the LR's central 1/2) and Ref 1 the tele
(x4 view of its central 1/4), each of the LR's pixel size. Each Ref has its own matching (same
Student), encoder, deformable warp and paste. Fusion is progressive: the wide features join the
AdaSTN-aligned LR features before blocks 0-7, the tele features join the trunk before blocks
8-15; all 16 blocks share one modulation vector (LR centre quarter, tele Ref, first fusion).

``forward(lr, [wide_ref, tele_ref], [wide_box, tele_box]) -> sr``.
"""

from __future__ import annotations

from zoomsr.models.registry import ModelSpec, register
from zoomsr.models.zoom.selfdzsr_pp import ZoomPlusPlus


class SelfTZSRpp(ZoomPlusPlus):
    """SelfTZSR++: refs ``[x scale/2 wide, x scale tele]``, progressive two-stage fusion."""

    label = "SelfTZSR++"

    def __init__(
        self,
        scale: int = 4,
        n_feats: int = 64,
        n_blocks: int = 16,
        drop_prob: float = 0.3,
        paste_prob: float = 0.3,
        match_elements: int = 1 << 24,
    ):
        super().__init__(
            scale, (scale // 2, scale), n_feats, n_blocks, drop_prob, paste_prob, match_elements
        )


register(
    ModelSpec(
        name="selftzsr-pp",
        task="zoom",
        build=SelfTZSRpp,
        scales=(4,),
        default_scale=4,
        summary="SelfTZSR++ (TPAMI 2024): triple-zoom Ref-based SR, 2.27 M params + 1.11 M matcher",
    )
)
