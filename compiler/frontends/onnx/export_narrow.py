"""The ONNX writer of `round_to_format` (ir/ops/narrow.py; see export_ops.py for the rest).

Float formats: Cast to the format and back, which is the operator's definition; ONNX has
the float8 types from opset 19, float4 from 23 and float8e8m0 from 24, so the last two are
refused (the exporter writes up to 21). Integer formats: written with plain operators, as
ONNX's Cast from a float to int4 leaves values out of range undefined while the operator
gives 0 there: a float x keeps its truncation where lo - 1 < x < hi + 1 (Cast to an
integer truncates), else 0; an integer wraps with Mod.
"""

from __future__ import annotations

import numpy as np

import ir
from ir.ops.narrow import ROUNDINGS

from .emitter import Exporter, OnnxExportError, exporter, onnx_dtype

SINCE = {"float4_e2m1fn": 23, "float8_e8m0fnu": 24, "float16": 1, "bfloat16": 13}  # float8: 19
ONNX_NAMES = {"float8_e4m3fn": "FLOAT8E4M3FN", "float8_e4m3fnuz": "FLOAT8E4M3FNUZ",
              "float8_e5m2": "FLOAT8E5M2", "float8_e5m2fnuz": "FLOAT8E5M2FNUZ",
              "float4_e2m1fn": "FLOAT4E2M1", "float8_e8m0fnu": "FLOAT8E8M0",
              "float16": "FLOAT16", "bfloat16": "BFLOAT16"}


@exporter("round_to_format", handles=("format", "saturate", "round_mode"))
def _round_to_format(ex: Exporter, node: ir.Node) -> None:
    f = ROUNDINGS[node.attrs["format"]]
    x, out = node.inputs[0], ex.out(node)
    (xs,) = ex.ins(node)
    if f.kind == "int":
        _integer(ex, f, x, xs, out)
        return
    since = SINCE.get(f.name, 19)
    if ex.opset < since:
        raise OnnxExportError(f"%{node.name} (round_to_format): ONNX has {f.name} from opset "
                              f"{since}")
    import onnx

    to = getattr(onnx.TensorProto, ONNX_NAMES[f.name])
    saturate = {"saturate": int(node.attrs["saturate"])} if f.bits < 16 else {}  # not IEEE
    narrow = ex.emit("Cast", [xs], hint=f"{out}.narrow", to=to, **saturate)
    ex.emit("Cast", [narrow], [out], to=onnx_dtype(x.type.np_dtype))


def _integer(ex: Exporter, f, x: ir.Value, xs: str, out: str) -> None:
    lo, hi = f.range
    if x.dtype in ("f32", "f64"):
        inside = ex.emit("And", [ex.emit("Greater", [xs, ex.scalar(lo - 1, x, f"{out}.lo")],
                                         hint=f"{out}.above"),
                                 ex.emit("Less", [xs, ex.scalar(hi + 1, x, f"{out}.hi")],
                                         hint=f"{out}.below")], hint=f"{out}.inside")
        whole = ex.emit("Cast", [xs], hint=f"{out}.int", to=onnx_dtype(np.dtype(np.int64)))
        whole = ex.emit("Cast", [whole], hint=f"{out}.trunc", to=onnx_dtype(x.type.np_dtype))
        ex.emit("Where", [inside, whole, ex.scalar(0, x, f"{out}.zero")], [out])
        return
    span = ex.scalar(1 << f.bits, x, f"{out}.span")
    if not f.signed:
        ex.emit("Mod", [xs, span], [out])  # (fmod=0: the divisor's sign, never negative)
        return
    half = ex.scalar(-lo, x, f"{out}.half")
    shifted = ex.emit("Mod", [ex.emit("Add", [xs, half], hint=f"{out}.shift"), span],
                      hint=f"{out}.mod")
    ex.emit("Sub", [shifted, half], [out])
