"""SelfDZSR (ECCV 2022) x4 against the official networks (../shared/parity/selfdzsr_eccv_x4).

Float32 outputs are compared at 1e-4 (the fixture's float64 re-run moved them by < 3e-7).
Intermediates stored as float16 were rounded for storage (error up to 2.5e-4 at their
magnitudes), so they are compared at 1e-3; the match offsets are integers and compared exactly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zoomsr.convert.selfdzsr import (
    downblock_to_unshuffle,
    load_aux_generator,
    load_selfdzsr,
)
from zoomsr.errors import ZoomsrError
from zoomsr.losses.centroid import CentroidLoss
from zoomsr.models import load_model
from zoomsr.models.zoom import AdaSTN, SelfDZSR, correspondence_offsets

FIXTURE = ("parity", "selfdzsr_eccv_x4")
BOX = (9, 15, 12, 20)  # the Ref footprint in LR pixels (meta.json crop_coord)
FP16_ATOL = 1e-3
ATOL = 1e-4


def _array(shared, *name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(shared(*FIXTURE, *name)).astype(np.float32))


@pytest.fixture(scope="module")
def model(shared):
    return load_selfdzsr(
        shared(*FIXTURE, "RefSR_model_401.pth"), shared(*FIXTURE, "Student_model_400.pth")
    )


@pytest.fixture(scope="module")
def trace(shared, model):
    stages: dict[str, torch.Tensor] = {}

    def keep(name, pre=False):
        if pre:
            return lambda _m, args: stages.__setitem__(name, args[0].clone())
        return lambda _m, _a, out: stages.__setitem__(name, out.clone())

    hooks = [
        model.ref_encoder.register_forward_hook(keep("ref_encoder")),
        model.ref_align.register_forward_pre_hook(keep("ref_align_in", pre=True)),
        model.restoration.body_out.register_forward_hook(keep("body_out")),
        model.restoration.upsampler.register_forward_hook(keep("up")),
    ]
    try:
        with torch.no_grad():
            out = model.forward_trace(_array(shared, "lr.npy"), _array(shared, "ref.npy"), BOX)
    finally:
        for h in hooks:
            h.remove()
    return {**out, **stages}


@pytest.mark.parametrize(
    ("key", "file"),
    [
        ("feat_lr", "stu_feat_lr.npy"),
        ("feat_ref", "stu_feat_ref.npy"),
        ("ref_warped", "ref_warped.npy"),
        ("ref_patch", "head_ref.npy"),
    ],
)
def test_fp16_intermediates(trace, shared, key, file):
    expected = _array(shared, file)
    assert trace[key].shape == expected.shape
    torch.testing.assert_close(trace[key], expected, atol=FP16_ATOL, rtol=0)


def test_correspondence_offsets_are_exact(trace, shared):
    expected = _array(shared, "corr_offset.npy")
    assert torch.equal(trace["offsets"], expected)


def test_modulation_vector(trace, shared):
    torch.testing.assert_close(
        trace["modulation"], _array(shared, "modulation.npy"), atol=ATOL, rtol=0
    )


def test_stage_statistics(trace, shared):
    """Per-channel mean and (population) std of the stages the fixture names."""
    stats = _array(shared, "stage_stats.npy")
    names = json.loads(shared(*FIXTURE, "meta.json").read_text())["stage_stats_rows"]
    ours = {
        "ref_extractor.out": trace["ref_encoder"],
        "deform_conv.out(before paste)": trace["ref_warped"],
        "ref_ada.in(after paste)": trace["ref_align_in"],
        "ref_ada.out": trace["ref_feat"],
        "ada3.out(h, test-time)": trace["h"],
        "concat_fea.out": trace["fused"],
        "body_lastconv.out(before +h)": trace["body_out"],
        "up.out": trace["up"],
    }
    for row, name in enumerate(names):
        x = ours[name].transpose(0, 1).flatten(1)
        got = torch.stack([x.mean(1), x.std(1, correction=0)])
        torch.testing.assert_close(got, stats[row], atol=1e-5, rtol=0, msg=name)


def test_sr_output(trace, shared, model):
    expected = _array(shared, "sr.npy")
    torch.testing.assert_close(trace["sr"], expected, atol=ATOL, rtol=0)
    lr, ref = _array(shared, "lr.npy"), _array(shared, "ref.npy")
    with torch.no_grad():
        sr = model(lr, [ref], [BOX])  # the zoom-task signature gives the same
    torch.testing.assert_close(sr, expected, atol=ATOL, rtol=0)


def test_adastn_chain_training_path(shared, model):
    """``adastn_check``: ada1..3 with estimated offsets (training path, no dropout)."""
    lr, ref = _array(shared, "lr.npy"), _array(shared, "ref.npy")
    with torch.no_grad():
        x = model.restoration.embed(lr[:, :, :12, :16])
        g = model.restoration.embed(ref[:, :, :12, :16])
        for block in model.align:
            block.train()
            x = block(x, g)
            block.eval()
    torch.testing.assert_close(x, _array(shared, "adastn_check.npy"), atol=ATOL, rtol=0)


def test_parameter_counts(model):
    restoration = sum(
        p.numel() for n, p in model.named_parameters() if not n.startswith("matcher.")
    )
    assert restoration == 2_054_265
    assert sum(p.numel() for p in model.matcher.parameters()) == 1_110_656
    assert sum(p.numel() for p in load_model("selfdzsr", 4).parameters()) == 2_054_265 + 1_110_656


@pytest.mark.parametrize("weights", ["", "real_nikon_l1sw"])
def test_generator_output_and_losses(shared, weights):
    sub = (weights,) if weights else ()
    gen = load_aux_generator(shared(*FIXTURE, *sub, "KernelGen_model_401.pth"))
    assert sum(p.numel() for p in gen.parameters()) == 630_927
    gt, lr = _array(shared, "gen_gt.npy"), _array(shared, "gen_lr.npy")
    with torch.no_grad():
        out, kernels = gen(gt, lr)
    torch.testing.assert_close(out, _array(shared, *sub, "gen_out.npy"), atol=ATOL, rtol=0)
    meta = json.loads(shared(*FIXTURE, "meta.json").read_text())
    losses = meta["gen_losses_real_nikon_l1sw" if weights else "gen_losses_fixture_weights"]
    l1 = (lr - out).abs().mean().item()
    assert l1 == pytest.approx(losses["KernelGen_L1"], abs=1e-6)
    filt = CentroidLoss()(kernels).item()
    assert filt == pytest.approx(losses["KernelGen_Filter"], rel=1e-5, abs=1e-9)


def test_downblock_permutation_matches_pixel_unshuffle():
    """A conv on DownBlock channels equals the permuted conv on PixelUnshuffle channels."""
    g = torch.Generator().manual_seed(0)
    s, x = 4, torch.rand(1, 3, 8, 12, generator=g)
    w = torch.randn(5, 3 * s * s, 3, 3, generator=g)
    n, c, h, wd = x.shape
    down = (
        x.view(n, c, h // s, s, wd // s, s)
        .permute(0, 3, 5, 1, 2, 4)
        .reshape(n, -1, h // s, wd // s)
    )
    ref = torch.nn.functional.conv2d(down, w, padding=1)
    ours = torch.nn.functional.conv2d(
        torch.nn.PixelUnshuffle(s)(x), downblock_to_unshuffle(w, s), padding=1
    )
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_adastn_fast_path_is_the_centre_deformable_path():
    g = torch.Generator().manual_seed(1)
    block = AdaSTN(8).eval()
    with torch.no_grad():
        block.sampler.weight.copy_(torch.randn(8, 1, 3, 3, generator=g))
        x = torch.randn(2, 8, 7, 9, generator=g)
        fast = block(x)  # eval mode, drop_at_test: the per-channel scale
        torch.testing.assert_close(fast, block.forward_centre_deform(x), atol=1e-5, rtol=0)
        # training-mode dropout (P = 0 for every sample) takes the deformable path
        block.train()
        drop = block(x, torch.randn_like(x), centre=torch.ones(2, dtype=torch.bool))
    torch.testing.assert_close(fast, drop, atol=1e-5, rtol=0)


def test_wrong_inputs_are_explained(model):
    lr = torch.rand(1, 3, 24, 32)
    with pytest.raises(ZoomsrError, match="Ref window of the LR's size"):
        model(lr, [torch.rand(1, 3, 48, 64)], [BOX])
    with pytest.raises(ZoomsrError, match="must span"):
        model(lr, [lr], [(0, 8, 0, 8)])
    with pytest.raises(ZoomsrError, match="one reference"):
        model(lr, [lr, lr], [BOX, BOX])


def test_matching_chunks_do_not_change_the_result(trace):
    """Tiny memory budgets (many row bands and Ref chunks) give the same match."""
    for budget in (1, 5000, 40_000):
        got = correspondence_offsets(trace["feat_lr"], trace["feat_ref"], max_elements=budget)
        assert torch.equal(got, trace["offsets"])


def test_training_forward_has_gradients():
    g = torch.Generator().manual_seed(0)
    model = SelfDZSR(scale=4, n_blocks=2).train()
    lr, ref = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    out = model.forward_trace(lr, ref, (6, 10, 6, 10), guide_lr=lr.flip(-1), generator=g)
    assert out["sr"].shape == (2, 3, 64, 64)
    out["sr"].mean().backward()
    assert model.align[0].affine.weight.grad is not None
    assert model.restoration.blocks[0].mlp[0].weight.grad is not None
    assert all(p.grad is None for p in model.matcher.parameters())  # frozen


def test_matcher_starts_from_imagenet_vgg16():
    from zoomsr.backbones import load_features

    features = load_features("vgg16")
    matcher = SelfDZSR(scale=2, n_blocks=1).matcher.load_imagenet()
    torch.testing.assert_close(matcher.ref_branch.conv3_1.weight, features[10].weight)
    torch.testing.assert_close(matcher.lr_branch.conv1_1.bias, features[0].bias)
    assert not any(p.requires_grad for p in matcher.parameters())


def test_separate_ref_roles_for_tiles():
    """Tiles match an LR-sized Ref window, paste a larger Ref (or none), share one LR centre."""
    g = torch.Generator().manual_seed(0)
    model = SelfDZSR(scale=4, n_blocks=1).eval()
    lr, window = torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 3, 16, 16, generator=g)
    ref, centre = torch.rand(1, 3, 32, 32, generator=g), torch.rand(1, 3, 8, 8, generator=g)
    with torch.no_grad():
        pasted = model.forward_trace(lr, ref, (4, 12, 4, 12), match_ref=window, lr_centre=centre)
        plain = model.forward_trace(lr, ref, None, match_ref=window, lr_centre=centre)
    assert pasted["sr"].shape == plain["sr"].shape == (1, 3, 64, 64)
    assert torch.equal(plain["ref_warped"], pasted["ref_warped"])
    assert not torch.equal(plain["sr"], pasted["sr"])
