"""Cases for the operators backward passes use (ir/ops/backward.py; see cases.py).

Their onnxruntime peers are the ONNX operators with the same meaning where one exists
(Greater, Where, Expand, OneHot, ConvTranspose) and small compositions otherwise: conv2d's
weight gradient is a Conv of the transposed input by the transposed output gradient,
scatter_add and max_pool2d's gradient are ScatterND/ScatterElements with reduction="add".
"""

from __future__ import annotations

import numpy as np

from .cases import N, case, f32, i64

_rng = np.random.default_rng(20240607)  # its own: the other case files' data stay as they were


def randn(*shape) -> np.ndarray:
    return _rng.standard_normal(shape).astype(np.float32)


def randint(lo, hi, *shape) -> np.ndarray:
    return _rng.integers(lo, hi, shape).astype(np.int64)

# ---- comparisons, where, broadcast_to ------------------------------------------------------
A, B = randn(3, 4), randn(4)
case("greater", "broadcast", {"a": A, "b": B}, N("Greater", "a", "b"))
case("greater", "i64", {"a": randint(0, 3, 2, 3), "b": randint(0, 3, 3)}, N("Greater", "a", "b"))
case("equal", "ties", {"a": np.round(A), "b": np.round(B)}, N("Equal", "a", "b"))
case("equal", "i64", {"a": randint(0, 3, 2, 3), "b": randint(0, 3, 2, 1)}, N("Equal", "a", "b"))
case("where", "broadcast", {"c": A > 0, "a": B, "b": randn(3, 1)}, N("Where", "c", "a", "b"))
case("where", "f64", {"c": A > 0, "a": A.astype(np.float64), "b": np.array(0.5)},
     N("Where", "c", "a", "b"))
case("broadcast_to", "lead_and_ones", {"x": randn(3, 1)}, N("Expand", "x", "shape"),
     attrs={"shape": (2, 3, 4)}, consts={"shape": i64(2, 3, 4)})
case("broadcast_to", "same", {"x": randn(2, 3)}, N("Expand", "x", "shape"),
     attrs={"shape": (2, 3)}, consts={"shape": i64(2, 3)})

# ---- one_hot, scatter_add ------------------------------------------------------------------
_IDX = np.array([[0, 4, -1], [2, 2, 1]], np.int64)
case("one_hot", "axis1", {"idx": _IDX}, N("OneHot", "idx", "depth", "values", axis=1),
     attrs={"depth": 5, "axis": 1}, consts={"depth": i64(5), "values": f32([0, 1])})
case("one_hot", "last", {"idx": i64(3, 0, 1)}, N("OneHot", "idx", "depth", "values"),
     attrs={"depth": 4}, consts={"depth": i64(4), "values": f32([0, 1])})

_UPD = randn(2, 3, 4)
case("scatter_add", "rows_repeated", {"upd": _UPD, "idx": i64(1, 4, 1, 0, 4, 3).reshape(2, 3)},
     [N("Reshape", "idx", "col", out="i"), N("Reshape", "upd", "rows", out="u"),
      N("ScatterND", "zeros", "i", "u", reduction="add")],
     attrs={"size": 5},
     consts={"col": i64(6, 1), "rows": i64(6, 4), "zeros": np.zeros((5, 4), np.float32)})
case("scatter_add", "axis1", {"upd": randn(3, 5), "idx": i64(0, 3, 3, 1, 0)},
     [N("Unsqueeze", "idx", "zero", out="i1"), N("Expand", "i1", "shape", out="i"),
      N("ScatterElements", "zeros", "i", "upd", axis=1, reduction="add")],
     attrs={"axis": 1, "size": 4},
     consts={"zero": i64(0), "shape": i64(3, 5), "zeros": np.zeros((3, 4), np.float32)})

# ---- conv2d's gradients ----------------------------------------------------------------------
CONV_T = [  # variant, dy shape, weight shape, input shape, attrs (output_padding follows)
    ("plain", (1, 3, 3, 3), (3, 2, 3, 3), (1, 2, 5, 5), {}),
    ("stride2_pad", (2, 4, 3, 3), (4, 2, 3, 3), (2, 2, 6, 6),
     {"stride": (2, 2), "pad": (1, 1, 1, 0)}),
    ("groups_dilation", (1, 4, 2, 4), (4, 1, 2, 2), (1, 2, 4, 5),
     {"groups": 2, "dilation": (2, 1)}),
]
for _name, _dys, _ws, _xs, _attrs in CONV_T:
    _s, _p, _d = (_attrs.get(k, dflt) for k, dflt in
                  (("stride", (1, 1)), ("pad", (0, 0, 0, 0)), ("dilation", (1, 1))))
    _full = [(_dys[2 + i] - 1) * _s[i] + (_ws[2 + i] - 1) * _d[i] + 1 - _p[i] - _p[i + 2]
             for i in range(2)]
    case("conv2d_grad_input", _name, {"dy": randn(*_dys), "w": randn(*_ws)},
         N("ConvTranspose", "dy", "w", strides=list(_s), pads=list(_p), dilations=list(_d),
           group=_attrs.get("groups", 1), kernel_shape=list(_ws[2:]),
           output_padding=[_xs[2] - _full[0], _xs[3] - _full[1]]),
         attrs={**_attrs, "shape": _xs}, weights=("w",), atol=1e-5)

CONV_W = [  # variant, x shape, dy shape, kernel, attrs
    ("plain", (2, 2, 5, 5), (2, 3, 3, 3), (3, 3), {}),
    ("stride2_pad", (2, 2, 6, 5), (2, 3, 3, 3), (3, 2), {"stride": (2, 2), "pad": (1, 1, 1, 0)}),
    ("dilation", (1, 1, 7, 6), (1, 2, 3, 4), (3, 2), {"dilation": (2, 2), "stride": (1, 1)}),
]
for _name, _xs, _dys, _k, _attrs in CONV_W:
    _s, _p, _d = (_attrs.get(k, dflt) for k, dflt in
                  (("stride", (1, 1)), ("pad", (0, 0, 0, 0)), ("dilation", (1, 1))))
    case("conv2d_grad_weight", _name, {"x": randn(*_xs), "dy": randn(*_dys)},
         [N("Transpose", "x", perm=[1, 0, 2, 3], out="xt"),
          N("Transpose", "dy", perm=[1, 0, 2, 3], out="dyt"),
          N("Conv", "xt", "dyt", strides=list(_d), dilations=list(_s), pads=list(_p), out="c"),
          N("Slice", "c", "zeros2", "kernel", "axes", out="k"),
          N("Transpose", "k", perm=[1, 0, 2, 3])],
         attrs={**_attrs, "kernel": _k},
         consts={"zeros2": i64(0, 0), "kernel": i64(*_k), "axes": i64(2, 3)}, atol=1e-5)

# ---- max_pool2d's gradient -------------------------------------------------------------------
for _name, _xs, _attrs in [
    ("k2s2", (1, 2, 4, 4), {"kernel": (2, 2), "stride": (2, 2)}),
    ("k3s1_pad1", (2, 1, 5, 4), {"kernel": (3, 3), "pad": (1, 1, 1, 1)}),  # windows overlap
]:
    _x = randn(*_xs)
    _out = (_xs[0], _xs[1], *(((n + _attrs.get("pad", (0,) * 4)[i] * 2 - k) // s + 1)
                            for i, (n, k, s) in enumerate(zip(_xs[2:], _attrs["kernel"],
                                                               _attrs.get("stride", (1, 1))))))
    case("max_pool2d_grad", _name, {"x": _x, "dy": randn(*_out)},
         [N("MaxPool", "x", out=["p", "ind"], kernel_shape=list(_attrs["kernel"]),
            strides=list(_attrs.get("stride", (1, 1))), pads=list(_attrs.get("pad", (0,) * 4))),
          N("Reshape", "ind", "flat", out="i"), N("Reshape", "dy", "flat", out="d"),
          N("ScatterElements", "zeros", "i", "d", axis=0, reduction="add", out="s"),
          N("Reshape", "s", "shape")],
         attrs=_attrs, consts={"flat": i64(-1), "zeros": np.zeros(_x.size, np.float32),
                               "shape": i64(*_xs)})

# ---- dropout_seeded (ratio 0 only: the mask comes from numpy's generator, not onnxruntime's)
case("dropout_seeded", "ratio0", {"x": randn(3, 4), "step": np.array(5, np.int64)},
     N("Identity", "x"), attrs={"ratio": 0.0})
