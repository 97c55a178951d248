"""ONNX's Resize and Upsample as constant per-axis interpolation.

Resizing is separable: along each resized axis every output element is a fixed weighted sum
of a few input elements, the weights depending only on the sizes and attributes, which are
all known at import time. So each axis becomes a constant: an index vector for `nearest`
(a `gather`, exact) or a weight matrix [out, in] for `linear` and `cubic` (a `linear` or
`matmul` along that axis). The coordinate transformations, nearest rounding modes, the cubic
coefficient, `exclude_outside`, antialiasing, `tf_crop_and_resize` with its extrapolation
value, `axes` and `keep_aspect_ratio_policy` follow the operator's definition.
"""

from __future__ import annotations

import math

import numpy as np

from ...op_table import along
from ..builder import Builder, OnnxNode, Unsupported
from .common import dtype, handler, is_const, like, norm_axis, rank


def _source(mode: str, y, scale: float, size: int, out_float: float, out: int, roi):
    """Input coordinate of each output index y, and the extrapolated positions (or None).
    Where the definition says length_resized, that is the output's (integer) length."""
    if mode == "align_corners":
        x = np.zeros(out) if out == 1 else y * (size - 1) / (out - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        lo, hi = roi
        x = np.full(out, (hi - lo) * (size - 1) / 2) if out == 1 else \
            y * (hi - lo) * (size - 1) / (out - 1)
        x = x + lo * (size - 1)
        return x, (x < 0) | (x > size - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(out, -0.5) if out == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        offset = size / 2 * (1 - out / out_float)
        x = offset + (y + 0.5) / scale - 0.5
    else:
        raise Unsupported(f"coordinate_transformation_mode '{mode}'")
    return x, None


def _kernel(kind: str, ratio: float, scale: float, a: float, antialias: bool,
            nearest: str) -> np.ndarray:
    """Coefficients of the neighbours of a source coordinate with fractional part `ratio`
    (in (0, 1], the left neighbour preferred)."""
    if kind == "nearest":
        if float(ratio).is_integer():
            return np.array([0.0, 1.0])
        up = {"round_prefer_floor": ratio > 0.5, "round_prefer_ceil": ratio >= 0.5,
              "floor": False, "ceil": True}[nearest]
        return np.array([0.0, 1.0]) if up else np.array([1.0, 0.0])
    if kind == "linear" and not antialias:
        return np.array([1 - ratio, ratio])
    if kind == "linear":
        s = min(scale, 1.0)
        start = int(np.floor(-1 / s) + 1)
        args = (np.arange(start, 2 - start) - ratio) * s
        c = np.clip(1 - np.abs(args), 0, 1)
        return c / c.sum()
    if kind == "cubic" and not antialias:
        r = ratio
        return np.array([((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                         ((a + 2) * r - (a + 3)) * r * r + 1,
                         ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
                         ((a * (2 - r) - 5 * a) * (2 - r) + 8 * a) * (2 - r) - 4 * a])
    if kind == "cubic":
        s = min(scale, 1.0)
        start = int(np.floor(-2 / s) + 1)

        def w(x):
            x = abs(x)
            if x <= 1:
                return (a + 2) * x**3 - (a + 3) * x**2 + 1
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a if x < 2 else 0.0

        c = np.array([w(s * (i - ratio)) for i in range(start, 2 - start)])
        return c / c.sum()
    raise Unsupported(f"resize mode '{kind}'")


def axis_weights(size: int, out: int, scale: float, kind: str, coord: str, nearest: str,
                 a: float, exclude: bool, antialias: bool, roi):
    """(weights [out, size], extrapolated positions or None) of one resized axis."""
    y = np.arange(out, dtype=np.float64)
    x, extrapolated = _source(coord, y, scale, size, scale * size, out, roi)
    base = np.floor(x).astype(np.int64)
    ratios = np.where(x == base, 1.0, x - base)
    m = np.zeros((out, size))
    for i in range(out):
        c = _kernel(kind, float(ratios[i]), scale, a, antialias, nearest)
        k = len(c)
        pad = math.ceil(k / 2)
        p = math.floor(x[i] + pad)
        frac = x[i] + pad - p
        if k % 2 == 0:  # the k nearest indices, ties to the smaller (edge-padded input)
            start = p - k // 2 if frac == 0 else p - k // 2 + 1
        else:
            start = p - (k - 1) // 2 + (0 if frac <= 0.5 else 1)
        idx = np.arange(start, start + k) - pad
        if exclude:
            c = np.where((idx < 0) | (idx >= size), 0.0, c)
            c = c / (c.sum() or 1.0)
        np.add.at(m[i], np.clip(idx, 0, size - 1), c)
    return m, extrapolated


def _simple_nearest(size: int, out: int, scale: float) -> np.ndarray:
    """Upsample's (and Resize-10's) nearest: floor of the asymmetric coordinate (ceil when
    shrinking), as onnxruntime computes it."""
    x = np.arange(out) / scale
    idx = np.ceil(x) if scale < 1 else np.floor(x)
    return np.clip(idx, 0, size - 1).astype(np.int64)


@handler
def Resize(b: Builder, n: OnnxNode, x, roi=None, scales=None, sizes=None):
    if b.opset < 11:  # Resize-10: (X, scales), Upsample's coordinates
        return _resize(b, n, x, None, b.const(roi, "scales"), None, legacy=True)
    const = [None if v is None or (is_const(v) and v.size == 0) else b.const(v, what)
             for v, what in ((roi, "roi"), (scales, "scales"), (sizes, "sizes"))]
    return _resize(b, n, x, *const, legacy=False)


@handler
def Upsample(b: Builder, n: OnnxNode, x, scales=None):
    s = n.get("scales") if b.opset < 9 else b.const(scales, "scales")
    return _resize(b, n, x, None, np.asarray(s, np.float64), None, legacy=True)


def _resize(b: Builder, n: OnnxNode, x, roi, scales, sizes, legacy: bool):
    r = rank(x)
    kind = {"bilinear": "linear"}.get(n.get("mode", "nearest"), n.get("mode", "nearest"))
    coord = "asymmetric" if legacy else n.get("coordinate_transformation_mode", "half_pixel")
    axes = [norm_axis(a, r) for a in n.get("axes", range(r))]
    shape = list(x.shape)
    full_roi = [0.0] * r + [1.0] * r
    if roi is not None:
        roi = [float(v) for v in roi.reshape(-1)]
        for k, a in enumerate(axes):
            full_roi[a], full_roi[a + r] = roi[k], roi[k + len(axes)]
    factor = [1.0] * r
    out = list(shape)
    if sizes is not None:
        for k, a in enumerate(axes):
            out[a] = int(sizes.reshape(-1)[k])
            factor[a] = out[a] / shape[a]
        policy = n.get("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            pick = min if policy == "not_larger" else max
            s = pick(factor[a] for a in axes)
            for a in axes:
                factor[a], out[a] = s, int(s * shape[a] + 0.5)
    elif scales is not None:
        for k, a in enumerate(axes):
            factor[a] = float(scales.reshape(-1)[k])
            out[a] = int(factor[a] * shape[a])
    else:
        raise Unsupported("Resize without scales or sizes")
    y = x
    for a in axes:
        trivial_roi = full_roi[a] == 0 and full_roi[a + r] == 1
        if math.isclose(factor[a], 1.0) and out[a] == shape[a] and trivial_roi:
            continue
        if out[a] == 0:
            raise Unsupported("resizing an axis to size 0")
        # the axis's [out, size] weights are computed now: their size is checked first
        b.sized([out[a], shape[a]], np.float64, f"the weights resizing axis {a}")
        if legacy and kind == "nearest":
            y = b.call("gather", y, _simple_nearest(shape[a], out[a], factor[a]), axis=a)
            continue
        m, extra = axis_weights(shape[a], out[a], factor[a], kind, coord,
                                n.get("nearest_mode", "round_prefer_floor"),
                                n.get("cubic_coeff_a", -0.75), bool(n.get("exclude_outside", 0)),
                                bool(n.get("antialias", 0)), (full_roi[a], full_roi[a + r]))
        if kind == "nearest":  # one 1 per row: pick, exactly
            y = b.call("gather", y, m.argmax(axis=1).astype(np.int64), axis=a)
        elif dtype(y).kind != "f":
            raise Unsupported(f"{kind} resize of {dtype(y)} values")
        else:
            y = along(b, y, a, m)
        if extra is not None and extra.any():
            mask = extra.reshape([out[a] if k == a else 1 for k in range(r)])
            y = b.call("where", mask, like(y, n.get("extrapolation_value", 0.0)), y)
    return y
