"""SelfDZSR++ and SelfTZSR++ x4 against the official networks (../shared/parity/self{d,t}zsr_pp_x4).

Float32 outputs are compared at 1e-4 (the fixtures' float64 re-runs moved them by < 3e-7),
stage statistics at 1e-5, float16-stored intermediates at 1e-3 (storage rounding up to 2.5e-4)
and the integer match offsets exactly, as the fixture READMEs recommend.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from zoomsr.convert.selfdzsr import CONVERTERS, load_selfdzsr_pp, load_selftzsr_pp
from zoomsr.errors import ZoomsrError
from zoomsr.models import load_model
from zoomsr.models.checkpoints import save_weights
from zoomsr.models.zoom import SelfDZSRpp, SelfTZSRpp
from zoomsr.models.zoom.selfdzsr_pp import adastn_pp

ECCV = ("parity", "selfdzsr_eccv_x4")
ATOL, FP16_ATOL, STATS_ATOL = 1e-4, 1e-3, 1e-5
BOX2, BOX4 = (6, 18, 8, 24), (9, 15, 12, 20)  # meta.json coord_ref2x / coord_ref4x

# Per fixture: loader, Ref files (widest first), their boxes, and our trace key of each
# stage_stats row named in meta.json.
CASES = {
    "selfdzsr_pp_x4": dict(
        load=load_selfdzsr_pp,
        refs=("ref4x.npy",),
        boxes=(BOX4,),
        params=2_037_747,
        trainable=2_037_717,
        stages={
            "ref_extractor_2.out": "ref_feat_ref4x",
            "deform_conv_2.out(before interp/paste)": "warped_ref4x",
            "ref4x_deform after paste (concat_fea.in[64:128])": "aligned_ref4x",
            "ada3.out(h, test-time)": "h",
            "concat_fea.out": "fused_ref4x",
            "body_lastconv.out(before +h)": "body_out",
            "up.out": "up",
        },
    ),
    "selftzsr_pp_x4": dict(
        load=load_selftzsr_pp,
        refs=("ref2x.npy", "ref4x.npy"),
        boxes=(BOX2, BOX4),
        params=2_268_671,
        trainable=2_268_629,
        stages={
            "ref_extractor_1.out": "ref_feat_ref2x",
            "ref_extractor_2.out": "ref_feat_ref4x",
            "deform_conv_1.out(before interp/paste)": "warped_ref2x",
            "deform_conv_2.out(before interp/paste)": "warped_ref4x",
            "ref2x_deform after paste (concat_fea_1.in[64:128])": "aligned_ref2x",
            "ref4x_deform after paste (concat_fea_2.in[64:128])": "aligned_ref4x",
            "ada3.out(h, test-time)": "h",
            "concat_fea_1.out": "fused_ref2x",
            "res_1 after block7 (concat_fea_2.in[0:64])": "trunk_0",
            "concat_fea_2.out": "fused_ref4x",
            "body_lastconv.out(before +h)": "body_out",
            "up.out": "up",
        },
    ),
}


def _array(shared, *parts: str) -> torch.Tensor:
    return torch.from_numpy(np.load(shared(*parts)).astype(np.float32))


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, shared):
    name = request.param
    spec = CASES[name]
    model = spec["load"](
        shared("parity", name, "RefSR_model_401.pth"), shared(*ECCV, "Student_model_400.pth")
    )
    lr = _array(shared, "parity", name, "lr.npy")
    refs = [_array(shared, "parity", name, f) for f in spec["refs"]]
    with torch.no_grad():
        trace = model.forward_trace(lr, refs, list(spec["boxes"]))
    return dict(
        spec, name=name, model=model, lr=lr, refs=refs, refs_files=spec["refs"], trace=trace
    )


def _fixture(shared, case, file: str) -> torch.Tensor:
    return _array(shared, "parity", case["name"], file)


def test_sr_output(case, shared):
    expected = _fixture(shared, case, "sr.npy")
    assert case["trace"]["sr"].shape == expected.shape == (1, 3, 96, 128)
    torch.testing.assert_close(case["trace"]["sr"], expected, atol=ATOL, rtol=0)
    with torch.no_grad():  # the zoom-task signature gives the same
        sr = case["model"](case["lr"], case["refs"], list(case["boxes"]))
    torch.testing.assert_close(sr, expected, atol=ATOL, rtol=0)


def test_modulation_vector(case, shared):
    expected = _fixture(shared, case, "modulation.npy")
    torch.testing.assert_close(case["trace"]["modulation"], expected, atol=ATOL, rtol=0)


def test_correspondence_offsets_are_exact(case, shared):
    for file in case["refs_files"]:
        name = file.removesuffix(".npy")
        expected = _fixture(shared, case, f"corr_offset_{name}.npy")
        assert torch.equal(case["trace"][f"corr_offset_{name}"], expected), name


def test_fp16_intermediates(case, shared):
    """Pasted Ref heads, and the Student features (the LR/x4 ones are the ECCV fixture's)."""
    pairs = {f"head_{f[:-4]}": ("parity", case["name"], f"head_{f}") for f in case["refs_files"]}
    pairs["stu_feat_lr"] = (*ECCV, "stu_feat_lr.npy")
    pairs["stu_feat_ref4x"] = (*ECCV, "stu_feat_ref.npy")
    if "ref2x.npy" in case["refs_files"]:
        pairs["stu_feat_ref2x"] = ("parity", case["name"], "stu_feat_ref2x.npy")
    for key, parts in pairs.items():
        expected = _array(shared, *parts)
        assert case["trace"][key].shape == expected.shape, key
        torch.testing.assert_close(case["trace"][key], expected, atol=FP16_ATOL, rtol=0, msg=key)


def test_stage_statistics(case, shared):
    """Per-channel mean and population std of every stage the fixture names."""
    stats = _fixture(shared, case, "stage_stats.npy")
    names = json.loads(shared("parity", case["name"], "meta.json").read_text())["stage_stats_rows"]
    assert len(names) == stats.shape[0] == len(case["stages"])
    for row, name in enumerate(names):
        x = case["trace"][case["stages"][name]].transpose(0, 1).flatten(1)
        got = torch.stack([x.mean(1), x.std(1, correction=0)])
        torch.testing.assert_close(got, stats[row], atol=STATS_ATOL, rtol=0, msg=name)


def test_adastn_chain_training_path(case, shared):
    """``adastn_check``: ada1..3 with estimated offsets (training path, no dropout)."""
    model = case["model"]
    ref4x = case["refs"][-1]
    with torch.no_grad():
        x = model.restoration.embed(case["lr"][:, :, :12, :16])
        g = model.restoration.embed(ref4x[:, :, :12, :16])
        for block in model.align:
            block.train()
            try:
                x = block(x, g)
            finally:
                block.eval()
    torch.testing.assert_close(x, _fixture(shared, case, "adastn_check.npy"), atol=ATOL, rtol=0)


def test_parameter_counts(case):
    """§3.10: the official RefSR count (MeanShift constants included), plus the Student."""
    model = case["model"]
    params = [(n, p) for n, p in model.named_parameters() if not n.startswith("matcher.")]
    assert sum(p.numel() for _, p in params) == case["params"]
    assert sum(p.numel() for _, p in params if p.requires_grad) == case["trainable"]
    assert sum(p.numel() for p in model.matcher.parameters()) == 1_110_656
    assert all(sum(p.numel() for p in b.parameters()) == 11_398 for b in model.align)
    built = load_model("selfdzsr-pp" if "dzsr" in case["name"] else "selftzsr-pp", 4)
    assert sum(p.numel() for p in built.parameters()) == case["params"] + 1_110_656


def test_pp_adastn_fast_path_is_the_centre_deformable_path():
    """P = 0: the eval-mode per-channel scale equals the deformable conv reading the centre
    (and, ++, no activation follows: negative responses pass unchanged)."""
    g = torch.Generator().manual_seed(3)
    block = adastn_pp(8).eval()
    with torch.no_grad():
        block.sampler.weight.copy_(torch.randn(8, 1, 3, 3, generator=g))
        x = torch.randn(2, 8, 7, 9, generator=g)
        fast = block(x, torch.randn_like(x))  # the guide is ignored at test
        torch.testing.assert_close(fast, block.forward_centre_deform(x), atol=1e-5, rtol=0)
        scale = block.sampler.weight.sum(dim=(1, 2, 3)).view(1, -1, 1, 1)
        torch.testing.assert_close(fast, x * scale, atol=1e-6, rtol=0)
        assert (fast < 0).any()
        block.train()  # training dropout (P = 0 for every sample) takes the deformable path
        drop = block(x, torch.randn_like(x), centre=torch.ones(2, dtype=torch.bool))
        free = block(x, torch.randn_like(x))
    torch.testing.assert_close(fast, drop, atol=1e-5, rtol=0)
    assert not torch.allclose(free, fast, atol=1e-3)


def _small(cls, **kw):
    return cls(scale=4, n_blocks=2, **kw)


@pytest.mark.parametrize("cls", [SelfDZSRpp, SelfTZSRpp])
def test_training_forward_with_guide_and_per_sample_boxes(cls):
    g = torch.Generator().manual_seed(0)
    model = _small(cls).train()
    lr = torch.rand(2, 3, 16, 16, generator=g)
    refs = [torch.rand(2, 3, 16, 16, generator=g) for _ in model.zooms]
    # Per-sample windows, as training draws them: the x2 box is 8x8, the x4 box 4x4 inside it.
    boxes = {
        2: torch.tensor([[0, 8, 0, 8], [8, 16, 4, 12]]),
        4: torch.tensor([[2, 6, 2, 6], [10, 14, 6, 10]]),
    }
    ref_boxes = [boxes[z] for z in model.zooms]
    guide = lr.flip(-1)
    out = model.forward_trace(lr, refs, ref_boxes, guide_lr=guide, generator=g)
    assert out["sr"].shape == (2, 3, 64, 64)
    out["sr"].square().mean().backward()
    # (the sampler learns with or without the P = 0 dropout; the affine head only without)
    for p in (model.align[0].sampler.weight, model.restoration.blocks[0].body[0].weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert model.align[0].affine.weight.grad is not None
    for branch in model.branches:
        assert branch.warp.weight.grad.abs().sum() > 0 and branch.head[2].weight.grad is not None
    assert all(p.grad is None for p in model.matcher.parameters())  # frozen

    # The same generator seed gives the same draws and output; matching ignores the guide.
    model.drop_prob = 0.0  # every AdaSTN estimates offsets, so the guide must matter
    with torch.no_grad():
        a = model.forward_trace(
            lr, refs, ref_boxes, guide_lr=guide, generator=torch.Generator().manual_seed(5)
        )
        b = model.forward_trace(
            lr, refs, ref_boxes, guide_lr=guide, generator=torch.Generator().manual_seed(5)
        )
        plain = model.forward_trace(lr, refs, ref_boxes, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a["sr"], b["sr"], atol=0, rtol=0)
    for z in model.zooms:
        assert torch.equal(a[f"corr_offset_ref{z}x"], plain[f"corr_offset_ref{z}x"])
    assert not torch.allclose(a["h"], plain["h"])  # ... but it does guide the AdaSTNs


@pytest.mark.parametrize("cls", [SelfDZSRpp, SelfTZSRpp])
def test_training_paste_draw_is_per_sample(cls):
    """paste_prob 1 pastes every Ref of every sample at its box, 0 none; nothing else moves."""
    g = torch.Generator().manual_seed(1)
    runs = {}
    for p in (0.0, 1.0):
        torch.manual_seed(0)  # the same weights for both runs
        model = _small(cls, drop_prob=0.0, paste_prob=p).train()
        lr = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
        refs = [lr.roll(k + 1, -1) for k in range(len(model.zooms))]
        boxes = [(4, 12, 4, 12), (6, 10, 6, 10)][-len(refs) :]
        with torch.no_grad():
            runs[p] = model.forward_trace(lr, refs, boxes, generator=g)
    for z, (t, b, left, r) in zip(model.zooms, boxes, strict=True):
        pasted, plain = runs[1.0][f"aligned_ref{z}x"], runs[0.0][f"aligned_ref{z}x"]
        torch.testing.assert_close(pasted[:, :, t:b, left:r], runs[1.0][f"head_ref{z}x"])
        outside = torch.ones_like(pasted, dtype=torch.bool)
        outside[:, :, t:b, left:r] = False
        assert torch.equal(pasted[outside], plain[outside])
        assert not torch.allclose(pasted[:, :, t:b, left:r], plain[:, :, t:b, left:r])


def test_scale_two_dual_zoom_builds_and_runs():
    model = load_model("selfdzsr-pp", 2, n_blocks=2)
    lr, ref = torch.rand(1, 3, 16, 24), torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        sr = model(lr, [ref], [(4, 12, 6, 18)])  # the x2 Ref shows the LR's central half
    assert sr.shape == (1, 3, 32, 48)
    with pytest.raises(ZoomsrError, match="does not support scale 2"):
        load_model("selftzsr-pp", 2)


@pytest.mark.parametrize("cls", [SelfDZSRpp, SelfTZSRpp])
def test_wrong_inputs_are_explained(cls):
    model = _small(cls)
    lr = torch.rand(1, 3, 24, 32)
    refs = [torch.rand(1, 3, 24, 32) for _ in model.zooms]
    boxes = [BOX2, BOX4][-len(refs) :]
    with torch.no_grad():
        model(lr, refs, boxes)  # the valid call runs
    with pytest.raises(ZoomsrError, match="reference"):
        model(lr, [*refs, refs[0]], [*boxes, boxes[0]])
    with pytest.raises(ZoomsrError, match="reference"):
        model(lr, refs[:-1], boxes[:-1])
    with pytest.raises(ZoomsrError, match="multiples of 8"):
        model(lr[:, :, :20], [r[:, :, :20] for r in refs], boxes)
    with pytest.raises(ZoomsrError, match="LR's shape"):
        model(lr, [torch.rand(1, 3, 48, 64) for _ in refs], boxes)
    with pytest.raises(ZoomsrError, match="outside"):
        model(lr, refs, [*boxes[:-1], (20, 26, 12, 20)])
    with pytest.raises(ZoomsrError, match="must span"):
        model(lr, refs, [*boxes[:-1], (0, 8, 0, 8)])
    with pytest.raises(ZoomsrError, match="boxes for a batch"):
        model(lr, refs, [*boxes[:-1], torch.tensor([BOX4, BOX4])])
    with pytest.raises(ZoomsrError, match="guide LR"):
        model.forward_trace(lr, refs, boxes, guide_lr=lr[:, :, :16])


def test_converters_are_registered_and_refuse_the_wrong_file(shared):
    assert CONVERTERS["selfdzsr-pp"] is load_selfdzsr_pp
    assert CONVERTERS["selftzsr-pp"] is load_selftzsr_pp
    student = shared(*ECCV, "Student_model_400.pth")
    with pytest.raises(ZoomsrError, match="selftzsr-pp checkpoint"):
        load_selfdzsr_pp(shared("parity", "selftzsr_pp_x4", "RefSR_model_401.pth"), student)
    with pytest.raises(ZoomsrError, match="ECCV"):
        load_selftzsr_pp(shared(*ECCV, "RefSR_model_401.pth"), student)


def test_converted_model_file_round_trip(case, tmp_path):
    """A converted model saved as safetensors loads by path alone and restores the same."""
    path = save_weights(case["model"], tmp_path / "pp.safetensors")
    again = load_model(str(path))
    assert type(again) is type(case["model"])
    with torch.no_grad():
        sr = again(case["lr"], case["refs"], list(case["boxes"]))
    torch.testing.assert_close(sr, case["trace"]["sr"], atol=0, rtol=0)
