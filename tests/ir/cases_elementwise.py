"""Cases for elementwise operators, casts, constants, reductions and losses (see cases.py)."""

from __future__ import annotations

import math

import numpy as np
from onnx import helper

from .cases import N, case, f32, i64, randint, randn, uniform

# ---- unary ---------------------------------------------------------------------------------
X = uniform(-4, 4, 2, 3, 4)
WIDE = np.concatenate([uniform(-20, 20, 40), f32([0.0, -0.0, 30.0, -30.0, 88.0, -88.0])])
POSITIVE = uniform(0.01, 10, 3, 5)

case("relu", "f32", {"x": X}, N("Relu", "x"))
case("relu", "wide", {"x": WIDE}, N("Relu", "x"))
case("relu", "nan", {"x": f32([np.nan, -1.0, 2.0])}, N("Relu", "x"))
case("relu", "f64", {"x": X.astype(np.float64)}, N("Relu", "x"))
case("relu6", "f32", {"x": X * 3}, N("Clip", "x", "lo", "hi"),
     consts={"lo": f32(0), "hi": f32(6)})
case("leaky_relu", "default", {"x": X}, N("LeakyRelu", "x", alpha=0.01))
case("leaky_relu", "alpha0.2", {"x": X}, N("LeakyRelu", "x", alpha=0.2), attrs={"alpha": 0.2})
case("elu", "default", {"x": X}, N("Elu", "x", alpha=1.0))
case("elu", "alpha0.5", {"x": X}, N("Elu", "x", alpha=0.5), attrs={"alpha": 0.5})
case("sigmoid", "f32", {"x": X}, N("Sigmoid", "x"))
case("sigmoid", "wide", {"x": WIDE}, N("Sigmoid", "x"))
case("sigmoid", "f64", {"x": WIDE.astype(np.float64)}, N("Sigmoid", "x"), rtol=1e-12, atol=1e-15)
case("tanh", "f32", {"x": X}, N("Tanh", "x"))
case("tanh", "f64", {"x": X.astype(np.float64)}, N("Tanh", "x"), rtol=1e-12, atol=1e-15)
case("tanh", "wide", {"x": WIDE}, N("Tanh", "x"))
case("softplus", "f32", {"x": X}, N("Softplus", "x"))
case("softplus", "wide", {"x": WIDE}, N("Softplus", "x"))
case("gelu", "erf", {"x": X}, N("Gelu", "x", approximate="none"))
case("gelu", "tanh", {"x": X}, N("Gelu", "x", approximate="tanh"),
     attrs={"approximate": "tanh"})
case("erf", "f32", {"x": X}, N("Erf", "x"))
case("erf", "wide", {"x": WIDE}, N("Erf", "x"))
# (onnxruntime's CPU provider has no float64 Erf or Gelu, so f64 is not peer-checked here)
case("exp", "f32", {"x": X * 4}, N("Exp", "x"))
case("exp", "overflow", {"x": f32([-200, -100, 0, 88, 89, 100])}, N("Exp", "x"))
case("log", "f32", {"x": POSITIVE}, N("Log", "x"))
case("log", "special", {"x": f32([0, -1, 1, math.inf])}, N("Log", "x"))
case("sqrt", "f32", {"x": POSITIVE}, N("Sqrt", "x"))
case("sqrt", "special", {"x": f32([0, -1, 4, math.inf])}, N("Sqrt", "x"))
case("neg", "f32", {"x": X}, N("Neg", "x"))
case("neg", "i32", {"x": randint(-50, 50, 3, 4, dtype=np.int32)}, N("Neg", "x"))
case("neg", "i64", {"x": randint(-50, 50, 7)}, N("Neg", "x"))
case("abs", "f32", {"x": X}, N("Abs", "x"))
case("abs", "i32", {"x": randint(-50, 50, 3, 4, dtype=np.int32)}, N("Abs", "x"))
case("abs", "f64", {"x": X.astype(np.float64)}, N("Abs", "x"))
case("clip", "both", {"x": X}, N("Clip", "x", "lo", "hi"), attrs={"min": -1.5, "max": 2.0},
     consts={"lo": f32(-1.5), "hi": f32(2.0)})
case("clip", "min_only", {"x": X}, N("Clip", "x", "lo"), attrs={"min": 0.5},
     consts={"lo": f32(0.5)})
case("clip", "max_only", {"x": X}, N("Clip", "x", "", "hi"), attrs={"max": -0.5},
     consts={"hi": f32(-0.5)})
case("clip", "min_above_max", {"x": X}, N("Clip", "x", "lo", "hi"),
     attrs={"min": 1.0, "max": -1.0}, consts={"lo": f32(1.0), "hi": f32(-1.0)})
case("clip", "f64", {"x": X.astype(np.float64)}, N("Clip", "x", "lo", "hi"),
     attrs={"min": -1.0, "max": 1.0},
     consts={"lo": np.array(-1.0, np.float64), "hi": np.array(1.0, np.float64)})

# ---- binary --------------------------------------------------------------------------------
SHAPES = {
    "same": ((3, 4), (3, 4)),
    "row": ((2, 3, 4), (4,)),
    "both": ((2, 1, 4), (3, 1)),
    "scalar": ((), (2, 3)),
    "rank3": ((1, 3, 1), (2, 1, 5)),
}
BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow",
          "maximum": "Max", "minimum": "Min"}


def _operands(op, sa, sb, dtype=np.float32):
    if op == "pow":  # a positive base keeps every real exponent defined
        return uniform(0.1, 3, *sa, dtype=dtype), uniform(-2, 2, *sb, dtype=dtype)
    if op == "div":  # denominators away from zero
        b = uniform(0.5, 2, *sb, dtype=dtype) * np.where(randn(*sb) < 0, -1, 1).astype(dtype)
        return randn(*sa, dtype=dtype), b
    return randn(*sa, dtype=dtype), randn(*sb, dtype=dtype)


for _op, _onnx in BINARY.items():
    for _name, (_sa, _sb) in SHAPES.items():
        _a, _b = _operands(_op, _sa, _sb)
        case(_op, _name, {"a": _a, "b": _b}, N(_onnx, "a", "b"))
        if _name == "rank3":  # and reversed, so broadcasting is checked both ways round
            case(_op, "rank3_swapped", {"a": _b, "b": _a} if _op not in ("pow", "div")
                 else dict(zip("ab", _operands(_op, _sb, _sa))), N(_onnx, "a", "b"))
    _a, _b = _operands(_op, (2, 3), (3,), np.float64)
    case(_op, "f64", {"a": _a, "b": _b}, N(_onnx, "a", "b"), rtol=1e-12, atol=1e-14)
    if _op not in ("div", "pow"):  # float-only ops
        for _dt in (np.int32, np.int64):
            _a, _b = randint(-20, 20, 3, 4, dtype=_dt), randint(-20, 20, 4, dtype=_dt)
            case(_op, np.dtype(_dt).name, {"a": _a, "b": _b}, N(_onnx, "a", "b"))

case("pow", "negative_base", {"a": f32([-2, -1.5, -3, 0.5]), "b": f32([3, 2, -1, 0])},
     N("Pow", "a", "b"))
_NAN = f32([np.nan, 1.0, np.nan, -2.0])
case("maximum", "nan", {"a": _NAN, "b": f32([0.0, np.nan, 3.0, -3.0])}, N("Max", "a", "b"))
case("minimum", "nan", {"a": _NAN, "b": f32([0.0, np.nan, 3.0, -3.0])}, N("Min", "a", "b"))

# ---- cast and constant ---------------------------------------------------------------------
_CASTS = [
    ("f32_to_i32", uniform(-5, 5, 3, 4), np.int32),
    ("f32_to_i64", uniform(-5, 5, 6), np.int64),
    ("f32_to_f64", randn(2, 3), np.float64),
    ("f64_to_f32", randn(2, 3, dtype=np.float64), np.float32),
    ("i32_to_f32", randint(-100, 100, 5, dtype=np.int32), np.float32),
    ("i64_to_i32", randint(-100, 100, 5), np.int32),
    ("f32_to_bool", f32([0.0, -0.0, 1.5, -2.0, 0.25]), np.bool_),
    ("bool_to_f32", np.array([True, False, True]), np.float32),
    ("i32_to_bool", randint(-2, 3, 6, dtype=np.int32), np.bool_),
]
for _name, _x, _to in _CASTS:
    _ir_name = {np.int32: "i32", np.int64: "i64", np.float32: "f32", np.float64: "f64",
                np.bool_: "bool"}[_to]
    case("cast", _name, {"x": _x}, N("Cast", "x", to=helper.np_dtype_to_tensor_dtype(
        np.dtype(_to))), attrs={"dtype": _ir_name})

for _name, _shape, _value, _dtype in [("f32", (2, 3), 1.5, np.float32), ("i64", (4,), 7, np.int64),
                                      ("scalar", (), -2.25, np.float32),
                                      ("f64_inf", (2, 2), -math.inf, np.float64)]:
    _ir_name = {np.float32: "f32", np.int64: "i64", np.float64: "f64"}[_dtype]
    case("constant", _name, {},
         N("ConstantOfShape", "shape", value=helper.make_tensor(
             "v", helper.np_dtype_to_tensor_dtype(np.dtype(_dtype)), [1], [_value])),
         attrs={"value": _value, "shape": _shape, "dtype": _ir_name},
         consts={"shape": np.array(_shape, np.int64)})

# ---- reductions ----------------------------------------------------------------------------
REDUCE = {"reduce_sum": "ReduceSum", "reduce_mean": "ReduceMean", "reduce_max": "ReduceMax",
          "reduce_min": "ReduceMin"}
R = randn(2, 3, 4)
for _op, _onnx in REDUCE.items():
    for _name, _axes, _keep in [("axis1", (1,), False), ("axes02_keep", (0, 2), True),
                                ("axis_neg", (-1,), False), ("all", (), False),
                                ("all_keep", (), True), ("all_listed", (0, 1, 2), False)]:
        _in = ("x", "axes") if _axes else ("x",)
        case(_op, _name, {"x": R}, N(_onnx, *_in, keepdims=int(_keep)),
             attrs={"axes": _axes, "keepdims": _keep},
             consts={"axes": i64(*_axes)} if _axes else {})
    case(_op, "f64", {"x": R.astype(np.float64)}, N(_onnx, "x", "axes", keepdims=0),
         attrs={"axes": (2,)}, consts={"axes": i64(2)}, rtol=1e-12, atol=1e-14)
    case(_op, "scalar", {"x": f32(2.5)}, N(_onnx, "x", keepdims=0))
    if _op in ("reduce_max", "reduce_min"):
        case(_op, "nan", {"x": f32([[np.nan, -1.0], [1.0, 2.0]])},
             N(_onnx, "x", "axes", keepdims=0), attrs={"axes": (1,)}, consts={"axes": i64(1)})

# ---- losses --------------------------------------------------------------------------------
LOGITS = randn(4, 5, scale=2)
LABELS = randint(0, 5, 4)
for _red in ("mean", "sum", "none"):
    case("cross_entropy", f"index_{_red}", {"logits": LOGITS, "target": LABELS},
         N("SoftmaxCrossEntropyLoss", "logits", "target", reduction=_red),
         attrs={"reduction": _red})
case("cross_entropy", "index_i32", {"logits": LOGITS, "target": LABELS.astype(np.int32)},
     N("SoftmaxCrossEntropyLoss", "logits", "target"))
case("cross_entropy", "f64", {"logits": LOGITS.astype(np.float64), "target": LABELS},
     N("SoftmaxCrossEntropyLoss", "logits", "target"), rtol=1e-12, atol=1e-14)
case("cross_entropy", "spatial", {"logits": randn(2, 5, 3), "target": randint(0, 5, 2, 3)},
     N("SoftmaxCrossEntropyLoss", "logits", "target"))
case("cross_entropy", "spatial_none", {"logits": randn(2, 4, 3, 2),
                                       "target": randint(0, 4, 2, 3, 2)},
     N("SoftmaxCrossEntropyLoss", "logits", "target", reduction="none"),
     attrs={"reduction": "none"})

# Probability targets: ONNX has no single operator for them, so the peer spells the formula
# -sum(target * log_softmax(logits), axis=1) out of ONNX primitives (still run by onnxruntime).
_PROBS = np.exp(LOGITS[::-1] - LOGITS[::-1].max(1, keepdims=True))
_PROBS = (_PROBS / _PROBS.sum(1, keepdims=True)).astype(np.float32)
for _red, _last in (("mean", "ReduceMean"), ("sum", "ReduceSum"), ("none", None)):
    _nodes = [N("LogSoftmax", "logits", out="lp", axis=1), N("Mul", "target", "lp", out="m"),
              N("ReduceSum", "m", "one", out="s", keepdims=0),
              N("Neg", "s", out="per" if _last else "y")]
    if _last:
        _nodes.append(N(_last, "per", keepdims=0))
    case("cross_entropy", f"probs_{_red}", {"logits": LOGITS, "target": _PROBS}, _nodes,
         attrs={"reduction": _red}, consts={"one": i64(1)})

# mse_loss: (a - b)^2, then ReduceMean / ReduceSum over every axis or nothing
_A, _B = randn(3, 4), randn(3, 4)
for _red, _last in (("mean", "ReduceMean"), ("sum", "ReduceSum"), ("none", None)):
    _nodes = [N("Sub", "a", "b", out="d"), N("Mul", "d", "d", out="sq" if _last else "y")]
    if _last:
        _nodes.append(N(_last, "sq", keepdims=0))
    case("mse_loss", _red, {"a": _A, "b": _B}, _nodes, attrs={"reduction": _red})
case("mse_loss", "f64", {"a": _A.astype(np.float64), "b": _B.astype(np.float64)},
     [N("Sub", "a", "b", out="d"), N("Mul", "d", "d", out="sq"), N("ReduceMean", "sq", keepdims=0)],
     rtol=1e-12, atol=1e-14)
