"""The grouped/depthwise qconv2d kernel (backends/llvm/int8.py, `_grouped_conv`) against an
integer reference written here with plain loops over the padded windows (not the registry's
conv2d): integer outputs bit for bit, over depthwise and grouped shapes, strides, dilations,
asymmetric padding, row widths around the 16-lane chunk, extreme values and thread counts."""

from __future__ import annotations

import numpy as np
import pytest

import ir
from backends import llvm

RNG = np.random.default_rng(23)


def numpy_qconv(x, w, b, groups, stride, pad, dilation, x_zp, x_scale, w_scale, y_scale,
                y_zp, dtype, relu):
    """Exact int64 sums per output (n, o, oy, ox) over the group's channels and taps,
    padding x - zp = 0, then quant.py's epilogue spelled out: float32(acc) * float32(M),
    round half to even, + zero point, clamp, relu at the zero point."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    xp = np.zeros((n, c, h + pad[0] + pad[2], wd + pad[1] + pad[3]), np.int64)
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + wd] = x.astype(np.int64) - x_zp
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    acc = np.zeros((n, o, oh, ow), np.int64)
    per_group = o // groups
    for oc in range(o):
        c0 = (oc // per_group) * cg
        for ky in range(kh):
            for kx in range(kw):
                win = xp[:, c0:c0 + cg, ky * dh:ky * dh + sh * (oh - 1) + 1:sh,
                         kx * dw:kx * dw + sw * (ow - 1) + 1:sw]
                acc[:, oc] += np.einsum("nchw,c->nhw", win, w[oc, :, ky, kx].astype(np.int64))
    acc += np.asarray(b, np.int64).reshape(1, -1, 1, 1)
    ws = np.broadcast_to(np.asarray(w_scale, np.float64), (o,))
    m = (x_scale * ws if dtype == "f32" else x_scale * ws / y_scale).astype(np.float32)
    y = acc.astype(np.int32).astype(np.float32) * m.reshape(1, -1, 1, 1)
    if dtype == "f32":
        return np.maximum(y, np.float32(0)) if relu else y
    lo, hi = (0, 255) if dtype == "u8" else (-128, 127)
    q = np.clip(np.rint(y) + y_zp, lo, hi)
    if relu:
        q = np.maximum(q, y_zp)
    return q.astype(np.uint8 if dtype == "u8" else np.int8)


def case(xs, ws, groups, xdt="u8", dtype="u8", relu=False, stride=(1, 1), pad=(0, 0, 0, 0),
         dilation=(1, 1), x=None, w=None, bias=True):
    lo, hi = (0, 256) if xdt == "u8" else (-128, 128)
    x = RNG.integers(lo, hi, xs).astype(np.uint8 if xdt == "u8" else np.int8) if x is None \
        else x
    w = RNG.integers(-128, 128, ws).astype(np.int8) if w is None else w
    b = RNG.integers(-40000, 40000, ws[0]).astype(np.int32) if bias else np.zeros(ws[0], int)
    attrs = dict(groups=groups, stride=stride, pad=pad, dilation=dilation, x_scale=0.021,
                 x_zero_point=7 if xdt == "u8" else -3,
                 w_scale=tuple(float(v) for v in RNG.uniform(1e-3, 6e-3, ws[0])),
                 y_scale=0.4, y_zero_point=0 if dtype == "f32" else (5 if dtype == "u8" else -2),
                 dtype=dtype, relu=relu)
    g = ir.Graph()
    xv = g.add_input("x", ir.TensorType(xs, xdt))
    ins = [xv, g.add_weight("w", w)] + ([g.add_weight("b", b)] if bias else [])
    g.outputs = [g.call("qconv2d", *ins, **attrs)]
    a = {k: v for k, v in attrs.items() if k not in ("x_zero_point",)}
    want = numpy_qconv(x, w, b, x_zp=attrs["x_zero_point"], y_zp=a.pop("y_zero_point"), **a)
    return g, x, want


def check(g, x, want, **options):
    got = llvm.compile_graph(g, **options)(x)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


CASES = {  # name: (x shape, w shape, groups, window)
    "dw3x3-7x7": ((1, 8, 7, 7), (8, 1, 3, 3), 8, dict(pad=(1, 1, 1, 1))),
    "dw3x3-s2-w20": ((2, 6, 9, 20), (6, 1, 3, 3), 6, dict(pad=(1, 1, 1, 1), stride=(2, 2))),
    "dw-multiplier2": ((1, 3, 6, 17), (6, 1, 3, 3), 3, dict(pad=(1, 1, 1, 1))),
    "dw5x5-w16": ((1, 4, 5, 16), (4, 1, 5, 5), 4, dict(pad=(2, 2, 2, 2))),
    "dw-w1": ((1, 5, 4, 1), (5, 1, 3, 1), 5, dict(pad=(1, 0, 1, 0))),
    "grouped-cg4-dil": ((1, 8, 5, 19), (4, 4, 3, 2), 2, dict(pad=(0, 2, 1, 1),
                                                              dilation=(2, 1))),
    "grouped-s3-asym": ((2, 6, 11, 33), (9, 2, 2, 3), 3, dict(pad=(2, 0, 0, 1),
                                                               stride=(1, 3))),
    "dw-s3-left2-dil": ((1, 3, 8, 40), (3, 1, 3, 3), 3, dict(pad=(1, 2, 1, 1),
                                                              stride=(2, 3), dilation=(1, 2))),
    # 64 * 3 * 3 = 576 taps: sums may pass 2**24, so the kernel sums in int32, not float32
    "grouped-int32-sums": ((1, 128, 6, 19), (4, 64, 3, 3), 2, dict(pad=(1, 1, 1, 1))),
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("xdt,dtype,relu", [("u8", "u8", True), ("i8", "i8", False),
                                            ("u8", "f32", False)])
def test_grouped_qconv_bit_exact(name, xdt, dtype, relu):
    xs, ws, groups, window = CASES[name]
    g, x, want = case(xs, ws, groups, xdt, dtype, relu, **window)
    check(g, x, want, num_threads=1)


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_split_rows_without_changing_a_bit(threads):
    g, x, want = case((2, 16, 10, 37), (16, 1, 3, 3), 16, "u8", "u8", True,
                      pad=(1, 1, 1, 1), stride=(1, 2))
    check(g, x, want, num_threads=threads)


def test_portable_target_and_no_bias():
    g, x, want = case((1, 4, 8, 21), (8, 2, 3, 3), 2, "i8", "u8", False, pad=(1, 1, 1, 1),
                      stride=(2, 2), bias=False)
    check(g, x, want, num_threads=1, target_features="avx2")


def test_int32_sums_that_float32_could_not_hold():
    """2304 taps near the extremes: the sums pass 2**24 a quarter of the way and reach
    ~6.8e7, with odd terms all along, so float32 partial sums would drift by far more than
    the output's resolution; int32 keeps them, bit for bit."""
    x = RNG.integers(240, 256, (1, 512, 3, 3)).astype(np.uint8)
    w = RNG.integers(-128, -119, (2, 256, 3, 3)).astype(np.int8)
    g, x, want = case((1, 512, 3, 3), (2, 256, 3, 3), 2, "u8", "f32", x=x, w=w,
                      pad=(0, 0, 0, 0))
    check(g, x, want, num_threads=1)


def test_extreme_values_do_not_overflow():
    """|x - zp| = 255 times w = -128 over 64 taps: -2,088,960, far inside int32; every
    output saturates or sits exactly where the reference puts it."""
    x = np.full((1, 4, 8, 8), 255, np.uint8)
    w = np.full((4, 1, 8, 8), -128, np.int8)
    g, x, want = case((1, 4, 8, 8), (4, 1, 8, 8), 4, "u8", "f32", x=x, w=w, pad=(0, 0, 0, 0))
    check(g, x, want, num_threads=1)
    g, x, want = case((1, 4, 8, 8), (4, 1, 8, 8), 4, "u8", "i8", x=x, w=w)
    check(g, x, want, num_threads=1)


def test_empty_input_with_padding_gives_the_bias():
    """An input with no pixels but padding around it: every window is padding (x - zp = 0),
    so each output is its channel's bias, requantized; nothing reads the empty input."""
    g, x, want = case((1, 3, 0, 0), (3, 1, 3, 3), 3, "u8", "f32", pad=(2, 2, 2, 2))
    assert want.shape == (1, 3, 2, 2)
    check(g, x, want, num_threads=1)


def test_fast_math_keeps_the_integers_exact():
    """fast_math lets LLVM reorder float math: the float32 sums stay exact (integers below
    2**24 in any order) and the requantize step is built strict."""
    g, x, want = case((1, 16, 9, 23), (16, 1, 3, 3), 16, "u8", "u8", True, pad=(1, 1, 1, 1),
                      stride=(2, 2))
    check(g, x, want, num_threads=1, fast_math=True)
