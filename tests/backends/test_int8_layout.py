"""qconv2d's layout phases (backends/llvm/int8.py): the tiled NCHW <-> NHWC transposes, the
1x1 / stride 1 / unpadded path that hands the GEMM the channels-last rows directly (no
im2col) and im2col's whole-window-row copies next to its tap-by-tap edges. Integer outputs
bit for bit against a numpy integer reference written here: channel counts around the
4-byte K groups and the 64-element tiles, pixel counts around the tile, i8 and u8 inputs,
f32 / u8 / i8 outputs, padding, dilation, batches > 1 and 1 or 2 threads."""

from __future__ import annotations

import numpy as np
import pytest

import ir
from backends import llvm

RNG = np.random.default_rng(17)


def numpy_qconv(x, w, b, stride, pad, dilation, x_zp, x_scale, w_scale, y_scale, y_zp, dtype,
                relu):
    """Exact int64 sums over (c, ky, kx) of (x - zp) * w with 0 in the padding, then
    float32(acc) * float32(x_scale * w_scale / y_scale), round half to even, + y_zp, clamp,
    relu at the zero point (f32: no rounding, relu at 0)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    xp = np.zeros((n, c, h + pad[0] + pad[2], wd + pad[1] + pad[3]), np.int64)
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd] = x.astype(np.int64) - x_zp
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    acc = np.zeros((n, o, oh, ow), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            win = xp[:, :, ky * dh:ky * dh + sh * (oh - 1) + 1:sh,
                     kx * dw:kx * dw + sw * (ow - 1) + 1:sw]
            acc += np.einsum("nchw,oc->nohw", win, w[:, :, ky, kx].astype(np.int64))
    acc += np.asarray(b, np.int64).reshape(1, -1, 1, 1)
    ws = np.asarray(w_scale, np.float64)
    m = (x_scale * ws if dtype == "f32" else x_scale * ws / y_scale).astype(np.float32)
    y = acc.astype(np.int32).astype(np.float32) * m.reshape(1, -1, 1, 1)
    if dtype == "f32":
        return np.maximum(y, np.float32(0)) if relu else y
    lo, hi = (0, 255) if dtype == "u8" else (-128, 127)
    q = np.clip(np.rint(y) + y_zp, lo, hi)
    if relu:
        q = np.maximum(q, y_zp)
    return q.astype(np.uint8 if dtype == "u8" else np.int8)


def run(xs, ws, xdt="u8", dtype="u8", relu=False, stride=(1, 1), pad=(0, 0, 0, 0),
        dilation=(1, 1), threads=1):
    lo, hi = (0, 256) if xdt == "u8" else (-128, 128)
    x = RNG.integers(lo, hi, xs).astype(np.uint8 if xdt == "u8" else np.int8)
    w = RNG.integers(-128, 128, ws).astype(np.int8)
    b = RNG.integers(-40000, 40000, ws[0]).astype(np.int32)
    x_zp = 9 if xdt == "u8" else -5
    y_zp = 0 if dtype == "f32" else (4 if dtype == "u8" else -3)
    w_scale = tuple(float(v) for v in RNG.uniform(1e-3, 6e-3, ws[0]))
    g = ir.Graph()
    xv = g.add_input("x", ir.TensorType(xs, xdt))
    g.outputs = [g.call("qconv2d", xv, g.add_weight("w", w), g.add_weight("b", b), groups=1,
                        stride=stride, pad=pad, dilation=dilation, x_scale=0.02,
                        x_zero_point=x_zp, w_scale=w_scale, y_scale=0.35, y_zero_point=y_zp,
                        dtype=dtype, relu=relu)]
    want = numpy_qconv(x, w, b, stride, pad, dilation, x_zp, 0.02, w_scale, 0.35, y_zp, dtype, relu)
    got = llvm.compile_graph(g, num_threads=threads)(x)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


POINTWISE = {  # name: (x shape, w shape, input dtype, output dtype, relu)
    "c4-o8": ((1, 4, 5, 5), (8, 4, 1, 1), "u8", "u8", False),
    "c3-odd": ((1, 3, 7, 6), (5, 3, 1, 1), "u8", "u8", True),
    "c5-i8": ((1, 5, 4, 9), (7, 5, 1, 1), "i8", "i8", False),
    "c67-tiles": ((1, 67, 9, 9), (70, 67, 1, 1), "u8", "u8", True),  # 81 pixels: 2 tiles
    "c130-f32": ((1, 130, 8, 17), (33, 130, 1, 1), "i8", "f32", False),
    "c64-p64": ((1, 64, 8, 8), (64, 64, 1, 1), "u8", "f32", True),
    "batch3": ((3, 19, 11, 7), (21, 19, 1, 1), "u8", "u8", False),
    "batch2-i8-c129": ((2, 129, 5, 13), (65, 129, 1, 1), "i8", "u8", True),
    "one-pixel": ((2, 6, 1, 1), (3, 6, 1, 1), "u8", "i8", False),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", list(POINTWISE))
def test_pointwise_direct(name, threads):
    xs, ws, xdt, dtype, relu = POINTWISE[name]
    run(xs, ws, xdt, dtype, relu, threads=threads)


WINDOWED = {  # 1x1 windows that still need im2col, and k x k windows: the tiled transposes
    "1x1-stride2": ((2, 7, 9, 9), (5, 7, 1, 1), dict(stride=(2, 2))),
    "1x1-padded": ((1, 6, 5, 5), (4, 6, 1, 1), dict(pad=(1, 0, 1, 2))),
    "3x3-c70": ((2, 70, 9, 10), (66, 70, 3, 3), dict(pad=(1, 1, 1, 1))),
    "7x7-stem": ((1, 3, 23, 21), (16, 3, 7, 7), dict(stride=(2, 2), pad=(3, 3, 3, 3))),
    "3x3-asym-pad": ((2, 5, 6, 7), (9, 5, 3, 3), dict(pad=(0, 2, 1, 0))),
    "3x3-dilated": ((1, 6, 11, 12), (4, 6, 3, 3), dict(pad=(2, 2, 2, 2), dilation=(2, 2))),
    "3x2-row-dilated": ((1, 5, 9, 10), (3, 5, 3, 2), dict(pad=(1, 1, 1, 1), dilation=(2, 1))),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", list(WINDOWED))
def test_windowed_transposes(name, threads):
    xs, ws, window = WINDOWED[name]
    run(xs, ws, "i8", "u8", True, threads=threads, **window)
