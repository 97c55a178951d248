"""Cases for the quantization operators (see cases.py): onnxruntime's QuantizeLinear,
DequantizeLinear and, for qlinear, MatMulInteger + Add + Cast + Mul [+ Relu] +
QuantizeLinear(scale 1): the integer sum, then the requantize step written out."""

from __future__ import annotations

import numpy as np

from .cases import N, case, randint, randn

_U8, _I8 = np.uint8, np.int8


def _q(x: np.ndarray, dtype) -> np.ndarray:
    return x.astype(dtype)


# ---- quantize -------------------------------------------------------------------------------
_X = randn(3, 4, 5, scale=3.0)
_X.flat[:4] = [0.25, 0.75, -0.25, 1.25]  # exact halves of the 0.5 scale: ties to even
case("quantize", "u8-tensor", {"x": _X},
     N("QuantizeLinear", "x", "s", "zp"), attrs={"scale": (0.5,), "zero_point": (120,)},
     consts={"s": np.float32(0.5), "zp": _U8(120)})
case("quantize", "i8-tensor-saturating", {"x": _X * 40},
     N("QuantizeLinear", "x", "s", "zp"),
     attrs={"scale": (0.25,), "zero_point": (-5,), "dtype": "i8"},
     consts={"s": np.float32(0.25), "zp": _I8(-5)})
_S4 = np.array([0.01, 0.02, 0.05, 0.1], np.float32)
case("quantize", "i8-axis1", {"x": _X},
     N("QuantizeLinear", "x", "s", "zp", axis=1),
     attrs={"scale": tuple(map(float, _S4)), "zero_point": (1, -2, 0, 3), "axis": 1,
            "dtype": "i8"},
     consts={"s": _S4, "zp": np.array([1, -2, 0, 3], _I8)})

# ---- dequantize -----------------------------------------------------------------------------
case("dequantize", "u8-tensor", {"q": _q(randint(0, 256, 4, 7), _U8)},
     N("DequantizeLinear", "q", "s", "zp"), attrs={"scale": (0.03,), "zero_point": (128,)},
     consts={"s": np.float32(0.03), "zp": _U8(128)})
_S3 = np.array([0.5, 0.001, 0.07], np.float32)
case("dequantize", "i8-axis0", {"q": _q(randint(-128, 128, 3, 6), _I8)},
     N("DequantizeLinear", "q", "s", "zp", axis=0),
     attrs={"scale": tuple(map(float, _S3)), "zero_point": (0, 4, -9), "axis": 0},
     consts={"s": _S3, "zp": np.array([0, 4, -9], _I8)})
case("dequantize", "i32-bias", {"q": _q(randint(-100000, 100000, 5), np.int32)},
     N("DequantizeLinear", "q", "s", "zp"), attrs={"scale": (1e-4,)},
     consts={"s": np.float32(1e-4), "zp": np.int32(0)})


# ---- qlinear --------------------------------------------------------------------------------
def _qlinear(variant, m, k, n, xdt, dtype, relu, bias=True, per_channel=True):
    lo, hi = (0, 256) if xdt == _U8 else (-128, 128)
    x = _q(randint(lo, hi, m, k), xdt)
    w = _q(randint(-127, 128, n, k), _I8)
    args = {"x": x, "w": w}
    if bias:
        args["b"] = _q(randint(-20000, 20000, n), np.int32)
    w_scale = randn(n if per_channel else 1, scale=0.001) ** 2 + np.float32(0.002)
    x_scale, y_scale, x_zp = 0.05, 0.4, (130 if xdt == _U8 else -7)
    y_zp = {"u8": 20, "i8": -3, "f32": 0}[dtype]
    attrs = {"x_scale": x_scale, "x_zero_point": x_zp, "w_scale": tuple(map(float, w_scale)),
             "y_scale": y_scale, "y_zero_point": y_zp, "dtype": dtype, "relu": relu}
    # the per-channel float32 factor, as the operator defines it
    ws = np.broadcast_to(w_scale.astype(np.float64), (n,))
    mult = (x_scale * ws if dtype == "f32" else x_scale * ws / y_scale).astype(np.float32)
    consts = {"wT": np.ascontiguousarray(w.T), "xzp": xdt(x_zp), "mult": mult}
    nodes = [N("MatMulInteger", "x", "wT", "xzp", out="acc0")]
    acc = "acc0"
    if bias:
        nodes.append(N("Add", "acc0", "b", out="acc1"))
        acc = "acc1"
    nodes += [N("Cast", acc, out="accf", to=1), N("Mul", "accf", "mult", out="yf")]
    last = "yf"
    if relu:
        nodes.append(N("Relu", "yf", out="yr" if dtype != "f32" else "y"))
        last = "yr"
    if dtype != "f32":
        consts.update(one=np.float32(1.0), yzp=(_U8 if dtype == "u8" else _I8)(y_zp))
        nodes.append(N("QuantizeLinear", last, "one", "yzp"))
    elif not relu:
        nodes[-1] = N("Mul", "accf", "mult", out="y")
    case("qlinear", variant, args, nodes, attrs=attrs, weights=tuple(k for k in args if k != "x"),
         consts=consts, rtol=0, atol=0)


_qlinear("u8-u8", 5, 33, 17, _U8, "u8", False)
_qlinear("u8-relu", 4, 16, 40, _U8, "u8", True)
_qlinear("i8-i8", 3, 7, 9, _I8, "i8", False)
_qlinear("i8-f32-nobias", 6, 20, 5, _I8, "f32", False, bias=False)
_qlinear("u8-f32-relu-tensor", 2, 9, 11, _U8, "f32", True, per_channel=False)


# ---- qconv2d --------------------------------------------------------------------------------
def _qconv(variant, xs, ws, xdt, dtype, relu, window):
    lo, hi = (0, 256) if xdt == _U8 else (-128, 128)
    x, w = _q(randint(lo, hi, *xs), xdt), _q(randint(-127, 128, *ws), _I8)
    o = ws[0]
    args = {"x": x, "w": w, "b": _q(randint(-5000, 5000, o), np.int32)}
    w_scale = randn(o, scale=0.001) ** 2 + np.float32(0.003)
    x_zp, y_zp = (140 if xdt == _U8 else -4), {"u8": 9, "i8": -2, "f32": 0}[dtype]
    attrs = {**window, "x_scale": 0.02, "x_zero_point": x_zp,
             "w_scale": tuple(map(float, w_scale)), "y_scale": 0.25, "y_zero_point": y_zp,
             "dtype": dtype, "relu": relu}
    ws64 = w_scale.astype(np.float64)
    mult = (0.02 * ws64 if dtype == "f32" else 0.02 * ws64 / 0.25).astype(np.float32)
    onnx_window = {"strides": list(window.get("stride", (1, 1))),
                   "pads": list(window.get("pad", (0, 0, 0, 0))),
                   "dilations": list(window.get("dilation", (1, 1)))}
    consts = {"xzp": xdt(x_zp), "mult": mult.reshape(o, 1, 1), "b3": args["b"].reshape(o, 1, 1)}
    nodes = [N("ConvInteger", "x", "w", "xzp", out="acc0", **onnx_window),
             N("Add", "acc0", "b3", out="acc1"), N("Cast", "acc1", out="accf", to=1),
             N("Mul", "accf", "mult", out="yf" if relu or dtype != "f32" else "y")]
    last = "yf"
    if relu:
        nodes.append(N("Relu", "yf", out="y" if dtype == "f32" else "yr"))
        last = "yr"
    if dtype != "f32":
        consts.update(one=np.float32(1.0), yzp=(_U8 if dtype == "u8" else _I8)(y_zp))
        nodes.append(N("QuantizeLinear", last, "one", "yzp"))
    case("qconv2d", variant, args, nodes, attrs=attrs, weights=("w", "b"), consts=consts,
         rtol=0, atol=0)


_qconv("u8-pad-relu", (1, 3, 6, 6), (4, 3, 3, 3), _U8, "u8", True, {"pad": (1, 1, 1, 1)})
_qconv("i8-stride-dilation", (2, 2, 9, 8), (5, 2, 3, 2), _I8, "i8", False,
       {"stride": (2, 1), "pad": (1, 0, 2, 1), "dilation": (1, 2)})
_qconv("u8-f32", (1, 4, 5, 5), (3, 4, 1, 1), _U8, "f32", False, {})


# ---- qmatmul: MatMulInteger with both zero points, Cast, Mul, [QuantizeLinear(scale 1)] -----
def _qmatmul(variant, ash, bsh, adt, bdt, dtype):
    def q(shape, dt):
        lo, hi = (0, 256) if dt == _U8 else (-128, 128)
        return _q(randint(lo, hi, *shape), dt)

    a_zp, b_zp = (7 if adt == _U8 else -5), (131 if bdt == _U8 else 3)
    y_zp = {"u8": 12, "i8": -4, "f32": 0}[dtype]
    attrs = {"a_scale": 0.03, "a_zero_point": a_zp, "b_scale": 0.011, "b_zero_point": b_zp,
             "y_scale": 0.9, "y_zero_point": y_zp, "dtype": dtype}
    mult = np.float32(0.03 * 0.011 if dtype == "f32" else 0.03 * 0.011 / 0.9)
    consts = {"az": adt(a_zp), "bz": bdt(b_zp), "m": mult}
    nodes = [N("MatMulInteger", "a", "b", "az", "bz", out="acc"), N("Cast", "acc", out="f", to=1),
             N("Mul", "f", "m", out="y" if dtype == "f32" else "yf")]
    if dtype != "f32":
        consts.update(one=np.float32(1.0), yz=(_U8 if dtype == "u8" else _I8)(y_zp))
        nodes.append(N("QuantizeLinear", "yf", "one", "yz"))
    case("qmatmul", variant, {"a": q(ash, adt), "b": q(bsh, bdt)}, nodes, attrs=attrs,
         consts=consts, rtol=0, atol=0)


_qmatmul("u8-i8-batched", (2, 3, 5, 7), (2, 3, 7, 6), _U8, _I8, "u8")
_qmatmul("u8-u8-broadcast-f32", (2, 4, 33), (33, 18), _U8, _U8, "f32")
_qmatmul("i8-i8", (3, 6, 16), (3, 16, 5), _I8, _I8, "i8")


# ---- qadd: DequantizeLinear x 2, Add, [Relu], QuantizeLinear ---------------------------------
def _qadd(variant, ash, bsh, adt, bdt, dtype, relu):
    lo = {_U8: 0, _I8: -128}
    args = {"a": _q(randint(lo[adt], lo[adt] + 256, *ash), adt),
            "b": _q(randint(lo[bdt], lo[bdt] + 256, *bsh), bdt)}
    a_zp, b_zp, y_zp = (100 if adt == _U8 else -9), (3 if bdt == _U8 else 20), \
        (40 if dtype == "u8" else -6)
    attrs = {"a_scale": 0.05, "a_zero_point": a_zp, "b_scale": 0.0123, "b_zero_point": b_zp,
             "y_scale": 0.07, "y_zero_point": y_zp, "dtype": dtype, "relu": relu}
    ydt = _U8 if dtype == "u8" else _I8
    consts = {"sa": np.float32(0.05), "za": adt(a_zp), "sb": np.float32(0.0123), "zb": bdt(b_zp),
              "sy": np.float32(0.07), "zy": ydt(y_zp)}
    nodes = [N("DequantizeLinear", "a", "sa", "za", out="af"),
             N("DequantizeLinear", "b", "sb", "zb", out="bf"), N("Add", "af", "bf", out="s")]
    if relu:
        nodes.append(N("Relu", "s", out="r"))
    nodes.append(N("QuantizeLinear", "r" if relu else "s", "sy", "zy"))
    case("qadd", variant, args, nodes, attrs=attrs, consts=consts, rtol=0, atol=0)


_qadd("u8-relu-broadcast", (2, 3, 4, 5), (3, 1, 5), _U8, _U8, "u8", True)
_qadd("i8-u8-to-i8", (7, 9), (7, 9), _I8, _U8, "i8", False)


# ---- qmax_pool2d: MaxPool on the bytes --------------------------------------------------------
case("qmax_pool2d", "u8-3x3-s2-pad", {"x": _q(randint(0, 256, 1, 3, 7, 9), _U8)},
     N("MaxPool", "x", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
     attrs={"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1, 1, 1)}, rtol=0, atol=0)
case("qmax_pool2d", "i8-ceil-dilation", {"x": _q(randint(-128, 128, 2, 2, 9, 11), _I8)},
     N("MaxPool", "x", kernel_shape=[2, 3], strides=[2, 2], dilations=[2, 1], ceil_mode=1),
     attrs={"kernel": (2, 3), "stride": (2, 2), "dilation": (2, 1), "ceil_mode": True},
     rtol=0, atol=0)
