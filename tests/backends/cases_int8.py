"""LLVM cases for the quantization operators (registered into cases.CASES): integer
results compared exactly (rtol = atol = 0) with the reference interpreter. Odd sizes hit
the partial row tiles (M % MR), masked column panels (N % 32) and K % 4 padding."""

from __future__ import annotations

import numpy as np

from .cases import case
from .helpers import randint, uniform

EXACT = dict(rtol=0, atol=0)

case("quantize", "u8-tensor", {"x": uniform(-3, 3, 3, 37)},
     attrs={"scale": (0.02,), "zero_point": (128,)}, **EXACT)
case("quantize", "i8-axis1-ties", {"x": np.arange(-40, 40, dtype=np.float32).reshape(2, 4, 10)
                                   * np.float32(0.25)},
     attrs={"scale": (0.5, 0.25, 0.1, 1.0), "zero_point": (1, -2, 0, 3), "axis": 1,
            "dtype": "i8"}, **EXACT)
case("dequantize", "u8-tensor", {"q": randint(0, 256, 33, dtype=np.uint8)},
     attrs={"scale": (0.1,), "zero_point": (7,)}, **EXACT)
case("dequantize", "i8-axis0", {"q": randint(-128, 128, 3, 17, dtype=np.int8)},
     attrs={"scale": (0.1, 0.2, 0.3), "zero_point": (0, 5, -5), "axis": 0}, **EXACT)
case("dequantize", "i32", {"q": randint(-10**6, 10**6, 19, dtype=np.int32)},
     attrs={"scale": (1e-3,)}, **EXACT)


def _qlinear(variant, lead, k, n, xdt, dtype, relu, bias=True):
    lo, hi = (0, 256) if xdt == np.uint8 else (-128, 128)
    args = {"x": randint(lo, hi, *lead, k, dtype=xdt),
            "w": randint(-128, 128, n, k, dtype=np.int8)}
    if bias:
        args["b"] = randint(-30000, 30000, n, dtype=np.int32)
    w_scale = tuple(float(v) for v in np.linspace(0.001, 0.004, n))
    attrs = {"x_scale": 0.03, "x_zero_point": 100 if xdt == np.uint8 else 5,
             "w_scale": w_scale, "y_scale": 0.7, "y_zero_point": 9 if dtype != "f32" else 0,
             "dtype": dtype, "relu": relu}
    case("qlinear", variant, args, attrs=attrs, weights=tuple(a for a in args if a != "x"),
         **EXACT)


_qlinear("u8-direct", (8,), 64, 32, np.uint8, "u8", False)
_qlinear("u8-odd", (13,), 33, 45, np.uint8, "u8", True)
_qlinear("i8-odd", (2, 7), 17, 3, np.int8, "i8", False)
_qlinear("i8-f32-relu", (9,), 100, 70, np.int8, "f32", True, bias=False)
_qlinear("u8-m1-k1", (1,), 1, 1, np.uint8, "f32", False)


def _qconv(variant, xs, ws, xdt, dtype, relu, **window):
    lo, hi = (0, 256) if xdt == np.uint8 else (-128, 128)
    args = {"x": randint(lo, hi, *xs, dtype=xdt), "w": randint(-128, 128, *ws, dtype=np.int8),
            "b": randint(-30000, 30000, ws[0], dtype=np.int32)}
    attrs = {**window, "x_scale": 0.02, "x_zero_point": 3 if xdt == np.uint8 else -6,
             "w_scale": tuple(float(v) for v in np.linspace(0.002, 0.005, ws[0])),
             "y_scale": 0.5, "y_zero_point": 0 if dtype == "f32" else 4, "dtype": dtype,
             "relu": relu}
    case("qconv2d", variant, args, attrs=attrs, weights=("w", "b"), **EXACT)


_qconv("u8-pad", (2, 3, 7, 7), (17, 3, 3, 3), np.uint8, "u8", True, pad=(1, 1, 1, 1))
_qconv("i8-stride-dilation", (1, 5, 9, 8), (6, 5, 2, 3), np.int8, "i8", False,
       stride=(2, 1), pad=(0, 2, 1, 1), dilation=(2, 1))
_qconv("u8-f32-1x1", (3, 8, 4, 5), (33, 8, 1, 1), np.uint8, "f32", False)
_qconv("u8-depthwise-s2", (1, 6, 9, 18), (6, 1, 3, 3), np.uint8, "u8", True,
       pad=(1, 1, 1, 1), stride=(2, 2), groups=6)
_qconv("i8-grouped", (2, 8, 5, 7), (6, 4, 3, 3), np.int8, "f32", False, pad=(1, 0, 1, 2),
       groups=2)


def _two(op, variant, ash, bsh, adt, bdt, dtype, **extra):
    def q(shape, dt):
        lo, hi = (0, 256) if dt == np.uint8 else (-128, 128)
        return randint(lo, hi, *shape, dtype=dt)

    attrs = {"a_scale": 0.03, "a_zero_point": 7 if adt == np.uint8 else -5, "b_scale": 0.011,
             "b_zero_point": 131 if bdt == np.uint8 else 3, "y_scale": 0.9 if op == "qmatmul"
             else 0.05, "y_zero_point": 0 if dtype == "f32" else 12, "dtype": dtype, **extra}
    case(op, variant, {"a": q(ash, adt), "b": q(bsh, bdt)}, attrs=attrs, **EXACT)


_two("qmatmul", "u8-i8-batched-odd", (2, 3, 5, 7), (3, 7, 17), np.uint8, np.int8, "u8")
_two("qmatmul", "i8-u8-f32-n16", (4, 9, 64), (4, 64, 16), np.int8, np.uint8, "f32")
_two("qmatmul", "u8-u8-2d", (1, 1), (1, 33), np.uint8, np.uint8, "i8")
_two("qadd", "u8-relu-broadcast", (2, 3, 4, 37), (3, 1, 37), np.uint8, np.uint8, "u8",
     relu=True)
_two("qadd", "i8-u8-to-i8", (5, 19), (5, 19), np.int8, np.uint8, "i8", relu=False)
case("qmax_pool2d", "u8-3x3-s2-pad", {"x": randint(0, 256, 2, 3, 9, 37, dtype=np.uint8)},
     attrs={"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1, 1, 1)}, **EXACT)
case("qmax_pool2d", "i8-ceil-s3-dil", {"x": randint(-128, 128, 1, 2, 8, 20, dtype=np.int8)},
     attrs={"kernel": (2, 3), "stride": (1, 3), "pad": (0, 1, 1, 1), "dilation": (2, 1),
            "ceil_mode": True}, **EXACT)
