"""ONNX writers of the quantization operators (ir/ops/quant.py), in the QDQ form
onnxruntime runs: QuantizeLinear / DequantizeLinear with per-tensor or per-axis parameters,
and qlinear / qconv2d as the integer sum and its requantize step written out
(MatMulInteger or ConvInteger, Add, Cast, Mul, [Relu], [QuantizeLinear with scale 1]) --
the same numbers, bit for bit."""

from __future__ import annotations

import numpy as np

import ir
from ir.ops.quant import multipliers

from .emitter import Exporter, exporter

_NP = {"u8": np.uint8, "i8": np.int8, "i32": np.int32}


def _params(ex: Exporter, node: ir.Node, dtype: str, out: str) -> list[str]:
    """Scale and zero point initialisers: scalars per tensor, 1-D per axis (a single zero
    point repeated, since ONNX wants one per scale)."""
    scale, zp = node.attrs["scale"], node.attrs["zero_point"]
    shape = () if len(scale) == 1 else (len(scale),)
    zps = np.broadcast_to(np.asarray(zp), (len(scale),)) if shape else np.asarray(zp[0])
    return [ex.const(np.asarray(scale, np.float32).reshape(shape), f"{out}.scale"),
            ex.const(np.asarray(zps, _NP[dtype]).reshape(shape), f"{out}.zero_point")]


@exporter("quantize", handles=("scale", "zero_point", "axis", "dtype"))
def _quantize(ex: Exporter, node: ir.Node) -> None:
    out = ex.out(node)
    ex.emit("QuantizeLinear", [ex.name(node.inputs[0]), *_params(ex, node, node.attrs["dtype"],
                                                                  out)],
            [out], axis=node.attrs["axis"])


@exporter("dequantize", handles=("scale", "zero_point", "axis"))
def _dequantize(ex: Exporter, node: ir.Node) -> None:
    out, q = ex.out(node), node.inputs[0]
    ex.emit("DequantizeLinear", [ex.name(q), *_params(ex, node, q.type.dtype, out)], [out],
            axis=node.attrs["axis"])


@exporter("qlinear", handles=("x_scale", "x_zero_point", "w_scale", "y_scale",
                              "y_zero_point", "dtype", "relu"))
def _qlinear(ex: Exporter, node: ir.Node) -> None:
    a, out = node.attrs, ex.out(node)
    x, w = node.inputs[:2]
    wt = ex.emit("Transpose", [ex.name(w)], hint=f"{out}.wT", perm=[1, 0])
    xzp = ex.const(np.asarray(a["x_zero_point"], _NP[x.type.dtype]), f"{out}.x_zero_point")
    acc = ex.emit("MatMulInteger", [ex.name(x), wt, xzp], hint=f"{out}.acc")
    if len(node.inputs) == 3:
        acc = ex.emit("Add", [acc, ex.name(node.inputs[2])], hint=f"{out}.biased")
    _epilogue(ex, node, acc, (w.type.shape[0],))


def _epilogue(ex: Exporter, node: ir.Node, acc: str, shape) -> None:
    """The requantize step on the int32 sums `acc`: multipliers shaped to broadcast as
    `shape` (per output channel)."""
    a, out = node.attrs, ex.out(node)
    f = ex.emit("Cast", [acc], hint=f"{out}.float", to=1)
    mult = multipliers(shape[0], a["x_scale"], a["w_scale"], a["y_scale"], a["dtype"])
    last = a["dtype"] == "f32" and not a["relu"]
    y = ex.emit("Mul", [f, ex.const(mult.reshape(shape), f"{out}.multiplier")],
                [out] if last else None, hint=f"{out}.scaled")
    if a["relu"]:
        y = ex.emit("Relu", [y], [out] if a["dtype"] == "f32" else None, hint=f"{out}.relu")
    if a["dtype"] != "f32":
        ex.emit("QuantizeLinear", [y, ex.const(np.float32(1.0), f"{out}.one"),
                                   ex.const(np.asarray(a["y_zero_point"], _NP[a["dtype"]]),
                                            f"{out}.y_zero_point")], [out])


@exporter("qconv2d", handles=("stride", "pad", "dilation", "groups", "x_scale",
                              "x_zero_point", "w_scale", "y_scale", "y_zero_point", "dtype",
                              "relu"))
def _qconv2d(ex: Exporter, node: ir.Node) -> None:
    a, out = node.attrs, ex.out(node)
    x, w = node.inputs[:2]
    o = w.type.shape[0]
    xzp = ex.const(np.asarray(a["x_zero_point"], _NP[x.type.dtype]), f"{out}.x_zero_point")
    acc = ex.emit("ConvInteger", [ex.name(x), ex.name(w), xzp], hint=f"{out}.acc",
                  strides=list(a["stride"]), pads=list(a["pad"]),
                  dilations=list(a["dilation"]), group=a["groups"])
    if len(node.inputs) == 3:
        shape = ex.ints((o, 1, 1), f"{out}.bias_shape")
        bias = ex.emit("Reshape", [ex.name(node.inputs[2]), shape], hint=f"{out}.bias")
        acc = ex.emit("Add", [acc, bias], hint=f"{out}.biased")
    _epilogue(ex, node, acc, (o, 1, 1))


def _zp(ex: Exporter, v: ir.Value, zp: int, hint: str) -> str:
    return ex.const(np.asarray(zp, _NP[v.type.dtype]), hint)


@exporter("qmatmul", handles=("a_scale", "a_zero_point", "b_scale", "b_zero_point", "y_scale",
                              "y_zero_point", "dtype"))
def _qmatmul(ex: Exporter, node: ir.Node) -> None:
    """MatMulInteger, Cast, Mul by the one multiplier, [QuantizeLinear with scale 1]."""
    a_, out = node.attrs, ex.out(node)
    a, b = node.inputs
    acc = ex.emit("MatMulInteger", [ex.name(a), ex.name(b),
                                    _zp(ex, a, a_["a_zero_point"], f"{out}.a_zero_point"),
                                    _zp(ex, b, a_["b_zero_point"], f"{out}.b_zero_point")],
                  hint=f"{out}.acc")
    f = ex.emit("Cast", [acc], hint=f"{out}.float", to=1)
    mult = multipliers(1, a_["a_scale"], (a_["b_scale"],), a_["y_scale"], a_["dtype"])
    last = a_["dtype"] == "f32"
    y = ex.emit("Mul", [f, ex.const(mult.reshape(()), f"{out}.multiplier")],
                [out] if last else None, hint=f"{out}.scaled")
    if not last:
        ex.emit("QuantizeLinear", [y, ex.const(np.float32(1.0), f"{out}.one"),
                                   ex.const(np.asarray(a_["y_zero_point"], _NP[a_["dtype"]]),
                                            f"{out}.y_zero_point")], [out])


@exporter("qadd", handles=("a_scale", "a_zero_point", "b_scale", "b_zero_point", "y_scale",
                           "y_zero_point", "dtype", "relu"))
def _qadd(ex: Exporter, node: ir.Node) -> None:
    """DequantizeLinear both, Add, [Relu], QuantizeLinear: qadd's definition. (Relu before
    quantizing equals the max with the zero point after: quantizing is monotone and maps 0
    to the zero point.)"""
    a_, out = node.attrs, ex.out(node)
    floats = []
    for v, p in zip(node.inputs, "ab"):
        floats.append(ex.emit("DequantizeLinear", [
            ex.name(v), ex.const(np.float32(a_[f"{p}_scale"]), f"{out}.{p}_scale"),
            _zp(ex, v, a_[f"{p}_zero_point"], f"{out}.{p}_zero_point")], hint=f"{out}.{p}"))
    y = ex.emit("Add", floats, hint=f"{out}.sum")
    if a_["relu"]:
        y = ex.emit("Relu", [y], hint=f"{out}.relu")
    ex.emit("QuantizeLinear", [y, ex.const(np.float32(a_["y_scale"]), f"{out}.y_scale"),
                               ex.const(np.asarray(a_["y_zero_point"], _NP[a_["dtype"]]),
                                        f"{out}.y_zero_point")], [out])


@exporter("qmax_pool2d", handles=("kernel", "stride", "pad", "dilation", "ceil_mode"))
def _qmax_pool2d(ex: Exporter, node: ir.Node) -> None:
    """MaxPool, which takes uint8/int8 since opset 12: the same bytes."""
    a = node.attrs
    ex.emit("MaxPool", ex.ins(node), [ex.out(node)], kernel_shape=list(a["kernel"]),
            strides=list(a["stride"]), pads=list(a["pad"]), dilations=list(a["dilation"]),
            ceil_mode=int(a["ceil_mode"]))
