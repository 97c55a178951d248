"""ONNX's quantized operators: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear,
QLinearMatMul, QLinearConv, MatMulInteger and ConvInteger.

Two ways in, chosen per node:

- Onto the registry's integer operators (ir/ops/quant.py). With constant scales and zero
  points, one per tensor or one per index of `axis`, QuantizeLinear to int8/uint8 becomes
  `quantize` and DequantizeLinear of an integer tensor `dequantize`; QLinearMatMul and
  QLinearConv with a constant int8 weight whose zero points are 0 (what quantizers write)
  become `qlinear` and `qconv2d` directly, and so do MatMulInteger and ConvInteger with such
  a weight (scales 1, an f32 result cast to int32) where no sum can reach 2**24, float32's
  last exact integer (K * 255 * 128 < 2**24). The 8-bit tensors these operators meet stay
  i8/u8 in the graph (elsewhere the importer reads int8/uint8 widened to i32, builder.WIDER:
  an i32 operand is cast back, a constant read back into its 8-bit type). A dequantized
  int8 weight stays an i8 weight behind a `dequantize` node instead of folding to floats at
  import, so a QDQ model's pattern -- dequantize -> conv2d/linear [-> relu] -> quantize --
  reaches passes/fold_quantized.py, which turns it into qconv2d/qlinear.
- Everything else (scales or zero points computed at run time, blocked scales, 16-, 4- and
  2-bit integers, asymmetric or run-time weights, larger integer sums,
  DynamicQuantizeLinear): the operator's definition written with float registry operators.
  Integer sums are computed in float64, where every int32 result is exact, and rounded
  half to even by the registry's `round`.

The arithmetic follows onnx's reference implementation step for step (float32 where it
computes in float32, float64 where numpy promotes an int32 sum to it), so integer results
match it exactly. Float8/float4 results are x / scale rounded to the format by
`round_to_format` (ir/ops/narrow.py), carried in f32 as the importer carries those types.
"""

from __future__ import annotations

import math

import numpy as np

from ir import ShapeError
from ir.ops import narrow

from ..builder import Builder, OnnxNode, Unsupported, stored_dtype
from .common import dtype, handler, is_const, norm_axis, rank
from .nn import Conv, window_pads

# what each integer quantized type holds (ONNX's list, as numpy names them)
INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
              "uint16": (0, 65535), "int4": (-8, 7), "uint4": (0, 15), "int2": (-2, 1),
              "uint2": (0, 3), "int32": (-(2**31), 2**31 - 1)}
NATIVE = {"int8": "i8", "uint8": "u8"}  # kept in their own type; the others computed in i32


# ---- element types ---------------------------------------------------------------------------
def _declared(b: Builder, n: OnnxNode, k: int, x) -> str:
    """The element type input `k` has in the file (numpy's name): an i8/u8 value's own, or
    what the file declares for it, or else what Lamina holds it in."""
    if x is not None and not is_const(x) and x.dtype in ("i8", "u8"):
        return "int8" if x.dtype == "i8" else "uint8"
    name = n.inputs[k] if k < len(n.inputs) else ""
    stored = b.stored.get(name)
    return (stored if stored is not None else dtype(x)).name


def _quantized_type(b: Builder, n: OnnxNode, x, xk: int, zp, zk: int) -> str:
    """The type of a quantized operand: its own where known, else its zero point's (ONNX
    gives both one type)."""
    t = _declared(b, n, xk, x)
    if t in NATIVE or zp is None:
        return t
    z = _declared(b, n, zk, zp)
    return z if z in NATIVE else t


def _output_type(b: Builder, n: OnnxNode, zp, zk: int) -> str:
    """QuantizeLinear's result type: its zero point's, or `output_dtype`, or uint8."""
    if zp is not None:
        return _declared(b, n, zk, zp)
    if n.get("output_dtype", 0):
        dt = stored_dtype(n.get("output_dtype"))
        return dt.name if dt is not None else f"type {n.get('output_dtype')}"
    return "uint8"


def _integer(t: str, what: str) -> tuple[int, int]:
    if t not in INT_RANGES:
        raise Unsupported(f"{what} of type {t} (Lamina quantizes to integer types only)")
    return INT_RANGES[t]


def _narrow(b: Builder, x, t: str):
    """An int8/uint8 operand in its own type (i8/u8) rather than the i32 it was read in."""
    want = NATIVE[t]
    if is_const(x):
        return np.ascontiguousarray(x.astype(np.dtype(t)))
    return x if x.dtype == want else b.call("cast", x, dtype=want)


def _saturate(b: Builder, v, t: str):
    """Integer-valued floats clamped to type `t` and stored in it (i32 when not 8-bit)."""
    lo, hi = INT_RANGES[t]
    v = b.call("clip", v, min=float(lo), max=float(hi))
    return b.call("cast", v, dtype=NATIVE.get(t, "i32"))


def _cast(b: Builder, x, to: str):
    if is_const(x):
        return x.astype(np.float64 if to == "f64" else np.float32)
    return x if x.dtype == to else b.call("cast", x, dtype=to)


def _rint(b: Builder, v):
    """round_half_even(v) in float64 (exact: float32 values and int32 sums widen exactly)."""
    return b.call("round", _cast(b, v, "f64"))


# ---- scales and zero points ------------------------------------------------------------------
def _shaped(b: Builder, p, shape, axis: int, block: int = 0):
    """A scale or zero point shaped to broadcast against a tensor of `shape`: one value as a
    scalar, a 1-D vector along `axis`, or (blocked) each value repeated `block` times along
    `axis` (onnx's reshape_input)."""
    r = len(shape)
    if p.shape == () or (math.prod(p.shape) == 1 and len(p.shape) <= 1):
        return b.reshape(p, ())
    ax = _axis(axis, r, block)
    if block:
        want = -(-shape[ax] // block)
        if rank(p) != r or p.shape[ax] != want or any(
                p.shape[k] != shape[k] for k in range(r) if k != ax):
            raise ShapeError(f"blocked scale or zero point of shape {list(p.shape)} does not "
                             f"match input {list(shape)} (block_size {block} on axis {axis})")
        dims = list(p.shape)
        e = b.reshape(p, [*dims[:ax + 1], 1, *dims[ax + 1:]])
        e = b.call("broadcast_to", e, shape=[*dims[:ax + 1], block, *dims[ax + 1:]])
        e = b.reshape(e, [*dims[:ax], want * block, *dims[ax + 1:]])
        if want * block != shape[ax]:
            e = b.call("slice", e, starts=[0], ends=[shape[ax]], axes=[ax])
        return e
    if rank(p) != 1 or p.shape[0] != shape[ax]:
        raise ShapeError(f"per-axis scale or zero point of shape {list(p.shape)} does not "
                         f"match axis {axis} of input {list(shape)}")
    return b.reshape(p, [1] * ax + [p.shape[0]] + [1] * (r - ax - 1))


def _axis(axis: int, r: int, block: int = 0) -> int:
    ax = norm_axis(axis, r)
    if not 0 <= ax < r:
        raise ShapeError(f"axis {axis} is out of range for a rank-{r} input")
    if block < 0:
        raise ShapeError(f"block_size must be positive, got {block}")
    return ax


def _params(scale, zp, shape, axis: int, block: int = 0):
    """(scales, zero points) as attribute lists when both are constant, one per tensor or
    one per index of `axis` with positive finite scales; None otherwise."""
    if block or not is_const(scale) or (zp is not None and not is_const(zp)):
        return None
    s = [float(v) for v in scale.reshape(-1)]
    z = [0] if zp is None else [int(v) for v in zp.reshape(-1)]
    if rank(scale) > 1 or (zp is not None and rank(zp) > 1) or len(z) not in (1, len(s)):
        return None
    if not all(np.isfinite(v) and v > 0 for v in s):
        return None
    if len(s) > 1 and shape[_axis(axis, len(shape))] != len(s):
        raise ShapeError(f"per-axis scale has {len(s)} values but axis {axis} of input "
                         f"{list(shape)} has {shape[_axis(axis, len(shape))]}")
    return s, z


# ---- QuantizeLinear / DequantizeLinear ---------------------------------------------------------
@handler
def QuantizeLinear(b: Builder, n: OnnxNode, x, scale, zp=None):
    """saturate(round_half_even(x / scale) + zero_point). `saturate` only changes float8
    results, which Lamina does not produce; integer results always saturate."""
    t = _output_type(b, n, zp, 2)
    axis, block = n.get("axis", 1), n.get("block_size", 0)
    if dtype(x).kind != "f":
        x = _cast(b, x, "f32")
    if t in narrow.FORMATS and narrow.FORMATS[t].kind == "float":
        return _to_float_format(b, n, x, scale, zp, t, axis, block)
    _integer(t, "quantizing to a tensor")
    params = _params(scale, zp, x.shape, axis, block)
    if params is not None and t in NATIVE and dtype(x) == np.float32:
        return b.call("quantize", x, scale=params[0], zero_point=params[1], axis=axis,
                      dtype=NATIVE[t])
    v = b.call("div", x, _shaped(b, _cast(b, scale, "f32"), x.shape, axis, block))
    v = _rint(b, v)
    if zp is not None:
        v = b.call("add", v, _shaped(b, _cast(b, zp, "f64"), x.shape, axis, block))
    return _saturate(b, v, t)


def _to_float_format(b: Builder, n: OnnxNode, x, scale, zp, t: str, axis: int, block: int):
    """Quantizing to float8/float4: x / scale rounded to the format (ir/ops/narrow.py), which
    travels in f32. float8 zero points must be 0; float4's is added before rounding (onnx's
    reference)."""
    v = b.call("div", x, _shaped(b, _cast(b, scale, "f32"), x.shape, axis, block))
    if zp is not None and t.startswith("float4"):
        v = b.call("add", v, _shaped(b, _cast(b, zp, "f32"), x.shape, axis, block))
    elif zp is not None and is_const(zp) and np.any(zp):
        raise ShapeError(f"a {t} zero point must be 0, got {zp.reshape(-1).tolist()}")
    return b.call("round_to_format", v, format=t, saturate=bool(n.get("saturate", 1)))


@handler
def DequantizeLinear(b: Builder, n: OnnxNode, x, scale, zp=None):
    """float32(x - zero_point) * scale. An int8/uint8/int32 constant (a weight, a bias) is
    not folded: it stays an integer weight behind a `dequantize` node, for fold_quantized."""
    t = _quantized_type(b, n, x, 0, zp, 2)
    axis, block = n.get("axis", 1), n.get("block_size", 0)
    params = _params(scale, zp, x.shape, axis, block)
    if params is not None and t in (*NATIVE, "int16", "uint16", "int32") \
            and dtype(x).kind in "iu":
        q = _narrow(b, x, t) if t in NATIVE else _cast_int(b, x)
        attrs = {"scale": params[0], "zero_point": params[1], "axis": axis}
        if is_const(q) and q.size > 1:  # keep the integer weight visible to the passes
            b.name_constant(q, n.inputs[0])
            node = b.graph.create_node("dequantize", [b.value(q)], attrs, name=b.base)
            return node.outputs[0]
        return b.call("dequantize", q, **attrs)
    if t not in INT_RANGES and dtype(x).kind != "f":
        raise Unsupported(f"dequantizing a tensor of type {t}")
    if zp is not None and t not in INT_RANGES and is_const(zp) and np.any(zp):
        raise ShapeError(f"a {t} tensor takes no zero point but 0")
    v = _cast(b, x, "f32")
    if zp is not None and t in INT_RANGES:
        v = b.call("sub", v, _shaped(b, _cast(b, zp, "f32"), x.shape, axis, block))
    return b.call("mul", v, _shaped(b, _cast(b, scale, "f32"), x.shape, axis, block))


def _cast_int(b: Builder, x):
    """A 16- or 32-bit integer operand as the i32 `dequantize` takes."""
    if is_const(x):
        return np.ascontiguousarray(x.astype(np.int32))
    return x if x.dtype == "i32" else b.call("cast", x, dtype="i32")


@handler
def DynamicQuantizeLinear(b: Builder, n: OnnxNode, x):
    """uint8 quantization with the scale and zero point of x's range widened to hold 0:
    scale = (max(0, max x) - min(0, min x)) / 255 (1/255 for an all-zero x), zero point
    = round(clip(-min / scale, 0, 255)); float32 arithmetic, as onnx's reference."""
    x = _cast(b, x, "f32")
    axes = list(range(rank(x)))
    zero = np.asarray(0, np.float32)
    hi = b.call("maximum", b.call("reduce_max", x, axes=axes), zero)
    lo = b.call("minimum", b.call("reduce_min", x, axes=axes), zero)
    span = b.call("sub", hi, lo)
    span = b.call("where", b.call("equal", hi, lo), np.asarray(1, np.float32), span)
    scale = b.call("div", span, np.asarray(255, np.float32))
    z = b.call("clip", b.call("sub", zero, b.call("div", lo, scale)), min=0.0, max=255.0)
    z = _rint(b, z)
    y = b.call("add", _rint(b, b.call("div", x, scale)), z)
    return _saturate(b, y, "uint8"), scale, _saturate(b, z, "uint8")


# ---- integer matrix products and convolutions -------------------------------------------------
def _minus_zero(b: Builder, x, zp, shape, axis: int):
    """x - zero_point in float64: exact integers, whatever the sums built on them."""
    v = _cast(b, x, "f64")
    if zp is None:
        return v
    return b.call("sub", v, _shaped(b, _cast(b, zp, "f64"), shape, axis))


def _requantize(b: Builder, acc, scale, y_zp, t: str):
    """saturate(round(acc * scale + y_zero_point)) to type `t`: acc exact in float64, the
    combined scale computed in float32 first (as onnx's reference does)."""
    v = b.call("mul", acc, _cast(b, scale, "f64"))
    if y_zp is not None:
        v = b.call("add", v, _cast(b, b.reshape(y_zp, ()), "f64"))
    return _saturate(b, _rint(b, v), t)


def _scalar(b: Builder, p):
    if math.prod(p.shape) != 1:
        raise Unsupported(f"a scale or zero point of shape {list(p.shape)} where one per "
                          "tensor is expected")
    return b.reshape(p, ())


def _combined(b: Builder, x_scale, w_scale, y_scale):
    """x_scale * w_scale / y_scale in float32 (w_scale already shaped to the result)."""
    s = b.call("mul", _cast(b, _scalar(b, x_scale), "f32"), _cast(b, w_scale, "f32"))
    return b.call("div", s, _cast(b, _scalar(b, y_scale), "f32"))


def _int8_weight(b: Builder, n: OnnxNode, w, wk: int, w_zp, zk: int):
    """w as an i8 array when it is a constant int8 tensor with zero points 0 (or none)."""
    if not is_const(w) or _quantized_type(b, n, w, wk, w_zp, zk) != "int8":
        return None
    if w_zp is not None and (not is_const(w_zp) or np.any(w_zp)):
        return None
    return w.astype(np.int8)


def _symmetric_weight(b: Builder, n: OnnxNode, w, wk: int, w_zp, w_scale, out_axis: int):
    """The i8 weight and its per-channel scales when w is a constant int8 tensor with zero
    points 0 and constant positive scales (one, or one per output channel along
    `out_axis`); None otherwise."""
    wq = _int8_weight(b, n, w, wk, w_zp, wk + 2)
    params = None if wq is None else _params(w_scale, None, w.shape, out_axis)
    return None if params is None else (wq, params[0])


def _exact_in_float32(k: int) -> bool:
    """Whether a sum of k products (x - zero point) * w, |x - zp| <= 255 and |w| <= 128, is
    always below 2**24, so the f32 result of qlinear/qconv2d with scales 1 is the int32 sum
    exactly."""
    return k * 255 * 128 < 2**24


def _unit_scales(b: Builder, n: OnnxNode, x, x_zp):
    """qlinear/qconv2d's attributes for the bare int32 sum as f32 (scales 1), with x in its
    own 8-bit type; None unless x is a run-time u8/i8 with a constant zero point."""
    t = _quantized_type(b, n, x, 0, x_zp, 2)
    if is_const(x) or t not in NATIVE or (x_zp is not None and (
            not is_const(x_zp) or x_zp.size != 1)):
        return None
    zp = 0 if x_zp is None else int(x_zp.reshape(-1)[0])
    return _narrow(b, x, t), {"x_scale": 1.0, "x_zero_point": zp, "w_scale": [1.0],
                              "dtype": "f32"}


def _activation_params(*ps):
    """Constant one-per-tensor scales and zero points as Python numbers, or None."""
    if not all(p is not None and is_const(p) and p.size == 1 for p in ps):
        return None
    return [p.reshape(-1)[0].item() for p in ps]


@handler
def QLinearMatMul(b: Builder, n: OnnxNode, a, a_scale, a_zp, w, w_scale, w_zp, y_scale,
                  y_zp=None):
    """saturate(round((a - a_zp) @ (w - w_zp) * a_scale * w_scale / y_scale + y_zp)); a
    constant symmetric int8 [K, N] weight makes it one `qlinear`."""
    ta = _quantized_type(b, n, a, 0, a_zp, 2)
    t = _declared(b, n, 7, y_zp) if y_zp is not None else ta
    _integer(t, "the result")
    sym = _symmetric_weight(b, n, w, 3, w_zp, w_scale, 1) if rank(w) == 2 else None
    act = _activation_params(a_scale, a_zp, y_scale, y_zp)
    if sym is not None and act is not None and ta in NATIVE and t in NATIVE and \
            not is_const(a) and act[0] > 0 and act[2] > 0:
        wq, ws = sym
        return b.call("qlinear", _narrow(b, a, ta), np.ascontiguousarray(wq.T),
                      x_scale=act[0], x_zero_point=int(act[1]), w_scale=ws,
                      y_scale=act[2], y_zero_point=int(act[3]), dtype=NATIVE[t])
    av = _minus_zero(b, a, a_zp, a.shape, -2)  # a per row, w per column
    wv = _minus_zero(b, w, w_zp, w.shape, -1)
    acc = b.call("matmul", av, wv)
    scale = _combined(b, a_scale, _shaped(b, w_scale, w.shape, -1), y_scale)
    return _requantize(b, acc, scale, y_zp, t)


@handler
def MatMulInteger(b: Builder, n: OnnxNode, a, w, a_zp=None, w_zp=None):
    """(a - a_zero_point) @ (w - w_zero_point) as int32, exact: `qlinear` when w is a
    constant int8 [K, N] weight (zero points 0) and its f32 sum is exact, float64 else."""
    wq = _int8_weight(b, n, w, 1, w_zp, 3) if rank(w) == 2 else None
    unit = _unit_scales(b, n, a, a_zp) if wq is not None else None
    if unit is not None and _exact_in_float32(w.shape[0]):
        acc = b.call("qlinear", unit[0], np.ascontiguousarray(wq.T), **unit[1])
        return b.call("cast", acc, dtype="i32")
    acc = b.call("matmul", _minus_zero(b, a, a_zp, a.shape, -2),
                 _minus_zero(b, w, w_zp, w.shape, -1))
    return b.call("cast", acc, dtype="i32")


def _conv_acc(b: Builder, n: OnnxNode, x, x_zp, w, w_zp, bias=None):
    """conv(x - x_zero_point, w - w_zero_point) [+ bias] in float64 (exact integers);
    padding holds x's zero point (a real 0), as ONNX defines it."""
    if x_zp is not None:
        x_zp = _scalar(b, x_zp)
    xv = _minus_zero(b, x, x_zp, x.shape, 1)
    wv = _minus_zero(b, w, w_zp, w.shape, 0)
    return Conv(b, n, xv, wv, None if bias is None else _cast(b, bias, "f64"))


@handler
def ConvInteger(b: Builder, n: OnnxNode, x, w, x_zp=None, w_zp=None):
    """conv(x - x_zero_point, w - w_zero_point) as int32, exact: `qconv2d` for a 2-D
    convolution with a constant int8 weight (zero points 0) whose f32 sum is exact."""
    wq = _int8_weight(b, n, w, 1, w_zp, 3) if rank(w) == 4 and rank(x) == 4 else None
    unit = _unit_scales(b, n, x, x_zp) if wq is not None else None
    if unit is not None and _exact_in_float32(math.prod(w.shape[1:])):
        acc = b.call("qconv2d", unit[0], wq, **_window(n, x, w), **unit[1])
    else:
        acc = _conv_acc(b, n, x, x_zp, w, w_zp)
    return b.call("cast", acc, dtype="i32")


def _window(n: OnnxNode, x, w) -> dict:
    """qconv2d's window attributes from a 2-D convolution node's."""
    strides, dil = n.get("strides", [1, 1]), n.get("dilations", [1, 1])
    begins, ends = window_pads(n, x.shape[2:], list(w.shape[2:]), strides, dil)
    return {"stride": strides, "dilation": dil, "pad": [*begins, *ends],
            "groups": n.get("group", 1)}


@handler
def QLinearConv(b: Builder, n: OnnxNode, x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp,
                bias=None):
    """saturate(round((conv(x - x_zp, w - w_zp) + bias) * x_scale * w_scale / y_scale
    + y_zp)), w_scale per tensor or per output channel; a 2-D convolution with a constant
    symmetric int8 weight and constant int32 bias makes it one `qconv2d`."""
    tx = _quantized_type(b, n, x, 0, x_zp, 2)
    t = _declared(b, n, 7, y_zp)
    _integer(t, "the result")
    fast = _qconv2d(b, n, x, tx, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias, t)
    if fast is not None:
        return fast
    acc = _conv_acc(b, n, x, x_zp, w, w_zp, bias)
    ws = _shaped(b, w_scale, (1, w.shape[0], *[1] * (rank(w) - 2)), 1)
    return _requantize(b, acc, _combined(b, x_scale, ws, y_scale), y_zp, t)


def _qconv2d(b, n, x, tx, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias, t):
    sym = _symmetric_weight(b, n, w, 3, w_zp, w_scale, 0)
    act = _activation_params(x_scale, x_zp, y_scale, y_zp)
    if sym is None or act is None or is_const(x) or rank(x) != 4 or tx not in NATIVE \
            or t not in NATIVE or act[0] <= 0 or act[2] <= 0:
        return None
    if bias is not None and not (is_const(bias) and dtype(bias).kind in "iu"):
        return None
    wq, ws = sym
    extra = [] if bias is None else [np.ascontiguousarray(bias.astype(np.int32))]
    return b.call("qconv2d", _narrow(b, x, tx), wq, *extra, **_window(n, x, w),
                  x_scale=act[0], x_zero_point=int(act[1]), w_scale=ws, y_scale=act[2],
                  y_zero_point=int(act[3]), dtype=NATIVE[t])
