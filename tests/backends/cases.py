"""Operator cases for the LLVM backend: every registered operator needs at least one.

Sizes are chosen around the vector widths (1, 15, 16, 17, 33 elements: remainders of
4, 8 and 16 lanes); convolutions and pools hit padding edges, strides, dilation and groups.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from .helpers import Case, randint, randn, uniform

CASES: list[Case] = []
TRANSCENDENTAL = dict(rtol=1e-4, atol=1e-6)


def case(op, variant, args, **kw) -> Case:
    c = Case(op, variant, args, **kw)
    assert all(c.id != o.id for o in CASES), c.id
    CASES.append(c)
    return c


SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, 1e-30, -1e-30,
                    30.0, -30.0, 88.0, -88.0, 100.0, -100.0, 1e-40], np.float32)

# ---- unary -------------------------------------------------------------------------------
UNARY = {"relu": {}, "relu6": {}, "leaky_relu": {"alpha": 0.2}, "elu": {"alpha": 0.5},
         "sigmoid": {}, "tanh": {}, "softplus": {}, "gelu": {}, "erf": {}, "exp": {},
         "neg": {}, "abs": {}, "clip": {"min": -1.5, "max": 2.0}}
for _op, _attrs in UNARY.items():
    _tol = TRANSCENDENTAL if _op in ("sigmoid", "tanh", "softplus", "gelu", "erf", "exp",
                                      "elu") else {}
    for _n in (1, 15, 16, 17, 33):
        case(_op, f"n{_n}", {"x": uniform(-6, 6, _n)}, attrs=_attrs, **_tol)
    case(_op, "3d", {"x": uniform(-4, 4, 2, 3, 37) * 2}, attrs=_attrs, **_tol)
    case(_op, "special", {"x": SPECIAL}, attrs=_attrs, **_tol)
    case(_op, "f64", {"x": uniform(-6, 6, 2, 19, dtype=np.float64)}, attrs=_attrs,
         rtol=1e-12, atol=1e-14)
case("gelu", "tanh", {"x": uniform(-6, 6, 2, 37)}, attrs={"approximate": "tanh"},
     **TRANSCENDENTAL)
case("gelu", "tanh-special", {"x": SPECIAL}, attrs={"approximate": "tanh"}, **TRANSCENDENTAL)
case("elu", "default", {"x": uniform(-1e-3, 1e-3, 33)}, rtol=1e-4, atol=1e-9)
case("exp", "range", {"x": np.linspace(-105, 90, 1001, dtype=np.float32)}, rtol=1e-6,
     atol=1e-44)
case("clip", "min_only", {"x": uniform(-3, 3, 17)}, attrs={"min": 0.5})
case("clip", "max_only", {"x": uniform(-3, 3, 17)}, attrs={"max": -0.5})
for _n in (1, 17, 33):
    case("log", f"n{_n}", {"x": uniform(0.01, 100, _n)}, **TRANSCENDENTAL)
    case("sqrt", f"n{_n}", {"x": uniform(0, 100, _n)})
case("log", "special", {"x": SPECIAL}, **TRANSCENDENTAL)
case("log", "tiny", {"x": np.logspace(-44, 38, 200).astype(np.float32)}, rtol=1e-6, atol=0)
case("log", "f64", {"x": uniform(0.01, 100, 19, dtype=np.float64)}, rtol=1e-12)
case("sqrt", "special", {"x": SPECIAL})
for _dt in (np.int32, np.int64):
    for _op in ("neg", "abs"):
        case(_op, np.dtype(_dt).name, {"x": randint(-50, 50, 3, 17, dtype=_dt)})

# ---- binary -------------------------------------------------------------------------------
SHAPES = {"same": ((33,), (33,)), "row": ((3, 17), (17,)), "col": ((3, 17), (3, 1)),
          "outer": ((5, 1), (1, 33)), "scalar": ((2, 16), ()), "scalar_lhs": ((), (2, 17)),
          "mid": ((2, 3, 4, 5), (1, 3, 1, 1)), "rank": ((1,), (4, 1, 15)),
          "one": ((1,), (1,))}
for _op in ("add", "sub", "mul", "div", "maximum", "minimum", "pow"):
    for _name, (_a, _b) in SHAPES.items():
        a, b = randn(*_a), randn(*_b)
        if _op == "pow":
            a = np.abs(a) + np.float32(0.1)
        case(_op, _name, {"a": a, "b": b}, rtol=1e-5 if _op != "pow" else 1e-4)
    case(_op, "special", {"a": SPECIAL, "b": SPECIAL[::-1].copy()})
    case(_op, "f64", {"a": randn(3, 17, dtype=np.float64), "b": randn(17, dtype=np.float64)},
         rtol=1e-12)
    case(_op, "weight", {"a": randn(4, 19), "b": randn(19)}, weights=("b",),
         rtol=1e-5 if _op != "pow" else 1e-4)
    if _op not in ("div", "pow"):
        for _dt in (np.int32, np.int64):
            case(_op, np.dtype(_dt).name, {"a": randint(-9, 9, 3, 17, dtype=_dt),
                                           "b": randint(-9, 9, 17, dtype=_dt)})

# ---- cast, constant, dropout -------------------------------------------------------------
_SRC = {"f32": uniform(-100, 100, 37), "f64": uniform(-100, 100, 37, dtype=np.float64),
        "i32": randint(-100, 100, 37, dtype=np.int32), "i64": randint(-100, 100, 37),
        "bool": randint(0, 2, 37).astype(bool)}
_SRC["f32"][:3] = [0.0, -0.5, 0.7]
for _src, _x in _SRC.items():
    for _dst in _SRC:
        case("cast", f"{_src}-{_dst}", {"x": _x}, attrs={"dtype": _dst})
case("cast", "nan-bool", {"x": SPECIAL}, attrs={"dtype": "bool"})
for _dt in ("f32", "f64", "i32", "i64", "bool"):
    case("constant", _dt, {}, attrs={"value": 2.5, "shape": [3, 17], "dtype": _dt})
case("constant", "scalar", {}, attrs={"value": -1.0, "shape": []})
case("dropout", "inference", {"x": randn(3, 17)}, attrs={"ratio": 0.3})
case("dropout", "ratio0", {"x": randn(17)}, attrs={"ratio": 0.0, "training": True})
case("detach", "3d", {"x": randn(2, 3, 17)})
case("detach", "i64", {"x": randint(-50, 50, 33)})


# ---- linear algebra: sizes around the register tile (MR rows, NR = 2 vectors of columns) ---
for _m, _k, _n in [(1, 1, 1), (1, 33, 17), (5, 16, 15), (8, 64, 32), (9, 300, 33),
                   (17, 257, 65), (33, 16, 100)]:
    _x, _w, _b = randn(_m, _k), randn(_n, _k), randn(_n)
    case("linear", f"{_m}x{_k}x{_n}", {"x": _x, "w": _w, "b": _b}, weights=("w", "b"),
         rtol=1e-4, atol=1e-4)
    case("matmul", f"{_m}x{_k}x{_n}", {"a": _x, "b": _w.T.copy()}, rtol=1e-4, atol=1e-4)
case("linear", "no-bias-3d", {"x": randn(2, 3, 17), "w": randn(33, 17)}, weights=("w",),
     rtol=1e-4, atol=1e-4)
case("linear", "runtime-weight", {"x": randn(7, 19), "w": randn(35, 19), "b": randn(35)},
     rtol=1e-4, atol=1e-4)
case("linear", "k0", {"x": randn(3, 0), "w": randn(5, 0), "b": randn(5)}, weights=("w", "b"))
case("linear", "f64", {"x": randn(5, 33, dtype=np.float64), "w": randn(17, 33, dtype=np.float64)},
     weights=("w",), rtol=1e-12, atol=1e-12)
case("matmul", "batched-broadcast", {"a": randn(2, 1, 5, 33), "b": randn(3, 33, 17)},
     rtol=1e-4, atol=1e-4)
case("matmul", "weight-batched", {"a": randn(3, 9, 20), "b": randn(3, 20, 18)},
     weights=("b",), rtol=1e-4, atol=1e-4)
case("matmul", "tall-runtime-b", {"a": randn(300, 33), "b": randn(33, 20)}, rtol=1e-4,
     atol=1e-4)  # more rows than one row block: B is packed once, in its own phase
case("matmul", "vec-mat", {"a": randn(33), "b": randn(33, 17)}, rtol=1e-4, atol=1e-4)
case("matmul", "mat-vec", {"a": randn(4, 3, 33), "b": randn(33)}, rtol=1e-4, atol=1e-4)
case("matmul", "vec-vec", {"a": randn(17), "b": randn(17)}, rtol=1e-4, atol=1e-4)

# ---- convolution -------------------------------------------------------------------------
CONV = {
    "3x3-pad": ((1, 3, 9, 9), (4, 3, 3, 3), dict(pad=[1, 1, 1, 1])),
    "stride2-asym-pad": ((2, 8, 11, 7), (16, 4, 3, 3), dict(stride=[2, 2], pad=[1, 0, 2, 1],
                                                             groups=2)),
    "1x1": ((1, 5, 17, 17), (7, 5, 1, 1), {}),
    "1x1-stride2": ((1, 5, 17, 17), (7, 5, 1, 1), dict(stride=[2, 2])),
    "depthwise": ((2, 6, 13, 19), (6, 1, 3, 3), dict(pad=[1, 1, 1, 1], groups=6)),
    "depthwise-5x5-s2": ((1, 6, 13, 19), (6, 1, 5, 5), dict(pad=[2, 2, 2, 2], stride=[2, 2],
                                                            groups=6)),
    "depthwise-dil-s3": ((1, 6, 13, 19), (6, 1, 3, 3), dict(pad=[2, 2, 2, 2], stride=[3, 3],
                                                            dilation=[2, 2], groups=6)),
    "7x7-stem": ((1, 3, 20, 23), (10, 3, 7, 7), dict(pad=[3, 3, 3, 3], stride=[2, 2],
                                                     dilation=[1, 2])),
    "multiplier": ((1, 4, 6, 6), (12, 1, 3, 3), dict(pad=[1, 1, 1, 1], groups=4)),
    "wide": ((1, 17, 5, 40), (33, 17, 3, 3), dict(pad=[0, 1, 0, 1])),
    "deep": ((2, 8, 5, 5), (300, 8, 3, 3), dict(pad=[1, 1, 1, 1])),
}
for _name, (_xs, _ws, _attrs) in CONV.items():
    _args = {"x": randn(*_xs), "w": randn(*_ws), "b": randn(_ws[0])}
    case("conv2d", _name, _args, attrs=_attrs, weights=("w", "b"), rtol=1e-4, atol=1e-4)
case("conv2d", "runtime-weight-no-bias", {"x": randn(1, 4, 7, 7), "w": randn(6, 2, 3, 3)},
     attrs={"groups": 2, "pad": [1, 1, 1, 1]}, rtol=1e-4, atol=1e-4)
for _act in ("none", "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "gelu"):
    for _name in ("3x3-pad", "depthwise", "1x1"):
        _xs, _ws, _attrs = CONV[_name]
        _y = (_xs[0], _ws[0], *_xs[2:]) if _name != "3x3-pad" else (1, 4, 9, 9)
        _args = {"x": randn(*_xs), "w": randn(*_ws), "b": randn(_ws[0]), "r": randn(*_y)}
        case("fused_conv2d", f"{_name}-{_act}", _args, attrs={**_attrs, "act": _act,
             "alpha": 0.2}, weights=("w", "b"), rtol=1e-4, atol=1e-4)
    case("fused_linear", f"{_act}", {"x": randn(5, 33), "w": randn(17, 33), "b": randn(17),
                                      "r": randn(5, 17)},
         attrs={"act": _act}, weights=("w", "b"), rtol=1e-4, atol=1e-4)

# ---- pooling -----------------------------------------------------------------------------
POOLS = {"2x2": dict(kernel=[2, 2], stride=[2, 2]),
         "3x3-s2-pad": dict(kernel=[3, 3], stride=[2, 2], pad=[1, 1, 1, 1]),
         "ceil": dict(kernel=[3, 3], stride=[2, 2], pad=[1, 1, 1, 1], ceil_mode=True),
         "dil-ceil": dict(kernel=[3, 2], stride=[1, 3], pad=[1, 0, 1, 1], dilation=[2, 1],
                          ceil_mode=True),
         "5x5-s3": dict(kernel=[5, 5], stride=[3, 3], pad=[2, 2, 2, 2])}
for _name, _attrs in POOLS.items():
    _x = randn(2, 3, 17, 19)
    case("max_pool2d", _name, {"x": _x}, attrs=_attrs)
    case("avg_pool2d", _name, {"x": _x}, attrs=_attrs)
    case("avg_pool2d", f"{_name}-exclude-pad", {"x": _x},
         attrs={**_attrs, "count_include_pad": False})
_xn = randn(1, 2, 5, 5)
_xn[0, 0, 1, 1] = math.nan
case("max_pool2d", "nan", {"x": _xn}, attrs={"kernel": [2, 2]})
case("global_avg_pool", "4d", {"x": randn(2, 3, 17, 19)})

# ---- 3-D convolution and pooling (lowered through the 2-D kernels) -----------------------
CONV3D = {
    "3x3x3-pad": ((1, 3, 6, 9, 17), (5, 3, 3, 3, 3), dict(pad=[1, 1, 1, 1, 1, 1])),
    "stride-dil-groups": ((2, 4, 9, 8, 7), (6, 2, 2, 3, 3),
                          dict(stride=[2, 1, 2], dilation=[3, 1, 1], pad=[1, 1, 0, 0, 1, 1],
                               groups=2)),
    "depthwise": ((1, 4, 5, 7, 16), (4, 1, 3, 3, 3), dict(pad=[1, 1, 1, 1, 1, 1], groups=4)),
}
for _name, (_xs, _ws, _attrs) in CONV3D.items():
    _args = {"x": randn(*_xs), "w": randn(*_ws), "b": randn(_ws[0])}
    case("conv3d", _name, _args, attrs=_attrs, weights=("w", "b"), rtol=1e-4, atol=1e-4)
case("conv3d", "runtime-weight", {"x": randn(1, 2, 4, 5, 6), "w": randn(3, 2, 2, 2, 2)},
     attrs={"stride": [1, 2, 1]}, rtol=1e-4, atol=1e-4)
case("conv3d_grad_input", "stride2", {"dy": randn(2, 3, 4, 3, 9), "w": randn(3, 2, 3, 2, 3)},
     attrs={"stride": [2, 2, 2], "pad": [1, 0, 1, 1, 1, 1], "shape": [2, 2, 7, 6, 17]},
     weights=("w",), rtol=1e-4, atol=1e-4)
case("conv3d_grad_input", "groups-runtime", {"dy": randn(1, 4, 3, 4, 3),
                                             "w": randn(4, 2, 2, 3, 3)},
     attrs={"groups": 2, "stride": [3, 1, 1], "dilation": [2, 1, 1], "pad": [0, 0, 0, 1, 0, 0],
            "shape": [1, 4, 8, 6, 5]}, rtol=1e-4, atol=1e-4)
POOLS3D = {"2x2x2": dict(kernel=[2, 2, 2], stride=[2, 2, 2]),
           "3x3x3-pad-ceil": dict(kernel=[3, 3, 3], stride=[2, 2, 2], pad=[1, 1, 1, 1, 1, 1],
                                  ceil_mode=True),
           "dil": dict(kernel=[2, 3, 2], stride=[1, 2, 3], pad=[1, 0, 1, 0, 1, 0],
                       dilation=[2, 1, 2])}
for _name, _attrs in POOLS3D.items():
    _x = randn(2, 3, 7, 9, 17)
    case("max_pool3d", _name, {"x": _x}, attrs=_attrs)
    case("avg_pool3d", _name, {"x": _x}, attrs=_attrs)
    case("avg_pool3d", f"{_name}-exclude-pad", {"x": _x},
         attrs={**_attrs, "count_include_pad": False})
case("global_avg_pool", "3d", {"x": randn(2, 3, 33)})

# ---- normalisation, softmax, reductions ----------------------------------------------------
for _shape in ((3, 17), (2, 5, 7, 3)):
    _c = _shape[1]
    _bn = {"x": randn(*_shape), "w": randn(_c), "b": randn(_c), "m": randn(_c),
           "v": np.abs(randn(_c)) + np.float32(0.5)}
    case("batch_norm", f"{len(_shape)}d", _bn, weights=("w", "b", "m", "v"), rtol=1e-4,
         atol=1e-5)
    case("batch_norm", f"{len(_shape)}d-training", _bn, attrs={"training": True},
         weights=("w", "b", "m", "v"), rtol=1e-4, atol=1e-4)
for _ax in (-1, 1, 0):
    _x = randn(2, 3, 33)
    _sh = _x.shape[_ax % 3:]
    case("layer_norm", f"axis{_ax}", {"x": _x, "w": randn(*_sh), "b": randn(*_sh)},
         attrs={"axis": _ax}, weights=("w", "b"), rtol=1e-4, atol=1e-5)
    case("layer_norm", f"axis{_ax}-plain", {"x": _x}, attrs={"axis": _ax}, rtol=1e-4,
         atol=1e-5)
    for _op in ("softmax", "log_softmax"):
        case(_op, f"axis{_ax}", {"x": _x * 5}, attrs={"axis": _ax}, rtol=1e-4, atol=1e-6)
for _op in ("softmax", "log_softmax"):
    case(_op, "special", {"x": np.array([[0, 1, -math.inf, 3], [math.nan, 0, 1, 2]],
                                       np.float32)}, rtol=1e-4, atol=1e-6)
    case(_op, "n1", {"x": randn(5, 1)})
for _op in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min"):
    for _axes in ([], [0], [1], [3], [-1, 0], [1, 2], [0, 2], [0, 1, 3]):
        for _kd in (False, True):
            case(_op, f"{_axes}-{_kd}", {"x": randn(3, 4, 5, 17)},
                 attrs={"axes": _axes, "keepdims": _kd}, rtol=1e-5, atol=1e-5)
    _xn = randn(33)
    _xn[5] = math.nan
    case(_op, "nan", {"x": _xn})

# ---- gather, losses ----------------------------------------------------------------------
case("gather", "rows", {"d": randn(10, 17), "i": randint(-10, 10, 3, 4)})
case("gather", "axis1-i32", {"d": randn(3, 17, 5), "i": randint(-17, 17, 6, dtype=np.int32)},
     attrs={"axis": 1})
case("gather", "embedding", {"d": randn(50, 33), "i": randint(0, 50, 2, 7)}, weights=("d",))
for _red in ("mean", "sum", "none"):
    case("cross_entropy", f"index-{_red}", {"l": randn(5, 7), "t": randint(0, 7, 5)},
         attrs={"reduction": _red}, rtol=1e-4, atol=1e-5)
    case("cross_entropy", f"spatial-{_red}", {"l": randn(2, 4, 3, 5),
                                              "t": randint(0, 4, 2, 3, 5, dtype=np.int32)},
         attrs={"reduction": _red}, rtol=1e-4, atol=1e-5)
    _p = np.abs(randn(5, 7))
    case("cross_entropy", f"probs-{_red}", {"l": randn(5, 7), "t": _p / _p.sum(1, keepdims=True)},
         attrs={"reduction": _red}, rtol=1e-4, atol=1e-5)
    case("mse_loss", _red, {"a": randn(3, 33), "b": randn(3, 33)}, attrs={"reduction": _red},
         rtol=1e-5, atol=1e-5)

# ---- shape operators -----------------------------------------------------------------------
_X = randn(2, 3, 4, 17)
case("reshape", "flat", {"x": _X}, attrs={"shape": [6, -1]})
case("flatten", "axis2", {"x": _X}, attrs={"axis": 2})
for _perm in ([3, 2, 1, 0], [0, 2, 1, 3], [1, 0, 3, 2], [0, 3, 1, 2]):
    case("transpose", "".join(map(str, _perm)), {"x": _X}, attrs={"perm": _perm})
case("transpose", "2d-33", {"x": randn(33, 17)}, attrs={"perm": [1, 0]})
case("concat", "axis1-3", {"a": _X, "b": randn(2, 2, 4, 17), "c": randn(2, 1, 4, 17)},
     attrs={"axis": 1})
case("concat", "last", {"a": randn(3, 17), "b": randn(3, 15)}, attrs={"axis": -1})
case("split", "last", {"x": _X}, attrs={"axis": 3, "sizes": [5, 0, 12]})
case("split", "axis1", {"x": _X}, attrs={"axis": 1, "sizes": [1, 2]})
for _i, _a in enumerate([dict(starts=[1], ends=[3], axes=[2]),
                         dict(starts=[0, -1], ends=[2, -100], steps=[1, -2], axes=[1, 3]),
                         dict(starts=[10], ends=[0], steps=[-3], axes=[3]),
                         dict(starts=[5], ends=[5], axes=[3])]):
    case("slice", f"v{_i}", {"x": _X}, attrs=_a)
for _mode in ("constant", "reflect", "edge"):
    case("pad", _mode, {"x": _X}, attrs={"pads": [0, 1, 2, 3, 0, 1, 1, 2], "mode": _mode,
                                         "value": 1.5})
    case("pad", f"{_mode}-crop", {"x": _X}, attrs={"pads": [0, 0, -1, 2, 0, 1, 1, -3],
                                                  "mode": _mode})
case("broadcast_to", "rank", {"x": randn(17)}, attrs={"shape": [3, 5, 17]})
case("broadcast_to", "mid", {"x": randn(3, 1, 17)}, attrs={"shape": [2, 3, 4, 17]})
_A, _B = randn(3, 17), randn(17)
_A[0, :5] = _B[:5]
_A[1, 0] = math.nan
for _op in ("greater", "equal"):
    case(_op, "f32", {"a": _A, "b": _B})
    case(_op, "i32", {"a": randint(-3, 3, 3, 17, dtype=np.int32),
                      "b": randint(-3, 3, 17, dtype=np.int32)})
    case(_op, "bool", {"a": randint(0, 2, 3, 17).astype(bool), "b": randint(0, 2, 17).astype(bool)})
case("where", "broadcast", {"c": randint(0, 2, 3, 1).astype(bool), "a": _A, "b": _B})
case("one_hot", "axis-1", {"i": randint(-5, 5, 3, 4)}, attrs={"depth": 5})
case("one_hot", "axis0-i32", {"i": randint(0, 5, 7, dtype=np.int32)},
     attrs={"depth": 5, "axis": 0, "dtype": "i64"})
case("scatter_add", "rows", {"u": randn(6, 17), "i": randint(-4, 4, 6)},
     attrs={"axis": 0, "size": 4})
case("scatter_add", "axis1", {"u": randn(2, 3, 5, 17), "i": randint(0, 7, 3, 5)},
     attrs={"axis": 1, "size": 7})
case("dropout_seeded", "ratio0", {"x": randn(3, 17), "s": np.array(3, np.int64)},
     attrs={"ratio": 0.0})
for _seed, _step, _dt in [(0, 0, np.int64), (5, -3, np.int32), (2**40, 2**35 + 1, np.int64)]:
    case("dropout_seeded", f"seed{_seed}-step{_step}", {"x": randn(3, 17),
                                                         "s": np.array(_step, _dt)},
         attrs={"ratio": 0.3, "seed": _seed}, rtol=0, atol=0)
    case("dropout", f"training-seed{_seed}", {"x": randn(33)},
         attrs={"ratio": 0.25, "training": True, "seed": _seed}, rtol=0, atol=0)

# ---- backward graph operators ----------------------------------------------------------------
for _name in ("3x3-pad", "stride2-asym-pad", "depthwise-dil-s3", "7x7-stem", "1x1-stride2"):
    _xs, _ws, _attrs = CONV[_name]
    _full = {"stride": [1, 1], "pad": [0, 0, 0, 0], "dilation": [1, 1], "groups": 1, **_attrs}
    _x, _w = randn(*_xs), randn(*_ws)
    from ir import TensorType as _T
    from ir.ops import get as _get

    _y = _get("conv2d").infer(_T.of(_x), _T.of(_w), **_full).shape
    case("conv2d_grad_input", _name, {"dy": randn(*_y), "w": _w},
         attrs={**_attrs, "shape": list(_xs)}, weights=("w",), rtol=1e-4, atol=1e-4)
    case("conv2d_grad_weight", _name, {"x": _x, "dy": randn(*_y)},
         attrs={**_attrs, "kernel": list(_ws[2:])}, rtol=1e-4, atol=1e-3)
case("conv2d_grad_input", "runtime-w", {"dy": randn(1, 6, 5, 5), "w": randn(6, 2, 3, 3)},
     attrs={"groups": 2, "pad": [1, 1, 1, 1], "shape": [1, 4, 5, 5]}, rtol=1e-4, atol=1e-4)
for _name in ("3x3-s2-pad", "ceil", "dil-ceil"):
    _x = randn(2, 3, 17, 19)

    _dy = randn(*_get("max_pool2d").infer(_T.of(_x), **_get("max_pool2d").check_attrs(
        POOLS[_name])).shape)
    case("max_pool2d_grad", _name, {"x": _x, "dy": _dy}, attrs=POOLS[_name], rtol=1e-5,
         atol=1e-5)


# ---- fused_elementwise -------------------------------------------------------------------
def _body(arrays, build):
    from ir import Graph as _G

    g = _G("body")
    params = [g.add_input(f"p{i}", _T.of(a)) for i, a in enumerate(arrays)]
    g.outputs = [build(g, *params)]
    return g


_a, _b, _c = randn(2, 3, 17), randn(17), randn(2, 1, 17)
case("fused_elementwise", "add-relu-mul", {"a": _a, "b": _b, "c": _c},
     attrs={"body": _body([_a, _b, _c], lambda g, a, b, c: g.call(
         "mul", g.call("relu", g.call("add", a, b)), c))})
case("fused_elementwise", "silu-clip-33", {"a": randn(33)},
     attrs={"body": _body([randn(33)], lambda g, a: g.call(
         "clip", g.call("mul", a, g.call("sigmoid", a)), min=-0.25, max=0.5))},
     rtol=1e-4, atol=1e-6)
case("fused_elementwise", "gelu-tanh-pow", {"a": randn(4, 15)},
     attrs={"body": _body([randn(4, 15)], lambda g, a: g.call(
         "add", g.call("gelu", a), g.call("pow", g.call("tanh", a),
                                           g.call("constant", value=2.0, shape=())))) },
     rtol=1e-4, atol=1e-6)
case("fused_elementwise", "where-cast", {"a": _a, "b": _b},
     attrs={"body": _body([_a, _b], lambda g, a, b: g.call(
         "where", g.call("greater", a, b), g.call("cast", g.call("cast", a, dtype="i32"),
                                                   dtype="f32"), b))})
_i, _j = randint(-9, 9, 2, 17, dtype=np.int32), randint(-9, 9, 17, dtype=np.int32)
case("fused_elementwise", "i32-constant", {"i": _i, "j": _j},
     attrs={"body": _body([_i, _j], lambda g, i, j: g.call(
         "add", g.call("abs", g.call("sub", i, j)),
         g.call("constant", value=3, shape=(), dtype="i32")))})


# ---- recurrent: hidden sizes around the lane count (masked last unit tile), batches around
# the register tile's rows (6 for the LSTM with AVX-512), both directions, given states ----
_GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def _recurrent(op, variant, t, batch, inp, hidden, direction="forward", states=0,
               runtime=False, dtype=np.float32, **attrs):
    d, g = 2 if direction == "bidirectional" else 1, _GATES[op]
    args = {"x": randn(t, batch, inp, dtype=dtype),
            "w": uniform(-0.8, 0.8, d, g * hidden, inp, dtype=dtype),
            "r": uniform(-0.8, 0.8, d, g * hidden, hidden, dtype=dtype),
            "b": uniform(-0.5, 0.5, d, 2 * g * hidden, dtype=dtype)}
    args.update({f"s{i}": randn(d, batch, hidden, dtype=dtype) for i in range(states)})
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    case(op, variant, args, attrs={"hidden_size": hidden, "direction": direction, **attrs},
         weights=() if runtime else ("w", "r", "b"), **tol)


for _h in (1, 15, 16, 17, 33):
    _recurrent("lstm", f"h{_h}", 4, 2, 3, _h)
for _b in (1, 5, 7, 13):
    _recurrent("lstm", f"batch{_b}", 3, _b, 5, 17, states=2)
_recurrent("lstm", "bidirectional", 5, 3, 4, 20, "bidirectional", states=1)
_recurrent("lstm", "reverse-runtime-weights", 4, 7, 3, 18, "reverse", runtime=True)
_recurrent("lstm", "f64", 3, 2, 4, 9, "bidirectional", states=2, dtype=np.float64)
_recurrent("lstm", "seq0", 0, 3, 4, 5, states=2)
for _lbr in (True, False):
    _tag = "lbr" if _lbr else "nolbr"
    _recurrent("gru", f"h17-batch9-{_tag}", 4, 9, 5, 17, states=1, linear_before_reset=_lbr)
    _recurrent("gru", f"bidirectional-batch1-{_tag}", 5, 1, 3, 33, "bidirectional",
               linear_before_reset=_lbr)
    _recurrent("gru", f"runtime-weights-{_tag}", 3, 2, 4, 6, "reverse", states=1,
               runtime=True, linear_before_reset=_lbr)
_recurrent("gru", "f64", 3, 3, 4, 9, states=1, dtype=np.float64, linear_before_reset=True)
_recurrent("rnn", "h16-batch11", 4, 11, 5, 16)
_recurrent("rnn", "bidirectional-h1", 3, 2, 1, 1, "bidirectional", states=1, runtime=True)
_recurrent("rnn", "seq0", 0, 2, 3, 4)

def by_op() -> dict[str, list[Case]]:
    out: dict[str, list[Case]] = defaultdict(list)
    for c in CASES:
        out[c.op].append(c)
    return out


from . import (  # noqa: E402, F401  (they register more operators' cases)
    cases_bf16,  # bf16_linear
    cases_int8,  # the quantized operators
    cases_math,  # trigonometry, round, bit operators
    cases_narrow,  # round_to_format
)
