"""Quantization operators: float <-> 8-bit integers, and the integer linear layer.

Semantics are ONNX's (QuantizeLinear, DequantizeLinear, QLinearMatMul), as onnxruntime
computes them, so a quantized Lamina graph and its QDQ ONNX export agree bit for bit:

`quantize(x) {scale, zero_point, axis, dtype}`
    q = saturate(round_half_even(x / scale) + zero_point), computed in float32 and stored
    as `dtype` ("u8" or "i8"). One scale and zero point (per tensor), or one scale per index
    of `axis` (per axis: a weight's output channels) with one zero point each or one for all.
`dequantize(q) {scale, zero_point, axis}`
    x = float32(q - zero_point) * scale, for u8, i8 or i32 (an int32 bias) operands.
`qlinear(xq, wq[, bias]) {x_scale, x_zero_point, w_scale, y_scale, y_zero_point, dtype,
relu}`
    The integer linear layer, weight [N, K] as `linear` lays it out. xq: u8 or i8 [..., K];
    wq: i8, symmetric (zero point 0), with one scale per output channel (or one in all);
    bias: i32 [N] in units of x_scale * w_scale[n]. First exact integer arithmetic:
        acc[m, n] = sum_k (xq[m, k] - x_zero_point) * wq[n, k] + bias[n]      (int32)
    then the float epilogue, with per-channel float32 multipliers (`multipliers` below):
        dtype u8/i8:  y = saturate(round_half_even(float32(acc) * M[n]) + y_zero_point),
                      M[n] = x_scale * w_scale[n] / y_scale; relu: y = max(y, y_zero_point)
        dtype f32:    y = float32(acc) * S[n], S[n] = x_scale * w_scale[n]; relu: max(y, 0)
    This is QLinearMatMul followed by the bias and activation a quantizer folds into it
    (ONNX: MatMulInteger, Add, Cast, Mul, [Relu], QuantizeLinear with scale 1).

`qconv2d(xq, wq[, bias]) {stride, pad, dilation, groups, <qlinear's attributes>}`
    The integer conv2d (conv2d's layout and window attributes): acc = conv2d(xq -
    x_zero_point, wq) + bias in int32 -- padding holds x_zero_point, a real 0 -- then
    qlinear's epilogue per output channel (axis 1).

`qmatmul(aq, bq) {a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point,
dtype}`
    The integer matmul of two activations (attention's Q.K^T and P.V): a [..., M, K] and
    b [..., K, N], u8 or i8 each, per tensor, batch axes broadcasting as matmul's:
        acc = (aq - a_zero_point) @ (bq - b_zero_point)                            (int32)
    then qlinear's epilogue with the one multiplier M = a_scale * b_scale / y_scale (dtype
    u8/i8), or S = a_scale * b_scale (dtype f32). With K * 255 * 255 < 2**31 (K below
    33025) no sum overflows. (ONNX: MatMulInteger, Cast, Mul, QuantizeLinear with scale 1.)
`qadd(aq, bq) {a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point, dtype,
relu}`
    quantize(dequantize(aq) + dequantize(bq)) with numpy broadcasting, defined as those
    float32 operations in that order -- (float32(a - za) * sa + float32(b - zb) * sb) / sy,
    round half to even, + zy, saturate; relu: max(y, zy) -- so that it equals the QDQ graph
    it replaces bit for bit, without the float tensors in memory.

`qmax_pool2d(q) {kernel, stride, pad, dilation, ceil_mode}`
    max_pool2d on u8/i8 bytes, the result in the same dtype: quantizing is monotone, so
    the maximum of quantized values is the quantized maximum and needs no parameters;
    padding never wins (it holds the dtype's least value).

int32 accumulation wraps on overflow (two's complement), as every native kernel does; with
K * 255 * 128 < 2**31 (K below 65793) no sum can overflow.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidAttributeError, ShapeError
from ..tensor_type import TensorType
from .nn import POOL, WINDOW, pool_infer
from .registry import Attr, Fusion, OpDef, get, register
from .shape_rules import axis as norm_axis
from .shape_rules import window_out

RANGES = {"u8": (0, 255), "i8": (-128, 127)}  # what an 8-bit quantized dtype holds


def _positive(v) -> bool:
    return len(v) >= 1 and all(np.isfinite(s) and s > 0 for s in v)


def _qparams(out_dtype: str | None) -> dict[str, Attr]:
    attrs = {
        "scale": Attr("floats", check=_positive, rule="one or more finite positive floats"),
        "zero_point": Attr("ints", (0,)),
        "axis": Attr("int", 1),
    }
    if out_dtype:
        attrs["dtype"] = Attr("str", out_dtype, lambda v: v in RANGES, "u8 or i8")
    return attrs


def _check_params(x: TensorType, scale, zero_point, axis, dtype) -> None:
    """Shared checks: matching lengths, a valid axis for per-axis parameters, zero points
    the quantized type holds."""
    if len(zero_point) not in (1, len(scale)):
        raise InvalidAttributeError(f"scale has {len(scale)} values but zero_point has "
                                    f"{len(zero_point)} (one for all, or one per scale)")
    if len(scale) > 1:
        ax = norm_axis(axis, x.rank)
        if x.shape[ax] != len(scale):
            raise ShapeError(f"per-axis scale has {len(scale)} values but axis {axis} of {x} "
                             f"has {x.shape[ax]}")
    lo, hi = RANGES.get(dtype, (-(2**31), 2**31 - 1))
    if any(not lo <= z <= hi for z in zero_point):
        raise InvalidAttributeError(f"zero_point {list(zero_point)} outside the range of "
                                    f"{dtype} [{lo}, {hi}]")


def broadcastable(values, x_rank: int, axis: int, dtype) -> np.ndarray:
    """Per-tensor or per-axis parameters shaped to broadcast against an operand."""
    a = np.asarray(values, dtype)
    if a.size == 1:
        return a.reshape(())
    shape = [1] * x_rank
    shape[norm_axis(axis, x_rank)] = a.size
    return a.reshape(shape)


# ---- quantize -------------------------------------------------------------------------------
def _quantize_infer(x, scale, zero_point, axis, dtype):
    if x.dtype != "f32":
        raise ShapeError(f"quantize takes f32, got {x}")
    _check_params(x, scale, zero_point, axis, dtype)
    return TensorType(x.shape, dtype)


def quantize_array(x, scale, zero_point, axis=1, dtype="u8") -> np.ndarray:
    x = np.asarray(x, np.float32)
    s = broadcastable(scale, x.ndim, axis, np.float32)
    z = broadcastable(zero_point, x.ndim, axis, np.float32)
    lo, hi = RANGES[dtype]
    with np.errstate(invalid="ignore"):
        q = np.clip(np.rint(x / s) + z, lo, hi)  # rint: round half to even, as ONNX
    return q.astype(np.uint8 if dtype == "u8" else np.int8)


register(OpDef(
    name="quantize",
    infer=_quantize_infer,
    compute=quantize_array,
    attrs=_qparams("u8"),
    arity=(1, 1),
    fusion=Fusion.OPAQUE,  # changes the dtype: the float fusers must leave it alone
    doc="saturate(round_half_even(x / scale) + zero_point) as u8/i8 (ONNX QuantizeLinear); "
        "per tensor or per index of `axis`"))


# ---- dequantize -----------------------------------------------------------------------------
def _dequantize_infer(q, scale, zero_point, axis):
    if q.dtype not in ("u8", "i8", "i32"):
        raise ShapeError(f"dequantize takes u8, i8 or i32, got {q}")
    _check_params(q, scale, zero_point, axis, q.dtype)
    return TensorType(q.shape, "f32")


def dequantize_array(q, scale, zero_point=(0,), axis=1) -> np.ndarray:
    q = np.asarray(q)
    s = broadcastable(scale, q.ndim, axis, np.float32)
    z = broadcastable(zero_point, q.ndim, axis, np.int64)
    return ((q.astype(np.int64) - z).astype(np.float32) * s).astype(np.float32)


register(OpDef(
    name="dequantize",
    infer=_dequantize_infer,
    compute=dequantize_array,
    attrs=_qparams(None),
    arity=(1, 1),
    fusion=Fusion.OPAQUE,
    doc="float32(q - zero_point) * scale for u8/i8/i32 q (ONNX DequantizeLinear); per "
        "tensor or per index of `axis`"))


# ---- qlinear --------------------------------------------------------------------------------
QLINEAR_ATTRS = {
    "x_scale": Attr("float", check=lambda v: np.isfinite(v) and v > 0, rule="positive"),
    "x_zero_point": Attr("int", 0),
    "w_scale": Attr("floats", check=_positive, rule="one or more finite positive floats"),
    "y_scale": Attr("float", 1.0, lambda v: np.isfinite(v) and v > 0, "positive"),
    "y_zero_point": Attr("int", 0),
    "dtype": Attr("str", "u8", lambda v: v in ("u8", "i8", "f32"), "u8, i8 or f32"),
    "relu": Attr("bool", False),
}


def _qlinear_infer(x, w, bias=None, *, x_scale, x_zero_point, w_scale, y_scale,
                   y_zero_point, dtype, relu):
    if x.dtype not in RANGES or w.dtype != "i8":
        raise ShapeError(f"qlinear takes u8/i8 activations and i8 weights, got {x}, {w}")
    if x.rank < 1 or w.rank != 2 or x.shape[-1] != w.shape[1]:
        raise ShapeError(f"qlinear: input {x} and weight {w} ([out, in]) do not match")
    n = w.shape[0]
    if bias is not None and (bias.dtype != "i32" or bias.shape != (n,)):
        raise ShapeError(f"qlinear bias must be i32[{n}], got {bias}")
    _check_epilogue(x, n, w_scale, x_zero_point, dtype, y_zero_point, f"weight {w}")
    return TensorType((*x.shape[:-1], n), dtype)


def multipliers(n: int, x_scale, w_scale, y_scale, dtype) -> np.ndarray:
    """The float32 factor per output channel applied to the int32 accumulator: the one
    definition the reference semantics and every kernel use."""
    ws = np.broadcast_to(np.asarray(w_scale, np.float64), (n,))
    m = x_scale * ws if dtype == "f32" else x_scale * ws / y_scale
    return m.astype(np.float32)


def accumulate(x, w, bias, x_zero_point) -> np.ndarray:
    """acc = (x - x_zero_point) @ w.T + bias, exact, wrapped to int32."""
    acc = (np.asarray(x, np.int64) - x_zero_point) @ np.asarray(w, np.int64).T
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return acc.astype(np.int32)  # two's complement wrap, as an int32 accumulator


def requantize(acc, mult, y_zero_point, dtype, relu) -> np.ndarray:
    """The epilogue on int32 accumulators (see the module docstring); `mult` broadcasts
    against them (channels last for qlinear, [O, 1, 1] for qconv2d)."""
    y = acc.astype(np.float32) * mult
    if dtype == "f32":
        return np.maximum(y, np.float32(0)) if relu else y
    lo, hi = RANGES[dtype]
    q = np.clip(np.rint(y) + np.float32(y_zero_point), lo, hi)
    if relu:
        q = np.maximum(q, y_zero_point)
    return q.astype(np.uint8 if dtype == "u8" else np.int8)


def _qlinear(x, w, bias=None, *, x_scale, x_zero_point, w_scale, y_scale, y_zero_point,
             dtype, relu):
    acc = accumulate(x, w, bias, x_zero_point)
    mult = multipliers(w.shape[0], x_scale, w_scale, y_scale, dtype)
    return requantize(acc, mult, y_zero_point, dtype, relu)


register(OpDef(
    name="qlinear",
    infer=_qlinear_infer,
    compute=_qlinear,
    attrs=QLINEAR_ATTRS,
    arity=(2, 3),
    fusion=Fusion.OPAQUE,
    doc="integer linear layer: (xq - x_zero_point) @ wq.T + bias in int32, then requantized "
        "(scale, zero point, clamp, optional relu) to u8/i8, or scaled to f32"))


# ---- qconv2d --------------------------------------------------------------------------------
def _check_epilogue(x, n, w_scale, x_zero_point, dtype, y_zero_point, what) -> None:
    if len(w_scale) not in (1, n):
        raise InvalidAttributeError(f"w_scale has {len(w_scale)} values; {what} has {n} "
                                    "output channels")
    lo, hi = RANGES[x.dtype]
    if not lo <= x_zero_point <= hi:
        raise InvalidAttributeError(f"x_zero_point {x_zero_point} outside {x.dtype}")
    if dtype in RANGES and not RANGES[dtype][0] <= y_zero_point <= RANGES[dtype][1]:
        raise InvalidAttributeError(f"y_zero_point {y_zero_point} outside {dtype}")


def _qconv_infer(x, w, bias=None, *, stride, pad, dilation, groups, x_scale, x_zero_point,
                 w_scale, y_scale, y_zero_point, dtype, relu):
    if x.dtype not in RANGES or w.dtype != "i8" or x.rank != 4 or w.rank != 4:
        raise ShapeError(f"qconv2d takes u8/i8 x [N,C,H,W] and i8 weight [O,C/groups,KH,KW], "
                         f"got {x}, {w}")
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if c % groups or o % groups or cg != c // groups:
        raise ShapeError(f"qconv2d: input {x} and weight {w} do not match for groups={groups}")
    if bias is not None and (bias.dtype != "i32" or bias.shape != (o,)):
        raise ShapeError(f"qconv2d bias must be i32[{o}], got {bias}")
    _check_epilogue(x, o, w_scale, x_zero_point, dtype, y_zero_point, f"weight {w}")
    oh = window_out(h, kh, stride[0], pad[0], pad[2], dilation[0])
    ow = window_out(wd, kw, stride[1], pad[1], pad[3], dilation[1])
    return TensorType((n, o, oh, ow), dtype)


def _qconv(x, w, bias=None, *, stride, pad, dilation, groups, x_scale, x_zero_point, w_scale,
           y_scale, y_zero_point, dtype, relu):
    # conv2d's reference semantics on int64 operands: exact, zero padding of x - zp
    acc = get("conv2d").compute(np.asarray(x, np.int64) - x_zero_point,
                                np.asarray(w, np.int64), stride=stride, pad=pad,
                                dilation=dilation, groups=groups)
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64).reshape(1, -1, 1, 1)
    o = w.shape[0]
    mult = multipliers(o, x_scale, w_scale, y_scale, dtype).reshape(o, 1, 1)
    return requantize(acc.astype(np.int32), mult, y_zero_point, dtype, relu)


register(OpDef(
    name="qconv2d",
    infer=_qconv_infer,
    compute=_qconv,
    attrs={**WINDOW, "groups": Attr("int", 1, lambda g: g > 0, "positive"), **QLINEAR_ATTRS},
    arity=(2, 3),
    fusion=Fusion.OPAQUE,
    doc="integer conv2d: conv2d(xq - x_zero_point, wq) + bias in int32 (padding holds the "
        "zero point), then qlinear's requantize per output channel"))


# ---- qmatmul: both operands activations -----------------------------------------------------
def _scale_attr(default=None) -> Attr:
    check = (lambda v: np.isfinite(v) and v > 0)
    return Attr("float", check=check, rule="positive") if default is None else \
        Attr("float", default, check, "positive")


TWO_OPERANDS = {
    "a_scale": _scale_attr(), "a_zero_point": Attr("int", 0),
    "b_scale": _scale_attr(), "b_zero_point": Attr("int", 0),
    "y_scale": _scale_attr(1.0), "y_zero_point": Attr("int", 0),
}


def _check_two(a, b, a_zero_point, b_zero_point, dtype, y_zero_point, op: str) -> None:
    if a.dtype not in RANGES or b.dtype not in RANGES:
        raise ShapeError(f"{op} takes u8/i8 operands, got {a}, {b}")
    for name, t, zp in (("a", a, a_zero_point), ("b", b, b_zero_point)):
        lo, hi = RANGES[t.dtype]
        if not lo <= zp <= hi:
            raise InvalidAttributeError(f"{name}_zero_point {zp} outside {t.dtype}")
    if dtype in RANGES and not RANGES[dtype][0] <= y_zero_point <= RANGES[dtype][1]:
        raise InvalidAttributeError(f"y_zero_point {y_zero_point} outside {dtype}")


def _qmatmul_infer(a, b, *, a_scale, a_zero_point, b_scale, b_zero_point, y_scale,
                   y_zero_point, dtype):
    _check_two(a, b, a_zero_point, b_zero_point, dtype, y_zero_point, "qmatmul")
    if a.rank < 2 or b.rank < 2 or a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"qmatmul: {a} @ {b} do not match ([..., M, K] @ [..., K, N])")
    try:
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ShapeError(f"qmatmul: batch dimensions do not broadcast: {a} @ {b}") from None
    return TensorType((*batch, a.shape[-2], b.shape[-1]), dtype)


def _qmatmul(a, b, *, a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point,
             dtype):
    acc = (np.asarray(a, np.int64) - a_zero_point) @ (np.asarray(b, np.int64) - b_zero_point)
    mult = multipliers(1, a_scale, (b_scale,), y_scale, dtype).reshape(())
    return requantize(acc.astype(np.int32), mult, y_zero_point, dtype, False)


register(OpDef(
    name="qmatmul",
    infer=_qmatmul_infer,
    compute=_qmatmul,
    attrs={**TWO_OPERANDS, "dtype": QLINEAR_ATTRS["dtype"]},
    arity=(2, 2),
    fusion=Fusion.OPAQUE,
    doc="integer batched matmul of two activations: (aq - a_zero_point) @ (bq - "
        "b_zero_point) in int32, then requantized with a_scale * b_scale / y_scale (or "
        "scaled to f32)"))


# ---- qadd -----------------------------------------------------------------------------------
def _qadd_infer(a, b, *, a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point,
                dtype, relu):
    _check_two(a, b, a_zero_point, b_zero_point, dtype, y_zero_point, "qadd")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ShapeError(f"qadd: {a} and {b} do not broadcast") from None
    return TensorType(shape, dtype)


def _qadd(a, b, *, a_scale, a_zero_point, b_scale, b_zero_point, y_scale, y_zero_point,
          dtype, relu):
    s = dequantize_array(a, (a_scale,), (a_zero_point,)) + \
        dequantize_array(b, (b_scale,), (b_zero_point,))
    q = quantize_array(s, (y_scale,), (y_zero_point,), dtype=dtype)
    return np.maximum(q, q.dtype.type(y_zero_point)) if relu else q


register(OpDef(
    name="qadd",
    infer=_qadd_infer,
    compute=_qadd,
    attrs={**TWO_OPERANDS, "dtype": Attr("str", "u8", lambda v: v in RANGES, "u8 or i8"),
           "relu": Attr("bool", False)},
    arity=(2, 2),
    fusion=Fusion.OPAQUE,
    doc="quantize(dequantize(aq) + dequantize(bq)) [relu] in one step, the same float32 "
        "operations: the integer-domain residual add"))


# ---- qmax_pool2d ----------------------------------------------------------------------------
def _qmax_pool_infer(x, **window):
    if x.dtype not in RANGES:
        raise ShapeError(f"qmax_pool2d takes u8/i8, got {x}")
    return TensorType(pool_infer(TensorType(x.shape, "f32"), **window).shape, x.dtype)


def _qmax_pool(x, **window):
    # max_pool2d's semantics on float32 copies of the bytes (exact), then back
    x = np.asarray(x)
    return get("max_pool2d").compute(x.astype(np.float32), **window).astype(x.dtype)


register(OpDef(
    name="qmax_pool2d",
    infer=_qmax_pool_infer,
    compute=_qmax_pool,
    attrs=POOL,
    arity=(1, 1),
    fusion=Fusion.OPAQUE,
    doc="max_pool2d on quantized u8/i8 values: the maximum commutes with quantizing, so "
        "bytes in, bytes out, no parameters"))
