"""Cases for shape operators and gather (see cases.py)."""

from __future__ import annotations

import numpy as np

from .cases import N, case, i64, randint, randn

X = randn(2, 3, 4)

# ---- reshape, flatten, transpose -------------------------------------------------------------
for _name, _x, _shape in [("infer_last", X, (4, -1)), ("infer_first", X, (-1, 2, 2)),
                          ("split_axes", randn(6, 4), (2, 3, 2, 2)),
                          ("to_scalar", randn(1), ()), ("i64", randint(0, 9, 2, 6), (3, -1))]:
    case("reshape", _name, {"x": _x}, N("Reshape", "x", "shape"), attrs={"shape": _shape},
         consts={"shape": i64(*_shape)})

X4 = randn(2, 3, 4, 5)
for _axis in (0, 1, 2, 4, -1, -3):
    case("flatten", f"axis{_axis}", {"x": X4}, N("Flatten", "x", axis=_axis),
         attrs={} if _axis == 1 else {"axis": _axis})

for _name, _x, _perm in [("rotate", X, (2, 0, 1)), ("nchw_nhwc", X4, (0, 2, 3, 1)),
                         ("identity", X, (0, 1, 2)), ("matrix", randn(3, 5), (1, 0)),
                         ("i32", randint(0, 9, 2, 3, 4, dtype=np.int32), (1, 2, 0))]:
    case("transpose", _name, {"x": _x}, N("Transpose", "x", perm=list(_perm)),
         attrs={"perm": _perm})

# ---- concat, split -----------------------------------------------------------------------
for _axis, _shapes in [(0, ((1, 3), (2, 3), (4, 3))), (1, ((2, 1, 2), (2, 3, 2), (2, 2, 2))),
                       (-1, ((2, 2, 1), (2, 2, 3), (2, 2, 2)))]:
    _args = {f"x{i}": randn(*s) for i, s in enumerate(_shapes)}
    case("concat", f"axis{_axis}", _args, N("Concat", *_args, axis=_axis),
         attrs={"axis": _axis})
case("concat", "i64_weight", {"x0": randint(0, 9, 2, 2), "x1": randint(0, 9, 2, 3)},
     N("Concat", "x0", "x1", axis=1), attrs={"axis": 1}, weights=("x1",))

for _name, _x, _axis, _sizes in [("axis0", randn(6, 4), 0, (1, 2, 3)),
                                 ("axis_neg", randn(2, 7), -1, (3, 4)),
                                 ("i32", randint(0, 9, 4, 3, dtype=np.int32), 0, (2, 2)),
                                 ("one_piece", randn(3, 2), 1, (2,))]:
    _outs = [f"y{i}" for i in range(len(_sizes))] if len(_sizes) > 1 else ["y"]
    case("split", _name, {"x": _x}, N("Split", "x", "sizes", out=_outs, axis=_axis),
         attrs={"axis": _axis, "sizes": _sizes}, consts={"sizes": i64(*_sizes)})

# ---- slice ---------------------------------------------------------------------------------
S = randn(5, 6)
for _name, _starts, _ends, _axes, _steps in [
    ("simple", (1,), (4,), (), ()),
    ("negative_starts", (-3, 1), (-1, 100), (), ()),
    ("step2", (0,), (6,), (1,), (2,)),
    ("reverse_all", (-1,), (-100,), (0,), (-1,)),
    ("reverse_to_start", (3,), (-6,), (1,), (-1,)),
    ("reverse_step2", (4,), (1,), (1,), (-2,)),
    ("reverse_step2_to_start", (5,), (-100,), (1,), (-2,)),
    ("axes_negative", (0, 1), (3, -1), (-1, -2), (1, 1)),
    ("empty", (3,), (1,), (0,), ()),
    ("huge_ends", (-100,), (2**62,), (1,), (3,)),
]:
    _in = ["x", "starts", "ends"] + (["axes"] if _axes else []) + (["steps"] if _steps else [])
    if _steps and not _axes:
        _in.insert(3, "")
    _consts = {"starts": i64(*_starts), "ends": i64(*_ends), "axes": i64(*_axes),
               "steps": i64(*_steps)}
    case("slice", _name, {"x": S}, N("Slice", *_in),
         attrs={"starts": _starts, "ends": _ends, "axes": _axes, "steps": _steps},
         consts={k: v for k, v in _consts.items() if k in _in})

# ---- pad -----------------------------------------------------------------------------------
P = randn(3, 4)
P3 = randn(2, 4, 5)
for _name, _x, _pads, _mode, _value in [
    ("zeros", P, (1, 2, 0, 1), "constant", 0.0),
    ("value", P, (0, 1, 2, 0), "constant", 1.5),
    ("reflect", P, (1, 2, 2, 1), "reflect", 0.0),
    ("edge", P, (2, 0, 1, 3), "edge", 0.0),
    ("crop", P, (-1, 1, 0, -2), "constant", 0.0),
    ("crop_edge", P3, (0, -1, 2, 1, 2, -2), "edge", 0.0),
    ("crop_reflect", P3, (0, 1, -1, 0, -1, 2), "reflect", 0.0),
    ("i32", randint(0, 9, 3, 2, dtype=np.int32), (1, 0, 0, 1), "constant", 7.0),
    ("reflect_largest", P, (2, 0, 2, 3), "reflect", 0.0),  # widest the axes allow
    ("reflect_after_crop", P, (0, -2, 0, 1), "reflect", 0.0),
    ("crop_to_empty", P, (0, -4, 0, 2), "constant", -1.0),
]:
    _const = np.array(_value, _x.dtype)
    case("pad", _name, {"x": _x}, N("Pad", "x", "pads", "value", mode=_mode),
         attrs={"pads": _pads, "mode": _mode, "value": _value},
         consts={"pads": i64(*_pads), "value": _const})

# ---- gather ------------------------------------------------------------------------------
TABLE = randn(10, 4)
case("gather", "embedding", {"table": TABLE, "idx": randint(0, 10, 2, 3)},
     N("Gather", "table", "idx", axis=0), weights=("table",))
case("gather", "negative_i32", {"table": TABLE,
                                "idx": np.array([[-1, 0], [-10, 9]], np.int32)},
     N("Gather", "table", "idx", axis=0), weights=("table",))
case("gather", "axis1", {"x": randn(3, 5, 2), "idx": i64(4, 0, -2, 1)},
     N("Gather", "x", "idx", axis=1), attrs={"axis": 1})
case("gather", "axis_neg", {"x": randn(3, 5, 2), "idx": i64(1, 1, 0)},
     N("Gather", "x", "idx", axis=-1), attrs={"axis": -1})
case("gather", "scalar_index", {"x": randn(3, 5), "idx": np.array(2, np.int64)},
     N("Gather", "x", "idx", axis=1), attrs={"axis": 1})
case("gather", "vector_scalar_index", {"x": randn(5), "idx": np.array(-2, np.int64)},
     N("Gather", "x", "idx"))
case("gather", "bool_data", {"x": np.array([True, False, True]), "idx": i64(1, 1, 0)},
     N("Gather", "x", "idx"))
case("gather", "i64_data", {"x": randint(0, 99, 4, 3), "idx": i64(3, 0)},
     N("Gather", "x", "idx"))
