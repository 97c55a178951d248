"""ONNX writers of the trigonometric, hyperbolic and rounding operators and of the integer
bit operators (see export_ops.py for the rest).

ONNX's BitShift (before opset 22) takes unsigned types only and leaves counts past the
width undefined, so `bit_shift` is written through the unsigned type of the same size with
the count clamped, and its arithmetic right shift as ~(~x >> s) where x is negative.
ONNX's BitCast exists from opset 26, beyond what the exporter writes: `bitcast` is refused.
"""

from __future__ import annotations

import numpy as np

import ir

from .emitter import Exporter, OnnxExportError, exporter, onnx_dtype

_UNARY = {op: op.capitalize() for op in ("sin", "cos", "tan", "asin", "acos", "atan", "sinh",
                                          "cosh", "asinh", "acosh", "atanh", "round")}
_BITWISE = {"bitwise_and": "BitwiseAnd", "bitwise_or": "BitwiseOr",
            "bitwise_xor": "BitwiseXor", "bitwise_not": "BitwiseNot"}


@exporter(*_UNARY, handles=())
def _unary(ex: Exporter, node: ir.Node) -> None:
    ex.emit(_UNARY[node.op], ex.ins(node), [ex.out(node)])


def _needs_18(ex: Exporter, node: ir.Node, what: str) -> None:
    if ex.opset < 18:
        raise OnnxExportError(f"%{node.name} ({node.op}): ONNX has {what} from opset 18")


@exporter(*_BITWISE, handles=())
def _bitwise(ex: Exporter, node: ir.Node) -> None:
    _needs_18(ex, node, _BITWISE[node.op])
    ex.emit(_BITWISE[node.op], ex.ins(node), [ex.out(node)])


@exporter("bit_shift", handles=("direction",))
def _bit_shift(ex: Exporter, node: ir.Node) -> None:
    _needs_18(ex, node, "BitwiseNot")
    a, s = ex.ins(node)
    x, out = node.inputs[0], ex.out(node)
    signed = onnx_dtype(x.type.np_dtype)
    unsigned = onnx_dtype(np.dtype(f"u{x.type.np_dtype.itemsize}"))
    top = ex.scalar(8 * x.type.np_dtype.itemsize - 1, node.inputs[1], f"{out}.top")
    zero = ex.scalar(0, node.inputs[1], f"{out}.zero")
    past = ex.emit("Or", [ex.emit("Less", [s, zero], hint=f"{out}.neg_count"),
                          ex.emit("Less", [top, s], hint=f"{out}.big")], hint=f"{out}.past")
    count = ex.emit("Cast", [ex.emit("Where", [past, top, s], hint=f"{out}.clamped")],
                    hint=f"{out}.ucount", to=unsigned)

    def shift(v, direction):
        u = ex.emit("Cast", [v], hint=f"{out}.u", to=unsigned)
        r = ex.emit("BitShift", [u, count], hint=f"{out}.shifted", direction=direction)
        return ex.emit("Cast", [r], hint=f"{out}.s", to=signed)

    if node.attrs["direction"] == "left":
        ex.emit("Where", [past, ex.scalar(0, x, f"{out}.zeros"), shift(a, "LEFT")], [out])
        return
    negative = ex.emit("Less", [a, ex.scalar(0, x, f"{out}.x0")], hint=f"{out}.negative")
    flipped = ex.emit("BitwiseNot", [shift(ex.emit("BitwiseNot", [a], hint=f"{out}.not"),
                                           "RIGHT")], hint=f"{out}.flipped")
    ex.emit("Where", [negative, flipped, shift(a, "RIGHT")], [out])


@exporter("bitcast", handles=("dtype",))
def _bitcast(ex: Exporter, node: ir.Node) -> None:
    if ex.opset < 26:
        raise OnnxExportError(f"%{node.name} (bitcast): ONNX has BitCast from opset 26; "
                              f"this export writes opset {ex.opset}")
    ex.emit("BitCast", ex.ins(node), [ex.out(node)], to=onnx_dtype(node.output.type.np_dtype))
