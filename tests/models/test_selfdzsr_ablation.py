"""SelfDZSR ablation switches (align kind, matching, use_ref) build, run and differ as claimed."""

import pytest
import torch

from zoomsr.models.zoom import SelfDZSR
from zoomsr.models.zoom.adastn import AdaSTN, DeformAlign, NoAlign


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lr = torch.rand(1, 3, 32, 32, generator=g)
    ref = torch.roll(lr, shifts=(8, 8), dims=(2, 3))  # matching must find the shift
    return lr, ref, (12, 20, 12, 20)  # x4: an 8x8 LR footprint for a 32x32 Ref


def _net(**kw) -> SelfDZSR:
    torch.manual_seed(0)
    return SelfDZSR(scale=4, n_blocks=2, **kw).eval()


@pytest.mark.parametrize(
    "kind,cls", [("adastn", AdaSTN), ("deform", DeformAlign), ("none", NoAlign)]
)
def test_align_kinds_build_run_and_train(kind, cls):
    net = _net(align=kind)
    assert all(isinstance(b, cls) for b in [*net.align, net.ref_align])
    lr, ref, box = _inputs()
    with torch.no_grad():
        assert net(lr, [ref], [box]).shape == (1, 3, 128, 128)
    net.train()
    out = net.forward_trace(lr, ref, [box], generator=torch.Generator().manual_seed(1))
    out["sr"].mean().backward()
    grads = [p.grad for p in net.restoration.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_no_matching_uses_zero_offsets_and_changes_output():
    lr, ref, box = _inputs()
    with torch.no_grad():
        on = _net().forward_trace(lr, ref, [box])
        off = _net(matching=False).forward_trace(lr, ref, [box])
    assert off["offsets"].abs().sum() == 0
    assert on["offsets"].abs().sum() > 0
    assert not torch.allclose(on["sr"], off["sr"])


def test_without_ref_the_ref_content_is_ignored():
    lr, ref, box = _inputs()
    other = torch.rand(ref.shape, generator=torch.Generator().manual_seed(5))
    net = _net(use_ref=False)
    with torch.no_grad():
        a, b = net(lr, [ref], [box]), net(lr, [other], [box])
    torch.testing.assert_close(a, b)
    with_ref = _net()
    with torch.no_grad():
        assert not torch.allclose(with_ref(lr, [ref], [box]), with_ref(lr, [other], [box]))
