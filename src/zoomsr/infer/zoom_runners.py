"""The per-family runners behind :func:`zoomsr.infer.zoom.run_zoom`: whole-image, tiled and
ECCV-chop inference of SelfDZSR (ECCV) and the ++ models, sharing one tiled pipeline (Ref
features once, windowed matching per block, the modulation vector once, blended trunk tiles)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoomsr.errors import ZoomsrError
from zoomsr.infer.zoom import FRONT_MARGIN, Box, Progress, ZoomOptions, ref_zooms
from zoomsr.models.zoom import matching as M
from zoomsr.ops.tiles import blend_window, plan_tiles


def _clip(box: Box, region: Box) -> Box | None:
    t, b = max(box[0], region[0]), min(box[1], region[1])
    left, r = max(box[2], region[2]), min(box[3], region[3])
    return (t, b, left, r) if t < b and left < r else None


def _fit(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``x`` centre-cropped or edge-padded to ``size`` (an LR-sized image of the Ref to match)."""
    for dim, want in ((-2, size[0]), (-1, size[1])):
        have = x.shape[dim]
        if have > want:
            start = (have - want) // 2
            x = x.narrow(dim, start, want)
        elif have < want:
            a = (want - have) // 2
            pad = (0, 0, a, want - have - a) if dim == -2 else (a, want - have - a, 0, 0)
            x = F.pad(x, pad, mode="replicate")
    return x


def _fit_shift(have: int, want: int) -> int:
    """Where pixel 0 of a side of ``have`` px lands after :func:`_fit` to ``want`` px."""
    return (want - have) // 2 if want >= have else -((have - want) // 2)


def _window(centre: float, side: int, size: int) -> tuple[int, int]:
    """``[start, start + side)`` centred on ``centre`` and moved inside ``[0, size)``."""
    side = min(side, size)
    start = round(centre - side / 2)
    start = max(0, min(start, size - side))
    return start, start + side


def _span(lo: int, hi: int, tile: int) -> list[tuple[int, int]]:
    return [(a, min(hi, a + tile)) for a in range(lo, hi, max(1, tile))]


@dataclass
class _RefState:
    """One reference as the tiled runner holds it (coordinates in padded-LR pixels)."""

    zoom: int
    image: torch.Tensor  # the Ref, its box at ``zoom`` x: pasted, and the modulation input
    box: Box
    match: torch.Tensor  # the Ref at the LR's size: matched and warped from
    encoder: nn.Module
    warp: nn.Module
    head: nn.Module
    enc: torch.Tensor | None = None  # encoder features of ``match`` (1 x C x H x W)
    student: torch.Tensor | None = None  # Student features of ``match`` (1 x 256 x H/4 x W/4)
    offsets: torch.Tensor | None = None  # matched offsets, feature pixels (1 x 18 x H/4 x W/4)


class ZoomRunner:
    """Tiled inference of a zoom model, built from its submodules (model files stay plain
    networks). Subclasses name the Ref branches and the trunk after the Ref features."""

    def __init__(self, model: nn.Module, device: torch.device, progress: Progress):
        self.model, self.device, self.progress = model, device, progress
        self.s = model.scale

    # -- what differs between models -----------------------------------------------------------

    def branches(self) -> list[tuple[nn.Module, nn.Module, nn.Module]]:
        """(encoder, deformable warp, paste head) of each Ref, widest first."""
        raise NotImplementedError

    matching = True  # False: zero offsets (ablation)
    use_ref = True  # False: every Ref input is zero (ablation)

    def after_paste(self, pasted: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        return pasted

    def fuse_first(self, h: torch.Tensor, aligned: list[torch.Tensor]) -> torch.Tensor:
        """The first fusion: the modulation encoder's feature input."""
        raise NotImplementedError

    def decode(self, h, aligned, fused, modulation) -> torch.Tensor:
        raise NotImplementedError

    def margin(self) -> int:
        raise NotImplementedError

    def whole(self, lr, refs, boxes) -> torch.Tensor:
        d = self.device
        return self.model(lr.to(d), [r.to(d) for r in refs], boxes).float().cpu()

    def eccv(self, lr, refs, boxes) -> torch.Tensor:
        name = getattr(self.model, "model_name", type(self.model).__name__)
        raise ZoomsrError(f"the ECCV chop is for SelfDZSR, not {name}; use 'whole' or 'tiled'")

    # -- shared ------------------------------------------------------------------------------

    def _refs(self, lr, refs, boxes) -> list[_RefState]:
        zooms = ref_zooms(self.model)
        if len(refs) != len(zooms):
            raise ZoomsrError(
                f"{getattr(self.model, 'model_name', type(self.model).__name__)} takes "
                f"{len(zooms)} reference(s), got {len(refs)}"
            )
        size = tuple(lr.shape[-2:])
        out = []
        for ref, box, z, (enc, warp, head) in zip(refs, boxes, zooms, self.branches(), strict=True):
            if (box[1] - box[0]) * z != ref.shape[-2] or (box[3] - box[2]) * z != ref.shape[-1]:
                raise ZoomsrError(
                    f"the x{z} Ref ({ref.shape[-1]}x{ref.shape[-2]}) must show its box {box} at "
                    f"x{z}: {(box[3] - box[2]) * z}x{(box[1] - box[0]) * z} px"
                )
            if not self.use_ref:  # ablation: the same network, told nothing by the Ref
                ref = torch.zeros_like(ref)
            out.append(_RefState(z, ref, box, _fit(ref, size), enc, warp, head))
        return out

    def tiled(self, lr, refs, boxes, opts: ZoomOptions) -> torch.Tensor:
        s = self.s
        self.lr, self.size = lr, tuple(lr.shape[-2:])
        self.refs = self._refs(lr, refs, boxes)
        t, b, left, r = self.refs[-1].box  # the modulation reads the narrowest Ref's box
        self.lr_centre = lr[..., t:b, left:r]
        tile = max(8, opts.tile)
        overlap = min(opts.overlap, tile // 2)  # plan_tiles needs tiles longer than the overlap
        self._ref_features(tile)
        self._match(opts)
        margin = opts.margin if opts.margin is not None else self.margin()
        self.modulation = self._modulation(tile)

        big_h, big_w = self.size
        out = torch.zeros(1, 3, s * big_h, s * big_w)
        weight = torch.zeros(1, 1, s * big_h, s * big_w)
        for tl in self.progress(plan_tiles(big_h, big_w, tile, overlap), "restore"):
            region = (
                max(0, tl.top - margin),
                min(big_h, tl.top + tl.height + margin),
                max(0, tl.left - margin),
                min(big_w, tl.left + tl.width + margin),
            )
            h, aligned = self._front(region)
            fused = self.fuse_first(h, aligned)
            y = self.decode(h, aligned, fused, self.modulation).float().cpu()
            dy, dx = s * (tl.top - region[0]), s * (tl.left - region[2])
            y = y[..., dy : dy + s * tl.height, dx : dx + s * tl.width]
            win = blend_window(tl, big_h, big_w, overlap, s)
            rows = slice(s * tl.top, s * (tl.top + tl.height))
            cols = slice(s * tl.left, s * (tl.left + tl.width))
            out[..., rows, cols] += y * win
            weight[..., rows, cols] += win
        self.refs = []  # the Ref features (gigabytes on 12 MP) are no longer needed
        return out.div_(weight)

    def _ref_features(self, tile: int) -> None:
        """Each Ref's Student features (1/4 size) and encoder features, once, tile by tile."""
        m, d = self.model, self.device
        big_h, big_w = self.size
        fh, fw = big_h // M.FEATURE_STRIDE, big_w // M.FEATURE_STRIDE
        parts = []
        for ref in self.refs:
            ref.enc = torch.zeros(1, ref.encoder[-1].out_channels, big_h, big_w)
            parts += [
                (ref, "enc", y, x) for y in _span(0, big_h, tile) for x in _span(0, big_w, tile)
            ]
            if self.matching:
                ref.student = torch.zeros(1, m.matcher.ref_branch.conv3_1.out_channels, fh, fw)
                step = max(1, tile // M.FEATURE_STRIDE)
                parts += [
                    (ref, "stu", y, x) for y in _span(0, fh, step) for x in _span(0, fw, step)
                ]
        for ref, kind, (y0, y1), (x0, x1) in self.progress(parts, "ref features"):
            if kind == "stu":
                f = M.student_window(m.matcher, ref.match, "ref", (y0, y1), (x0, x1))
                ref.student[..., y0:y1, x0:x1] = f.float().cpu()
                continue
            reach = sum(isinstance(k, nn.Conv2d) and k.kernel_size[0] > 1 for k in ref.encoder)
            a0, a1 = max(0, y0 - reach), min(big_h, y1 + reach)
            b0, b1 = max(0, x0 - reach), min(big_w, x1 + reach)
            e = ref.encoder(ref.match[..., a0:a1, b0:b1].to(d))
            ref.enc[..., y0:y1, x0:x1] = e[..., y0 - a0 : y1 - a0, x0 - b0 : x1 - b0].cpu()

    def _block_window(self, ref: _RefState, block: Box, side: int, selector) -> Box:
        """The Ref window (feature pixels) a block of LR features ``block`` (LR px) searches."""
        big_h, big_w = self.size
        fh, fw = big_h // M.FEATURE_STRIDE, big_w // M.FEATURE_STRIDE
        if side <= 0 or (side >= fh and side >= fw):
            return 0, fh, 0, fw
        inside = _clip(block, ref.box)
        if inside is not None:
            # The Ref shows its box at zoom x: the co-located Ref part, in LR-sized coordinates.
            t, _, left, _ = ref.box
            cy = ((inside[0] + inside[1]) / 2 - t) * ref.zoom
            cx = ((inside[2] + inside[3]) / 2 - left) * ref.zoom
            cy += _fit_shift(ref.image.shape[-2], big_h)
            cx += _fit_shift(ref.image.shape[-1], big_w)
        else:
            crop = self.lr[..., block[0] : block[1], block[2] : block[3]]
            top, lft = selector(crop)
            cy = top + (block[1] - block[0]) / 2
            cx = lft + (block[3] - block[2]) / 2
        y0, y1 = _window(cy / M.FEATURE_STRIDE, side, fh)
        x0, x1 = _window(cx / M.FEATURE_STRIDE, side, fw)
        return y0, y1, x0, x1

    def _match(self, opts: ZoomOptions) -> None:
        """Each Ref's offsets from blockwise matching, one Ref window per block."""
        m = self.model
        big_h, big_w = self.size
        fh, fw = big_h // M.FEATURE_STRIDE, big_w // M.FEATURE_STRIDE
        if fh < 3 or fw < 3:
            raise ZoomsrError(f"the LR ({big_w}x{big_h}) is too small to match (12 px per side)")
        if not self.matching:
            for ref in self.refs:
                ref.offsets = torch.zeros(1, 18, fh, fw)
            return
        side = max(3, opts.window // M.FEATURE_STRIDE) if opts.window > 0 else 0
        step = max(1, opts.block // M.FEATURE_STRIDE)
        blocks = [(y, x) for y in _span(0, fh - 2, step) for x in _span(0, fw - 2, step)]
        selectors = [None] * len(self.refs)
        if side and not (side >= fh and side >= fw):
            size = (M.FEATURE_STRIDE * (step + 2),) * 2
            stride = max(1, step * M.FEATURE_STRIDE // 32)
            selectors = [M.PatchSelector(r.match, size, factor=8, stride=stride) for r in self.refs]
        flows = [torch.zeros(2, fh - 2, fw - 2, dtype=torch.long) for _ in self.refs]
        for (y0, y1), (x0, x1) in self.progress(blocks, "match"):
            f_lr = M.student_window(m.matcher, self.lr, "lr", (y0, y1 + 2), (x0, x1 + 2))
            lr_block = tuple(M.FEATURE_STRIDE * v for v in (y0, y1 + 2, x0, x1 + 2))
            for ref, selector, flow in zip(self.refs, selectors, flows, strict=True):
                wy0, wy1, wx0, wx1 = self._block_window(ref, lr_block, side, selector)
                f_ref = ref.student[..., wy0:wy1, wx0:wx1].to(f_lr.device)
                got = M.match_flow(f_lr[0], f_ref[0], (y0, x0), (wy0, wx0), m.match_elements)
                flow[:, y0:y1, x0:x1] = got.cpu()
        for ref, flow in zip(self.refs, flows, strict=True):
            ref.offsets = M.flow_to_offsets(flow, fh, fw)[None]
            ref.student = None  # matched: free the Student features (0.8 GB per 12 MP Ref)

    def _patch(self, ref: _RefState, part: Box) -> torch.Tensor:
        """The paste head on the LR pixels ``part`` of the Ref's box (1 px of context)."""
        z = ref.zoom
        t, b, left, r = ref.box
        c = (max(t, part[0] - 1), min(b, part[1] + 1), max(left, part[2] - 1), min(r, part[3] + 1))
        crop = ref.image[
            ..., z * (c[0] - t) : z * (c[1] - t), z * (c[2] - left) : z * (c[3] - left)
        ]
        p = ref.head(crop.to(self.device))
        return p[..., part[0] - c[0] : part[1] - c[0], part[2] - c[2] : part[3] - c[2]]

    def _front(self, region: Box) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Aligned LR features ``h`` and each Ref's features after its paste (exact away from the
        region's border), from the LR region and the global Ref data."""
        m, d = self.model, self.device
        y0, y1, x0, x1 = region
        rest = m.restoration
        guide = rest.embed(self.lr[..., y0:y1, x0:x1].to(d))
        h = guide
        for block in m.align:
            h = block(h, guide, None)
        fh, fw = self.size[0] // M.FEATURE_STRIDE, self.size[1] // M.FEATURE_STRIDE
        a0, a1 = M.ac_source_range(fh, self.size[0], y0, y1)
        b0, b1 = M.ac_source_range(fw, self.size[1], x0, x1)
        aligned = []
        for ref in self.refs:
            off = M.ac_resize_window(
                ref.offsets[..., a0:a1, b0:b1], (a0, b0), (fh, fw), self.size, (y0, y1), (x0, x1)
            )
            off = (off * M.FEATURE_STRIDE).to(d)
            feat = M.deform_window(ref.enc, off, (y0, x0), ref.warp.weight, ref.warp.bias)
            part = _clip(ref.box, region)
            if part is not None:
                patch = self._patch(ref, part)
                feat[..., part[0] - y0 : part[1] - y0, part[2] - x0 : part[3] - x0] = patch
            aligned.append(self.after_paste(feat, guide))
        return h, aligned

    def _modulation(self, tile: int) -> torch.Tensor:
        """The modulation vector of the whole image, computed in strips with exact halos."""
        pred = self.model.restoration.predictor
        grid = tuple(self.refs[-1].image.shape[-2:])  # the encoder works on the Ref's grid
        convs, sizes = [], [grid]
        for layer in pred.body:
            if isinstance(layer, nn.Conv2d):
                convs.append([layer, []])
                (k, _), (st, _), (p, _) = layer.kernel_size, layer.stride, layer.padding
                sizes.append(tuple((n + 2 * p - k) // st + 1 for n in sizes[-1]))
            elif isinstance(layer, nn.AdaptiveAvgPool2d):
                break
            else:
                convs[-1][1].append(layer)
        final = sizes[-1]
        total_stride = 1
        for conv, _ in convs:
            total_stride *= conv.stride[0]
        step = max(1, tile // total_stride)
        parts = [(y, x) for y in _span(0, final[0], step) for x in _span(0, final[1], step)]
        total = None
        for rows, cols in self.progress(parts, "modulation"):
            need = [(rows, cols)]
            for conv, _ in reversed(convs):
                (k, _), (st, _), (p, _) = conv.kernel_size, conv.stride, conv.padding
                (r0, r1), (c0, c1) = need[0]
                need.insert(
                    0, ((r0 * st - p, (r1 - 1) * st - p + k), (c0 * st - p, (c1 - 1) * st - p + k))
                )
            x = self._predictor_input(need[0], grid)
            for i, (conv, acts) in enumerate(convs):
                x = F.conv2d(x, conv.weight, conv.bias, conv.stride)
                for act in acts:
                    x = act(x)
                (r0, r1), (c0, c1) = need[i + 1]
                x = _zero_outside(x, (r0, c0), sizes[i + 1])
            part = x.sum(dim=(-2, -1), keepdim=True)
            total = part if total is None else total + part
        return total / (final[0] * final[1])

    def _predictor_input(self, need, grid) -> torch.Tensor:
        """``[image_head(LR centre, Ref) ; fused]`` on the Ref grid rows x cols of ``need``
        (zeros outside the grid), as the modulation encoder builds it."""
        m, d = self.model, self.device
        pred = m.restoration.predictor
        (p0, p1), (q0, q1) = need
        r0, r1 = max(0, p0), min(grid[0], p1)
        c0, c1 = max(0, q0), min(grid[1], q1)
        # image part: the head conv reads one more pixel on each side
        conv = pred.image_head[0]
        k = conv.kernel_size[0] // 2
        a0, a1 = max(0, r0 - k), min(grid[0], r1 + k)
        b0, b1 = max(0, c0 - k), min(grid[1], c1 + k)
        cs = tuple(self.lr_centre.shape[-2:])
        i0, i1 = M.ac_source_range(cs[0], grid[0], a0, a1)
        j0, j1 = M.ac_source_range(cs[1], grid[1], b0, b1)
        up = M.ac_resize_window(
            self.lr_centre[..., i0:i1, j0:j1], (i0, j0), cs, grid, (a0, a1), (b0, b1)
        )
        ref = self.refs[-1].image[..., a0:a1, b0:b1].to(d)
        image = torch.cat([pred.shift(up.to(d)), pred.shift(ref)], 1)
        image = F.pad(image, (b0 - (c0 - k), (c1 + k) - b1, a0 - (r0 - k), (r1 + k) - a1))
        e = pred.image_head[1:](F.conv2d(image, conv.weight, conv.bias))
        # fused part, from the trunk on the LR region those Ref-grid pixels resize from
        big_h, big_w = self.size
        y0, y1 = M.ac_source_range(big_h, grid[0], r0, r1)
        x0, x1 = M.ac_source_range(big_w, grid[1], c0, c1)
        region = (
            max(0, y0 - FRONT_MARGIN),
            min(big_h, y1 + FRONT_MARGIN),
            max(0, x0 - FRONT_MARGIN),
            min(big_w, x1 + FRONT_MARGIN),
        )
        fused = self.fuse_first(*self._front(region))
        c = M.ac_resize_window(fused, (region[0], region[2]), self.size, grid, (r0, r1), (c0, c1))
        x = torch.cat([e, c], dim=1)
        return F.pad(x, (c0 - q0, q1 - c1, r0 - p0, p1 - r1))


class SelfDZSRRunner(ZoomRunner):
    """:class:`~zoomsr.models.zoom.SelfDZSR`: one Ref, the Ref AdaSTN after the paste."""

    def __init__(self, model: nn.Module, device: torch.device, progress: Progress):
        super().__init__(model, device, progress)
        self.matching, self.use_ref = model.matching, model.use_ref

    def branches(self):
        m = self.model
        return [(m.ref_encoder, m.ref_warp, m.ref_head)]

    def after_paste(self, pasted, guide):
        return self.model.ref_align(pasted, guide)

    def fuse_first(self, h, aligned):
        return self.model.restoration.fuse_features(h, aligned[0])

    def decode(self, h, aligned, fused, modulation):
        return self.model.restoration.decode(h, fused, modulation)

    def margin(self) -> int:
        return receptive_margin(self.model)

    def whole(self, lr, refs, boxes) -> torch.Tensor:
        (ref,) = self._refs(lr, refs, boxes)
        d = self.device
        trace = self.model.forward_trace(
            lr.to(d), ref.image.to(d), ref.box, match_ref=ref.match.to(d)
        )
        return trace["sr"].float().cpu()

    # -- ECCV chop -----------------------------------------------------------------------------

    def eccv(self, lr, refs, boxes) -> torch.Tensor:
        s, d = self.s, self.device
        (state,) = self._refs(lr, refs, boxes)
        ref, box = state.image, state.box
        if s not in (2, 4):
            raise ZoomsrError(f"the ECCV chop is defined for x2 and x4, not x{s}")
        n = 3 if s == 4 else 6
        big_h, big_w = lr.shape[-2:]
        hp, wp = (big_h // 24 + 1) * 24 + 16, (big_w // 24 + 1) * 24 + 16
        pt, pl = (hp - big_h) // 2, (wp - big_w) // 2
        if pt >= big_h or pl >= big_w:
            raise ZoomsrError(f"the LR ({big_w}x{big_h}) is too small for the ECCV chop")
        lrp = F.pad(lr, (pl, wp - big_w - pl, pt, hp - big_h - pt), mode="reflect")
        th, tw = (hp - 16) // n, (wp - 16) // n
        size = (th + 16, tw + 16)
        t, b, left, r = box
        lr_centre = lr[..., t:b, left:r].to(d)
        boxp = (t + pt, b + pt, left + pl, r + pl)
        match_ref = _fit(ref, (max(size[0], ref.shape[-2]), max(size[1], ref.shape[-1])))
        offy = _fit_shift(ref.shape[-2], match_ref.shape[-2])
        offx = _fit_shift(ref.shape[-1], match_ref.shape[-1])
        selector = M.PatchSelector(match_ref, size, factor=8, stride=1)
        out = torch.zeros(1, 3, s * n * th, s * n * tw)
        grid = [(j, i) for j in range(n) for i in range(n)]
        for j, i in self.progress(grid, "eccv tiles"):
            ty, tx = th * j, tw * i
            tile = lrp[..., ty : ty + size[0], tx : tx + size[1]]
            core = (ty + 8, ty + 8 + th, tx + 8, tx + 8 + tw)
            part = _clip(boxp, (ty, ty + size[0], tx, tx + size[1])) if _clip(boxp, core) else None
            if part is not None:  # the Ref window co-located with the footprint part
                cy = ((part[0] + part[1]) / 2 - boxp[0]) * s + offy
                cx = ((part[2] + part[3]) / 2 - boxp[2]) * s + offx
                wy, _ = _window(cy, size[0], match_ref.shape[-2])
                wx, _ = _window(cx, size[1], match_ref.shape[-1])
            else:
                wy, wx = selector(tile)
            patch = match_ref[..., wy : wy + size[0], wx : wx + size[1]]
            paste_part = None
            if part is not None:
                rp = ref[
                    ...,
                    s * (part[0] - boxp[0]) : s * (part[1] - boxp[0]),
                    s * (part[2] - boxp[2]) : s * (part[3] - boxp[2]),
                ]
                paste_part = (rp, (part[0] - ty, part[1] - ty, part[2] - tx, part[3] - tx))
            y = self._eccv_tile(tile.to(d), patch.to(d), paste_part, lr_centre, ref.to(d))
            out[..., s * ty : s * (ty + th), s * tx : s * (tx + tw)] = y[
                ..., 8 * s : 8 * s + s * th, 8 * s : 8 * s + s * tw
            ].cpu()
        return out[..., s * (pt - 8) : s * (pt - 8 + big_h), s * (pl - 8) : s * (pl - 8 + big_w)]

    def _eccv_tile(self, tile, patch, paste_part, lr_centre, ref) -> torch.Tensor:
        """One tile as its own image: Student(tile, patch), paste, per-tile modulation."""
        m = self.model
        feat_lr, feat_ref = m.matcher(tile, patch)
        if m.matching:
            offsets = M.correspondence_offsets(feat_lr, feat_ref, m.match_elements)
        else:
            offsets = feat_lr.new_zeros(1, 18, *feat_lr.shape[-2:])
        warped = m.ref_warp(m.ref_encoder(patch), M.offsets_to_image(offsets))
        rest = m.restoration
        guide = rest.embed(tile)
        h = guide
        for block in m.align:
            h = block(h, guide, None)
        if paste_part is not None:
            rp, (t, b, left, r) = paste_part
            warped[..., t:b, left:r] = m.ref_head(rp.to(tile.device))
        fused = rest.fuse_features(h, m.ref_align(warped, guide))
        return rest.decode(h, fused, rest.predictor(lr_centre, ref, fused))


def _zero_outside(x: torch.Tensor, origin: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Zero the rows and columns of a window (at ``origin``) that lie outside a ``size`` map:
    there the next conv must read its zero padding, not values computed from padding."""
    y0, x0 = origin
    h, w = x.shape[-2:]
    ry = torch.arange(y0, y0 + h, device=x.device)
    rx = torch.arange(x0, x0 + w, device=x.device)
    keep = ((ry >= 0) & (ry < size[0]))[:, None] & ((rx >= 0) & (rx < size[1]))[None]
    return x * keep


class PlusPlusRunner(ZoomRunner):
    """SelfDZSR++ / SelfTZSR++: one branch per Ref, no Ref AdaSTN, progressive fusion."""

    def branches(self):
        return [(b.encoder, b.warp, b.head) for b in self.model.branches]

    def _fuses(self) -> list[nn.Module]:
        return [self.model.restoration.fuse, *self.model.extra_fuse]

    def fuse_first(self, h, aligned):
        return self._fuses()[0](torch.cat([h, aligned[0]], dim=1))

    def decode(self, h, aligned, fused, modulation):
        rest, fuses = self.model.restoration, self._fuses()
        per_stage = len(rest.blocks) // len(fuses)
        x = fused
        for k, feats in enumerate(aligned):
            if k:
                x = fuses[k](torch.cat([x, feats], dim=1))
            for block in rest.blocks[k * per_stage : (k + 1) * per_stage]:
                x = block(x, modulation)
        return rest.tail(rest.upsampler(rest.body_out(x) + h))

    def margin(self) -> int:
        return receptive_margin(self.model) + len(self.model.extra_fuse)

    def whole(self, lr, refs, boxes) -> torch.Tensor:
        if all(r.shape == lr.shape for r in refs):
            return super().whole(lr, refs, boxes)
        # The network wants Refs of the LR's size; one exact tile accepts any Ref size.
        side = max(lr.shape[-2:])
        return self.tiled(lr, refs, boxes, ZoomOptions("tiled", tile=side, margin=0, window=0))


def receptive_margin(model: nn.Module) -> int:
    """LR px of context that make a tile's output equal the whole image's: the trunk's 3x3
    convs after the fusion (two per block), the upsampler and tail, and the front (head, Ref
    AdaSTN with its sampling reach, fusion)."""
    return 2 * len(model.restoration.blocks) + 4 + FRONT_MARGIN


def runner_table() -> dict[type, type]:
    """Model class -> its runner class."""
    from zoomsr.models.zoom.selfdzsr import SelfDZSR

    runners: dict[type, type] = {SelfDZSR: SelfDZSRRunner}
    try:  # the ++ models live in their own module
        from zoomsr.models.zoom.selfdzsr_pp import ZoomPlusPlus
    except ImportError:
        return runners
    return {**runners, ZoomPlusPlus: PlusPlusRunner}
