"""Cases for the fused operators (see cases.py): the ONNX peer spells out the unfused chain."""

from __future__ import annotations

import numpy as np

from ir import Graph, TensorType
from ir.ops import get

from .cases import N, case, f32, randn

# activation -> the ONNX nodes computing it from "z" into "y"
ACT = {
    "none": lambda alpha: [N("Identity", "z")],
    "relu": lambda alpha: [N("Relu", "z")],
    "relu6": lambda alpha: [N("Clip", "z", "zero", "six")],
    "leaky_relu": lambda alpha: [N("LeakyRelu", "z", alpha=alpha)],
    "sigmoid": lambda alpha: [N("Sigmoid", "z")],
    "tanh": lambda alpha: [N("Tanh", "z")],
    "gelu": lambda alpha: [N("Gelu", "z")],
}
_CLIP = {"zero": f32(0), "six": f32(6)}


def _epilogue(first: list, act: str, alpha: float, residual: bool) -> list:
    """`first` computes "t"; add the residual (if any) into "z", then the activation."""
    add = [N("Add", "t", "r", out="z")] if residual else [N("Identity", "t", out="z")]
    return first + add + ACT[act](alpha)


# ---- fused_conv2d ------------------------------------------------------------------------
for _act, _residual, _attrs in [
    ("none", False, {}), ("relu", True, {"pad": (1, 1, 1, 1)}),
    ("relu6", False, {"stride": (2, 2), "pad": (1, 0, 1, 0)}),
    ("leaky_relu", True, {"alpha": 0.2, "pad": (1, 1, 1, 1)}),
    ("sigmoid", False, {"groups": 2}), ("tanh", True, {"dilation": (2, 2), "pad": (2, 2, 2, 2)}),
    ("gelu", False, {}),
]:
    _x, _w, _b = randn(2, 4, 7, 7), randn(6, 2 if "groups" in _attrs else 4, 3, 3), randn(6)
    _args = {"x": _x, "w": _w, "b": _b}
    _conv = {k: _attrs[k] for k in ("stride", "pad", "dilation", "groups") if k in _attrs}
    _onnx_conv = {"strides": list(_conv.get("stride", (1, 1))),
                  "pads": list(_conv.get("pad", (0, 0, 0, 0))),
                  "dilations": list(_conv.get("dilation", (1, 1))), "group": _conv.get("groups", 1)}
    if _residual:  # shaped like the output (a wrong shape would make onnxruntime refuse)
        _out = get("conv2d").check_attrs(_conv)
        _args["r"] = randn(*get("conv2d").infer(*map(TensorType.of, (_x, _w, _b)), **_out).shape)
    case("fused_conv2d", f"{_act}{'_residual' if _residual else ''}", _args,
         _epilogue([N("Conv", "x", "w", "b", out="t", **_onnx_conv)], _act,
                   _attrs.get("alpha", 0.01), _residual),
         attrs={**_attrs, "act": _act}, weights=("w", "b"),
         consts=_CLIP if _act == "relu6" else {}, rtol=1e-5, atol=1e-5)

# ---- fused_linear ------------------------------------------------------------------------
for _act, _residual, _xs in [("none", False, (4, 5)), ("relu", True, (4, 5)),
                             ("gelu", True, (2, 3, 5)), ("leaky_relu", False, (4, 5)),
                             ("relu6", True, (5,))]:
    _args = {"x": randn(*_xs, scale=2), "w": randn(3, 5), "b": randn(3)}
    if _residual:
        _args["r"] = randn(*_xs[:-1], 3)
    _first = [N("Transpose", "w", out="wt"), N("MatMul", "x", "wt", out="xw"),
              N("Add", "xw", "b", out="t")]
    case("fused_linear", f"{_act}{'_residual' if _residual else ''}", _args,
         _epilogue(_first, _act, 0.01, _residual), attrs={"act": _act}, weights=("w", "b"),
         consts=_CLIP if _act == "relu6" else {}, rtol=1e-5, atol=1e-5)


# ---- fused_elementwise -------------------------------------------------------------------
def _body(types, build) -> Graph:
    g = Graph("body")
    params = [g.add_input(f"p{i}", t) for i, t in enumerate(types)]
    g.outputs = [build(g, *params)]
    return g


_A, _B, _C = randn(2, 3, 4), randn(4), randn(2, 1, 4)
case("fused_elementwise", "add_relu_mul", {"a": _A, "b": _B, "c": _C},
     [N("Add", "a", "b", out="s"), N("Relu", "s", out="r"), N("Mul", "r", "c")],
     attrs={"body": _body([TensorType.of(a) for a in (_A, _B, _C)], lambda g, a, b, c: g.call(
         "mul", g.call("relu", g.call("add", a, b)), c))})
case("fused_elementwise", "single_input_chain", {"a": _A},
     [N("Sigmoid", "a", out="s"), N("Mul", "a", "s", out="m"), N("Clip", "m", "lo", "hi")],
     attrs={"body": _body([TensorType.of(_A)], lambda g, a: g.call(
         "clip", g.call("mul", a, g.call("sigmoid", a)), min=-0.25, max=0.5))},
     consts={"lo": f32(-0.25), "hi": f32(0.5)})
_I, _J = np.arange(-3, 3, dtype=np.int32).reshape(2, 3), np.array([2, -1, 0], np.int32)
case("fused_elementwise", "i32_with_constant", {"i": _I, "j": _J},
     [N("Sub", "i", "j", out="d"), N("Abs", "d", out="a"), N("Add", "a", "three")],
     attrs={"body": _body([TensorType.of(_I), TensorType.of(_J)], lambda g, i, j: g.call(
         "add", g.call("abs", g.call("sub", i, j)),
         g.call("constant", value=3, shape=(), dtype="i32")))},
     consts={"three": np.array(3, np.int32)})
