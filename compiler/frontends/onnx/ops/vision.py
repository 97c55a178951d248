"""ONNX vision operators for the operator table: sampling (GridSample, RoiAlign, DeformConv),
detection (NonMaxSuppression), unpooling and patch folding (MaxUnpool, Col2Im) and
CenterCropPad.

Sampling is built from registry operators: each spatial axis gives a few taps (an integer
pixel index and a weight per output position, computed elementwise from the coordinates);
the image, laid out as rows of channels [N*H*W, C], is gathered at the combined index of
each tap pair and the rows are summed with the product of the weights. Nothing is
approximated: the taps are the ones onnx's reference and onnxruntime evaluate.

NonMaxSuppression's output length depends on the values (like NonZero's): it is computed at
import time when its inputs are constant and refused (Unsupported, naming the node)
otherwise; Lamina's graphs have static shapes.
"""

from __future__ import annotations

import math

import numpy as np

from ir.tensor_type import dtype_name

from ..builder import Builder, OnnxNode, Unsupported
from .common import HANDLERS, dtype, handler, is_const, like, rank
from .elementwise import _trunc

I64 = np.int64


# ---- elementwise helpers ---------------------------------------------------------------------
def _floor(b: Builder, n: OnnxNode, x):
    return HANDLERS["Floor"](b, n, x)


def _rint(b: Builder, n: OnnxNode, x):
    """Round half to even (numpy's rint): floor(x + 0.5), one less on an odd tie."""
    r = _floor(b, n, b.call("add", x, like(x, 0.5)))
    tie = b.call("equal", b.call("sub", r, x), like(x, 0.5))
    half = _floor(b, n, b.call("mul", r, like(x, 0.5)))
    odd = b.call("equal", b.call("sub", r, b.call("mul", half, like(x, 2))), like(x, 1))
    return b.call("where", b.call("where", tie, odd, np.asarray(False)),
                  b.call("sub", r, like(x, 1)), r)


def _reflect(b: Builder, n: OnnxNode, x, lo: float, hi: float):
    """x reflected by the nearer border until it lies in [lo, hi] (onnx's `_gs_reflect`)."""
    span = hi - lo
    if span <= 0:  # a one-pixel axis with align_corners: every coordinate reflects onto it
        return b.call("clip", x, min=lo, max=hi)
    below = b.call("greater", like(x, lo), x)
    dx = b.call("where", below, b.call("sub", like(x, lo), x), b.call("sub", x, like(x, hi)))
    k = _trunc(b, b.call("div", dx, like(x, span)))
    r = b.call("sub", dx, b.call("mul", k, like(x, span)))
    odd = b.call("equal", b.call("sub", k, b.call("mul", _floor(b, n, b.call(
        "mul", k, like(x, 0.5))), like(x, 2))), like(x, 1))
    near = b.call("where", below, b.call("add", like(x, lo), r), b.call("sub", like(x, hi), r))
    far = b.call("where", below, b.call("sub", like(x, hi), r), b.call("add", like(x, lo), r))
    moved = b.call("where", odd, far, near)
    outside = b.call("where", below, np.asarray(True), b.call("greater", x, like(x, hi)))
    return b.call("where", outside, moved, x)


def _index(b: Builder, x):
    """A float tensor of whole numbers as int64 indices."""
    return b.call("cast", x, dtype="i64")


def _cast_like(b: Builder, x, to):
    dt = dtype(to)
    if dtype(x) == dt:
        return x
    return x.astype(dt) if is_const(x) else b.call("cast", x, dtype=dtype_name(dt))


# ---- GridSample ------------------------------------------------------------------------------
CUBIC_A = -0.75


def _cubic_coeffs(b: Builder, t):
    """Keys' cubic convolution weights (a = -0.75) of the taps at -1, 0, 1, 2 for a fraction
    t in [0, 1), written as onnx's reference writes them."""
    a = CUBIC_A

    def far(u):  # ((a u - 5a) u + 8a) u - 4a, for 1 <= u < 2
        p = b.call("add", b.call("mul", b.call("sub", b.call("mul", u, like(u, a)),
                                               like(u, 5 * a)), u), like(u, 8 * a))
        return b.call("sub", b.call("mul", p, u), like(u, 4 * a))

    def near(u):  # ((a + 2) u - (a + 3)) u u + 1, for u < 1
        p = b.call("sub", b.call("mul", u, like(u, a + 2)), like(u, a + 3))
        return b.call("add", b.call("mul", b.call("mul", p, u), u), like(u, 1))

    one_minus = b.call("sub", like(t, 1), t)
    return [far(b.call("add", t, like(t, 1))), near(t), near(one_minus),
            far(b.call("sub", like(t, 2), t))]


def _grid_taps(b: Builder, n: OnnxNode, g, size: int, mode: str, padding: str, align: bool):
    """[(index, weight)] along one axis for normalised coordinates g: the int64 pixel index
    each tap reads (always inside [0, size)) and its weight (0 where zero padding reads
    outside the image)."""
    lo, hi = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
    if align:
        x = b.call("mul", b.call("add", g, like(g, 1)), like(g, (size - 1) / 2))
    else:
        x = b.call("mul", b.call("sub", b.call("mul", b.call("add", g, like(g, 1)),
                                                like(g, size)), like(g, 1)), like(g, 0.5))
    return _pixel_taps(b, n, x, size, mode, padding, lo, hi)


def _pixel_taps(b: Builder, n: OnnxNode, x, size: int, mode: str, padding: str,
                lo: float = -0.5, hi: float | None = None):
    """_grid_taps for pixel coordinates x; [lo, hi] is the range reflection folds into."""
    hi = size - 0.5 if hi is None else hi
    if mode == "nearest":
        x = _rint(b, n, x)
    if mode == "cubic":
        pass  # only the taps are moved inside (onnxruntime and torch; onnx's reference
        # also moves the coordinate, which no conformance case tells apart)
    elif padding == "border":
        x = b.call("clip", x, min=0.0, max=float(size - 1))
    elif padding == "reflection":
        x = _reflect(b, n, x, lo, hi)
    if mode == "nearest":
        taps = [(_trunc(b, x), None)]
    else:
        base = _floor(b, n, x)
        t = b.call("sub", x, base)
        if mode == "linear":
            offsets, weights = (0, 1), [b.call("sub", like(t, 1), t), t]
        else:
            offsets, weights = (-1, 0, 1, 2), _cubic_coeffs(b, t)
        taps = [(base if k == 0 else b.call("add", base, like(base, k)), w)
                for k, w in zip(offsets, weights)]
    out = []
    for pos, w in taps:
        if padding == "zeros":
            inside = b.call("where", b.call("greater", like(pos, 0), pos), np.asarray(False),
                            b.call("greater", like(pos, size), pos))
            w = b.call("where", inside, like(x, 1) if w is None else w, like(x, 0))
        elif padding == "reflection":
            pos = _trunc(b, _reflect(b, n, pos, lo, hi))
        pos = b.call("clip", pos, min=0.0, max=float(size - 1))
        out.append((_index(b, pos), w))
    return out


def _rows(b: Builder, x):
    """[N, C, *spatial] as [N * prod(spatial), C]: one gather row per pixel."""
    nb, c = x.shape[:2]
    perm = [0, *range(2, rank(x)), 1]
    return b.reshape(b.call("transpose", x, perm=perm), (nb * math.prod(x.shape[2:]), c))


def _weighted(b: Builder, v, w, x):
    """v [..., C] times w [...] (None: 1) in x's dtype."""
    if w is None:
        return v
    w = _cast_like(b, w, x)
    return b.call("mul", v, b.reshape(w, (*w.shape, 1)))


def _sum(b: Builder, terms):
    acc = terms[0]
    for t in terms[1:]:
        acc = b.call("add", acc, t)
    return acc


def _sample(b: Builder, x, rows, first, taps, strides):
    """The rows of `rows` gathered at first + sum of (tap index * stride) over the axes, each
    axis's taps weighted and summed, the innermost axis first (as onnx's reference
    interpolates)."""

    def level(a, start):
        if a == len(taps):
            return b.call("gather", rows, start, axis=0)
        return _sum(b, [_weighted(b, level(a + 1, b.call("add", start, b.call(
            "mul", idx, np.asarray(strides[a], I64)))), w, x) for idx, w in taps[a]])

    return level(0, first)


@handler
def GridSample(b: Builder, n: OnnxNode, x, grid):
    """Separable: the taps of each spatial axis (`_sample`)."""
    k = rank(x) - 2
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(
        n.get("mode", "bilinear"), n.get("mode", "bilinear"))
    padding = n.get("padding_mode", "zeros")
    if mode not in ("linear", "nearest", "cubic") or padding not in ("zeros", "border",
                                                                     "reflection"):
        raise ValueError(f"GridSample mode '{mode}' with padding '{padding}'")
    if k not in (2, 3) or (mode == "cubic" and k != 2):
        raise Unsupported(f"{k}-D GridSample in mode '{mode}'")
    if dtype(grid).kind != "f":
        raise Unsupported(f"GridSample with a {dtype(grid)} grid")
    align = bool(n.get("align_corners", 0))
    spatial = list(x.shape[2:])
    out = tuple(grid.shape[:-1])
    # the grid's last axis lists the innermost spatial axis first (x, y[, z])
    coords = [b.reshape(b.call("slice", grid, starts=[k - 1 - a], ends=[k - a], axes=[k + 1]),
                        out) for a in range(k)]
    taps = [_grid_taps(b, n, coords[a], spatial[a], mode, padding, align) for a in range(k)]
    strides = [math.prod(spatial[a + 1:]) for a in range(k)]
    nb = x.shape[0]
    first = np.arange(nb, dtype=I64).reshape(nb, *[1] * k) * math.prod(spatial)
    y = _sample(b, x, _rows(b, x), first, taps, strides)
    return b.call("transpose", y, perm=(0, k + 1, *range(1, k + 1)))


# ---- DeformConv ------------------------------------------------------------------------------
@handler
def DeformConv(b: Builder, n: OnnxNode, x, w, offset, bias=None, mask=None):
    """Each kernel tap of each output position samples the input bilinearly (zeros outside,
    as GridSample with align_corners) at its place moved by its offset, times its mask; the
    samples, laid out as [N*oH*oW, C*kH*kW] columns, meet the weight in one linear per
    group."""
    if rank(x) != 4:
        raise Unsupported(f"{rank(x) - 2}-D DeformConv (Lamina has 2-D)")
    nb, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    oh, ow = offset.shape[2:]
    groups, og = n.get("group", 1), n.get("offset_group", 1)
    sh, sw = n.get("strides", [1, 1])
    dh, dw = n.get("dilations", [1, 1])
    top, left = n.get("pads", [0] * 4)[:2]
    k = kh * kw
    if cg * groups != c or oc % groups or c % og or offset.shape[1] != og * 2 * k:
        raise ValueError(f"DeformConv of {list(x.shape)} with weight {list(w.shape)}, offsets "
                         f"{list(offset.shape)}, {groups} group(s), {og} offset group(s)")
    taps = np.arange(k)
    base_y = (-top + sh * np.arange(oh)[None, :] + dh * (taps // kw)[:, None]).reshape(
        1, k, oh, 1).astype(dtype(x))
    base_x = (-left + sw * np.arange(ow)[None, :] + dw * (taps % kw)[:, None]).reshape(
        1, k, 1, ow).astype(dtype(x))
    offset = b.reshape(offset, (nb, og, k, 2, oh, ow))
    mask = None if mask is None else b.reshape(mask, (nb, og, k, oh, ow))
    first = np.arange(nb, dtype=I64).reshape(nb, 1, 1, 1) * (h * wd)
    per = c // og
    samples = []
    for g in range(og):
        ys = _pixel_taps(b, n, b.call("add", _pick(b, offset, g, 0), base_y), h, "linear",
                         "zeros")
        xs = _pixel_taps(b, n, b.call("add", _pick(b, offset, g, 1), base_x), wd, "linear",
                         "zeros")
        part = x if og == 1 else b.call("slice", x, starts=[g * per], ends=[(g + 1) * per],
                                        axes=[1])
        v = _sample(b, x, _rows(b, part), first, [ys, xs], [wd, 1])  # [N, K, oH, oW, C/og]
        if mask is not None:
            v = _weighted(b, v, _pick(b, mask, g), x)
        samples.append(v)
    v = samples[0] if og == 1 else b.call("concat", *samples, axis=4)
    cols = b.reshape(b.call("transpose", v, perm=(0, 2, 3, 4, 1)), (nb * oh * ow, c * k))
    outs = []
    for g in range(groups):
        part = cols if groups == 1 else b.call("slice", cols, starts=[g * cg * k],
                                               ends=[(g + 1) * cg * k], axes=[1])
        wg = w if groups == 1 else b.call("slice", w, starts=[g * (oc // groups)],
                                          ends=[(g + 1) * (oc // groups)], axes=[0])
        outs.append(b.call("linear", part, b.reshape(wg, (oc // groups, cg * k))))
    y = outs[0] if groups == 1 else b.call("concat", *outs, axis=1)
    y = b.call("transpose", b.reshape(y, (nb, oh, ow, oc)), perm=(0, 3, 1, 2))
    return y if bias is None else b.call("add", y, b.reshape(bias, (oc, 1, 1)))


def _pick(b: Builder, t, group: int, *at):
    """t[:, group, :, *at] of DeformConv's [N, og, K, (2,) oH, oW] offsets or mask, as
    [N, K, oH, oW]."""
    starts = [group, *at]
    v = b.call("slice", t, starts=starts, ends=[s + 1 for s in starts],
               axes=[1, *range(3, 3 + len(at))])
    return b.reshape(v, (t.shape[0], t.shape[2], *t.shape[-2:]))


# ---- RoiAlign --------------------------------------------------------------------------------
def _roi_taps(b: Builder, n: OnnxNode, pos, size: int):
    """The two bilinear taps [(index, weight)] along one axis of RoiAlign's sample positions
    (onnxruntime's rules: a sample more than one pixel outside weighs 0, one at or past the
    last pixel reads the last pixel)."""
    out = b.call("where", b.call("greater", like(pos, -1), pos), np.asarray(True),
                 b.call("greater", pos, like(pos, size)))
    p = b.call("maximum", pos, like(pos, 0))
    low = _floor(b, n, p)
    edge = b.call("where", b.call("greater", like(p, size - 1), low), np.asarray(False),
                  np.asarray(True))  # low >= size - 1
    low = b.call("where", edge, like(p, size - 1), low)
    high = b.call("where", edge, like(p, size - 1), b.call("add", low, like(p, 1)))
    p = b.call("where", edge, low, p)
    frac = b.call("sub", p, low)
    zero = like(p, 0)
    w_low = b.call("where", out, zero, b.call("sub", like(p, 1), frac))
    w_high = b.call("where", out, zero, frac)
    return [(_index(b, low), w_low), (_index(b, high), w_high)]


def _roi_positions(b: Builder, start, length, bins: int, grid: int):
    """Sample positions [R, bins, grid] along one axis: start + p * bin + (i + 0.5) * bin /
    grid, with bin = length / bins."""
    binsize = b.call("div", length, like(length, bins))
    p = np.arange(bins, dtype=dtype(start)).reshape(1, bins, 1)
    i = (np.arange(grid, dtype=dtype(start)) + 0.5).reshape(1, 1, grid)
    r = start.shape[0]
    bs = b.reshape(binsize, (r, 1, 1))
    pos = b.call("add", b.reshape(start, (r, 1, 1)), b.call("mul", p, bs))
    return b.call("add", pos, b.call("div", b.call("mul", i, bs), like(length, grid)))


@handler
def RoiAlign(b: Builder, n: OnnxNode, x, rois, batch_indices):
    """Per box, bin and sample (a ratio x ratio grid per bin): the four bilinear taps
    gathered from the box's image [R, ph, g, pw, g, C], then averaged (or, mode max, the
    largest weighted tap, as onnxruntime) over each bin's samples."""
    if rank(x) != 4:
        raise Unsupported(f"RoiAlign of a rank-{rank(x)} input")
    ph, pw = n.get("output_height", 1), n.get("output_width", 1)
    ratio, scale = n.get("sampling_ratio", 0), float(n.get("spatial_scale", 1.0))
    mode = n.get("mode", "avg")
    half = n.get("coordinate_transformation_mode",
                 "half_pixel" if b.opset >= 16 else "output_half_pixel") == "half_pixel"
    if ratio <= 0:
        raise Unsupported("RoiAlign with sampling_ratio 0 (the sample count per bin would "
                          "depend on each box's size)")
    h, w = x.shape[2:]
    r = rois.shape[0]
    rois = _cast_like(b, rois, x)
    offset = 0.5 if half else 0.0
    cols = [b.reshape(b.call("slice", rois, starts=[k], ends=[k + 1], axes=[1]), (r,))
            for k in range(4)]
    x1, y1, x2, y2 = (b.call("sub", b.call("mul", v, like(v, scale)), like(v, offset))
                      for v in cols)
    width, height = b.call("sub", x2, x1), b.call("sub", y2, y1)
    if not half:
        width, height = (b.call("maximum", v, like(v, 1)) for v in (width, height))
    ys = _roi_positions(b, y1, height, ph, ratio)  # [R, ph, g]
    xs = _roi_positions(b, x1, width, pw, ratio)  # [R, pw, g]
    rows = _rows(b, x)
    batch = b.call("mul", _cast_int(b, batch_indices), np.asarray(h * w, I64))
    batch = b.reshape(batch, (r, 1, 1, 1, 1))
    g = ratio
    terms = []
    for iy, wy in _roi_taps(b, n, ys, h):
        iy, wy = (b.reshape(v, (r, ph, g, 1, 1)) for v in (iy, wy))
        start = b.call("add", batch, b.call("mul", iy, np.asarray(w, I64)))
        for ix, wx in _roi_taps(b, n, xs, w):
            ix, wx = (b.reshape(v, (r, 1, 1, pw, g)) for v in (ix, wx))
            v = b.call("gather", rows, b.call("add", start, ix), axis=0)  # [R,ph,g,pw,g,C]
            terms.append(_weighted(b, v, b.call("mul", wy, wx), x))
    if mode == "avg":
        y = b.call("reduce_sum", _sum(b, terms), axes=[2, 4], keepdims=False)
        y = b.call("div", y, like(y, max(g * g, 1)))
    elif mode == "max":
        best = terms[0]
        for t in terms[1:]:
            best = b.call("maximum", best, t)
        y = b.call("reduce_max", best, axes=[2, 4], keepdims=False)
    else:
        raise ValueError(f"RoiAlign mode '{mode}'")
    return b.call("transpose", y, perm=(0, 3, 1, 2))


def _cast_int(b: Builder, x):
    if dtype(x) == np.dtype(I64):
        return x
    return x.astype(I64) if is_const(x) else b.call("cast", x, dtype="i64")


# ---- NonMaxSuppression -----------------------------------------------------------------------
def _corners(boxes: np.ndarray, center: bool) -> np.ndarray:
    """[..., 4] boxes as (y_min, x_min, y_max, x_max), whichever corners they name."""
    if center:
        cx, cy, bw, bh = np.moveaxis(boxes, -1, 0)
        return np.stack([cy - bh / 2, cx - bw / 2, cy + bh / 2, cx + bw / 2], -1)
    y1, x1, y2, x2 = np.moveaxis(boxes, -1, 0)
    return np.stack([np.minimum(y1, y2), np.minimum(x1, x2), np.maximum(y1, y2),
                     np.maximum(x1, x2)], -1)


def _overlaps(box: np.ndarray, others: np.ndarray, threshold: float) -> np.ndarray:
    """Whether each of `others` overlaps `box` by an IoU above the threshold (empty or
    degenerate boxes never do)."""
    top = np.maximum(box[0], others[:, 0])
    left = np.maximum(box[1], others[:, 1])
    bottom = np.minimum(box[2], others[:, 2])
    right = np.minimum(box[3], others[:, 3])
    inter = np.where((bottom > top) & (right > left), (bottom - top) * (right - left), 0)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    with np.errstate(all="ignore"):
        iou = inter / union
    return (inter > 0) & (area > 0) & (areas > 0) & (union > 0) & (iou > threshold)


def non_max_suppression(boxes, scores, max_out: int, iou: float, score: float | None,
                        center: bool) -> np.ndarray:
    """[K, 3] (batch, class, box) rows: per batch and class, boxes taken by falling score
    (the lower index first among equals) unless one already taken overlaps them."""
    picked = []
    corners = _corners(boxes, center)
    for bi in range(scores.shape[0]):
        for ci in range(scores.shape[1]):
            s = scores[bi, ci]
            order = np.argsort(-s, kind="stable")
            if score is not None:
                order = order[s[order] > score]
            taken: list[int] = []
            for k in order:
                if len(taken) >= max_out:
                    break
                if not taken or not _overlaps(corners[bi, k], corners[bi, taken], iou).any():
                    taken.append(int(k))
            picked += [(bi, ci, k) for k in taken]
    return np.asarray(picked, I64).reshape(-1, 3)


@handler
def NonMaxSuppression(b: Builder, n: OnnxNode, boxes, scores, max_out=None, iou=None,
                      score=None):
    what = "the boxes and scores (the number of boxes kept depends on their values)"
    boxes, scores = b.const(boxes, what), b.const(scores, what)
    limit, threshold, floor = (
        None if v is None else b.const(v, what).reshape(-1)
        for v, what in ((max_out, "max_output_boxes_per_class"), (iou, "iou_threshold"),
                        (score, "score_threshold")))
    limit = max(int(limit[0]), 0) if limit is not None and limit.size else 0
    threshold = float(threshold[0]) if threshold is not None and threshold.size else 0.0
    floor = float(floor[0]) if floor is not None and floor.size else None
    return non_max_suppression(boxes, scores, limit, threshold, floor,
                               bool(n.get("center_point_box", 0)))


# ---- MaxUnpool, Col2Im, CenterCropPad --------------------------------------------------------
@handler
def MaxUnpool(b: Builder, n: OnnxNode, x, indices, output_shape=None):
    """Each value put at its flat index (MaxPool's Indices) in zeros of the output shape: a
    scatter_add of the values, divided by how many landed on each place (overlapping windows
    can name one input element twice; both copies carry its value). With output_shape the
    indices address that shape, as in onnxruntime and torch (onnx's reference addresses
    the inferred shape and pads it; the two agree when the shapes do)."""
    k = rank(x) - 2
    if output_shape is not None:
        shape = b.ints(output_shape, "the output shape")
    else:
        kernel = n.get("kernel_shape")
        strides, pads = n.get("strides", [1] * k), n.get("pads", [0] * (2 * k))
        shape = [*x.shape[:2], *[(x.shape[2 + i] - 1) * strides[i] + kernel[i] - pads[i]
                                 - pads[k + i] for i in range(k)]]
    total, size = math.prod(shape), math.prod(x.shape)
    flat_x, flat_i = b.reshape(x, (size,)), b.reshape(_cast_int(b, indices), (size,))
    summed = b.call("scatter_add", flat_x, flat_i, axis=0, size=total)
    count = b.call("scatter_add", np.ones(size, dtype(x)), flat_i, axis=0, size=total)
    return b.reshape(b.call("div", summed, b.call("maximum", count, like(x, 1))), shape)


@handler
def Col2Im(b: Builder, n: OnnxNode, x, image_shape, block_shape):
    """[N, C*prod(block), L] blocks summed back into [N, C, *image]: a transposed
    convolution (2-D or 3-D) with one group per channel whose kernel routes each block entry
    to its pixel offset."""
    size = b.ints(image_shape, "image_shape")
    block = b.ints(block_shape, "block_shape")
    k = len(size)
    if k not in (2, 3):
        raise Unsupported(f"{k}-D Col2Im (Lamina has 2-D and 3-D)")
    dil = list(n.get("dilations", [1] * k))
    pads = list(n.get("pads", [0] * (2 * k)))
    strides = list(n.get("strides", [1] * k))
    kk = math.prod(block)
    nb, ck, _ = x.shape
    c = ck // kk
    blocks = [(size[i] + pads[i] + pads[i + k] - dil[i] * (block[i] - 1) - 1) // strides[i]
              + 1 for i in range(k)]
    if c * kk != ck or math.prod(blocks) != x.shape[2]:
        raise ValueError(f"Col2Im of {list(x.shape)} into {size} with blocks {block}")
    route = np.zeros((c * kk, 1, *block), dtype(x))
    route[(np.arange(c * kk), 0, *np.unravel_index(np.arange(c * kk) % kk, block))] = 1
    cols = b.reshape(x, (nb, ck, *blocks))
    return b.call(f"conv{k}d_grad_input", cols, route, stride=strides, pad=pads, dilation=dil,
                  groups=c, shape=(nb, c, *size))


@handler
def CenterCropPad(b: Builder, n: OnnxNode, x, shape):
    """Each named axis cropped or zero-padded about its centre (crops lose the extra element
    at the start, pads add it at the end, as onnx defines)."""
    target = b.ints(shape, "the shape")
    axes = n.get("axes", list(range(rank(x))))
    axes = [a + rank(x) if a < 0 else a for a in axes]
    begins, ends = [0] * rank(x), [0] * rank(x)
    for a, t in zip(axes, target):
        d = x.shape[a]
        if t < d:
            begins[a] = -((d - t) // 2)
            ends[a] = -(d - t - (d - t) // 2)
        elif t > d:
            begins[a] = (t - d) // 2
            ends[a] = t - d - (t - d) // 2
    if not any(begins) and not any(ends):
        return x
    return b.call("pad", x, pads=[*begins, *ends])
