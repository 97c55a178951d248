"""Cases for the neural-network operators (see cases.py)."""

from __future__ import annotations

import numpy as np

from .cases import N, case, f32, randn, uniform


def _window(attrs: dict, pool: bool = False) -> dict:
    """ONNX attributes for Lamina's stride/pad/dilation (pads are [top, left, bottom, right]
    in both)."""
    out = {"strides": list(attrs.get("stride", (1, 1))), "pads": list(attrs.get("pad", (0,) * 4)),
           "dilations": list(attrs.get("dilation", (1, 1)))}
    if pool:
        out["kernel_shape"] = list(attrs["kernel"])
        out["ceil_mode"] = int(attrs.get("ceil_mode", False))
    return out


# ---- conv2d --------------------------------------------------------------------------------
CONV = [  # variant, x shape, weight shape, bias, attrs
    ("plain", (1, 3, 7, 7), (4, 3, 3, 3), False, {}),
    ("pad1_bias", (1, 3, 7, 7), (4, 3, 3, 3), True, {"pad": (1, 1, 1, 1)}),
    ("stride2_asym_pad", (2, 3, 9, 7), (5, 3, 3, 3), True, {"stride": (2, 2), "pad": (1, 0, 2, 1)}),
    ("stride23_dilation21", (1, 2, 11, 10), (3, 2, 3, 2), False,
     {"stride": (2, 3), "dilation": (2, 1)}),
    ("dilation2_pad2", (2, 2, 5, 5), (3, 2, 3, 3), True, {"dilation": (2, 2), "pad": (2, 2, 2, 2)}),
    ("groups2", (1, 4, 6, 6), (6, 2, 3, 3), True, {"groups": 2, "pad": (1, 1, 1, 1)}),
    ("groups2_nobias_stride", (2, 6, 7, 5), (4, 3, 2, 2), False, {"groups": 2, "stride": (2, 1)}),
    ("depthwise", (1, 3, 8, 8), (3, 1, 3, 3), True, {"groups": 3, "pad": (1, 1, 1, 1)}),
    ("depthwise_x2", (2, 3, 7, 6), (6, 1, 3, 3), False,
     {"groups": 3, "stride": (2, 2), "pad": (0, 1, 1, 0)}),
    ("pointwise", (1, 3, 5, 4), (5, 3, 1, 1), True, {}),
    ("kernel1x3", (1, 2, 4, 9), (3, 2, 1, 3), True, {"pad": (0, 1, 0, 1), "stride": (1, 2)}),
    ("kernel_equals_input", (1, 2, 3, 3), (4, 2, 3, 3), True, {}),
]
for _name, _xs, _ws, _bias, _attrs in CONV:
    _args = {"x": randn(*_xs), "w": randn(*_ws, scale=0.5)}
    if _bias:
        _args["b"] = randn(_ws[0])
    case("conv2d", _name, _args,
         N("Conv", *_args, group=_attrs.get("groups", 1), kernel_shape=list(_ws[2:]),
           **_window(_attrs)),
         attrs=_attrs, weights=tuple(k for k in _args if k != "x"), rtol=1e-5, atol=1e-5)
# (onnxruntime's CPU provider has no float64 Conv, so f64 conv2d is not peer-checked here)

# ---- pooling -------------------------------------------------------------------------------
POOL = [  # variant, x shape, attrs
    ("k2s2", (1, 3, 8, 8), {"kernel": (2, 2), "stride": (2, 2)}),
    ("k3s1_pad1", (2, 2, 6, 5), {"kernel": (3, 3), "pad": (1, 1, 1, 1)}),
    ("k3s2_pad1", (1, 2, 9, 9), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1, 1, 1)}),
    ("asym_pad", (1, 2, 5, 6), {"kernel": (2, 2), "pad": (0, 1, 1, 0)}),
    ("rect", (1, 2, 7, 9), {"kernel": (2, 3), "stride": (1, 2)}),
    ("ceil", (1, 2, 7, 7), {"kernel": (2, 2), "stride": (2, 2), "ceil_mode": True}),
    ("ceil_pad", (1, 2, 8, 8), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1, 1, 1),
                                "ceil_mode": True}),
    # the last window would start in the bottom/right padding: ceil_mode drops it
    ("ceil_drop_last", (1, 1, 5, 5), {"kernel": (3, 3), "stride": (3, 3), "pad": (1, 1, 1, 1),
                                      "ceil_mode": True}),
    ("dilation2", (1, 2, 7, 8), {"kernel": (2, 2), "dilation": (2, 2)}),
    ("dilation_ceil", (1, 1, 8, 8), {"kernel": (2, 2), "stride": (2, 2), "dilation": (2, 2),
                                     "ceil_mode": True}),
]
for _name, _xs, _attrs in POOL:
    _x = randn(*_xs)
    case("max_pool2d", _name, {"x": _x}, N("MaxPool", "x", **_window(_attrs, pool=True)),
         attrs=_attrs)
    for _cip in (True, False):
        if not _cip and not any(_attrs.get("pad", ())):
            continue  # without padding count_include_pad changes nothing
        case("avg_pool2d", f"{_name}_{'incl' if _cip else 'excl'}_pad", {"x": _x},
             N("AveragePool", "x", count_include_pad=int(_cip), **_window(_attrs, pool=True)),
             attrs={**_attrs, "count_include_pad": _cip})
case("max_pool2d", "f64", {"x": randn(1, 2, 5, 5, dtype=np.float64)},
     N("MaxPool", "x", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
     attrs={"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1, 1, 1)})
# (onnxruntime's CPU provider has no float64 AveragePool or GlobalAveragePool)
case("max_pool2d", "negative_input", {"x": -uniform(1, 2, 1, 1, 4, 4)},
     N("MaxPool", "x", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
     attrs={"kernel": (3, 3), "pad": (1, 1, 1, 1)})

for _name, _xs in [("nchw", (2, 3, 5, 5)), ("ncw", (2, 3, 7)), ("ncdhw", (1, 2, 3, 4, 5))]:
    case("global_avg_pool", _name, {"x": randn(*_xs)}, N("GlobalAveragePool", "x"))

# ---- normalisation -------------------------------------------------------------------------
for _name, _xs, _eps in [("nchw", (2, 3, 4, 5), 1e-5), ("nc", (4, 3), 1e-3),
                         ("ncl", (2, 3, 6), 0.1)]:
    c = _xs[1]
    _args = {"x": randn(*_xs, scale=2), "w": randn(c), "b": randn(c), "mean": randn(c),
             "var": uniform(0.2, 3, c)}
    case("batch_norm", _name, _args, N("BatchNormalization", *_args, epsilon=_eps),
         attrs={"eps": _eps}, weights=("w", "b", "mean", "var"))
_args = {"x": randn(3, 2, 4, 4) + 1, "w": randn(2), "b": randn(2), "mean": randn(2),
         "var": uniform(0.2, 3, 2)}
case("batch_norm", "training", _args,
     N("BatchNormalization", *_args, out=["y", "rm", "rv"], training_mode=1, momentum=0.9),
     attrs={"training": True}, weights=("w", "b", "mean", "var"), rtol=1e-5, atol=1e-5)

_args = {"x": randn(2, 3, 4, dtype=np.float64), "w": randn(3, dtype=np.float64),
         "b": randn(3, dtype=np.float64), "mean": randn(3, dtype=np.float64),
         "var": uniform(0.2, 3, 3, dtype=np.float64)}
case("batch_norm", "f64", _args, N("BatchNormalization", *_args), weights=("w", "b", "mean", "var"),
     rtol=1e-12, atol=1e-14)

L = randn(2, 3, 8, scale=3)
for _name, _axis, _scale, _bias, _eps in [
    ("last", -1, True, True, 1e-5), ("axis1", 1, True, True, 1e-5),
    ("axis_neg2", -2, True, False, 1e-5), ("axis0", 0, True, True, 1e-3),
    ("no_scale", -1, False, False, 1e-5), ("eps0.1", -1, True, True, 0.1),
]:
    _norm = L.shape[_axis % L.ndim:]
    _args = {"x": L}
    _consts = {}
    if _scale:
        _args["w"] = randn(*_norm)
    else:  # ONNX always scales: by ones here
        _consts["w"] = np.ones(_norm, np.float32)
    if _bias:
        _args["b"] = randn(*_norm)
    case("layer_norm", _name, _args,
         N("LayerNormalization", "x", "w", *(["b"] if _bias else []), axis=_axis, epsilon=_eps),
         attrs={"axis": _axis, "eps": _eps}, weights=tuple(k for k in _args if k != "x"),
         consts=_consts, rtol=1e-5, atol=1e-5)

case("dropout", "inference", {"x": randn(2, 3, 4)}, N("Dropout", "x", "ratio"),
     attrs={"ratio": 0.3}, consts={"ratio": f32(0.3)})
case("layer_norm", "f64", {"x": L.astype(np.float64), "w": randn(8, dtype=np.float64),
                           "b": randn(8, dtype=np.float64)},
     N("LayerNormalization", "x", "w", "b"), weights=("w", "b"), rtol=1e-12, atol=1e-13)
case("dropout", "f64", {"x": randn(2, 3, dtype=np.float64)}, N("Dropout", "x"))
case("dropout", "default", {"x": randn(5)}, N("Dropout", "x"))
case("detach", "basic", {"x": randn(2, 3, 4)}, N("Identity", "x"))
case("detach", "f64", {"x": randn(7, dtype=np.float64)}, N("Identity", "x"))
case("dropout", "training_ratio0", {"x": randn(3, 4)}, N("Dropout", "x", "ratio", "train"),
     attrs={"ratio": 0.0, "training": True},
     consts={"ratio": f32(0.0), "train": np.array(True)})

# ---- linear algebra ----------------------------------------------------------------------
_W, _B = randn(3, 5), randn(3)
case("linear", "gemm_bias", {"x": randn(4, 5), "w": _W, "b": _B},
     N("Gemm", "x", "w", "b", transB=1), weights=("w", "b"))
case("linear", "gemm_nobias", {"x": randn(4, 5), "w": _W}, N("Gemm", "x", "w", transB=1),
     weights=("w",))
case("linear", "batched_bias", {"x": randn(2, 4, 5), "w": _W, "b": _B},
     [N("Transpose", "w", out="wt"), N("MatMul", "x", "wt", out="xw"), N("Add", "xw", "b")],
     weights=("w", "b"))
case("linear", "vector", {"x": randn(5), "w": _W, "b": _B},
     [N("Transpose", "w", out="wt"), N("MatMul", "x", "wt", out="xw"), N("Add", "xw", "b")],
     weights=("w", "b"))
case("linear", "f64", {"x": randn(2, 5, dtype=np.float64), "w": randn(3, 5, dtype=np.float64)},
     N("Gemm", "x", "w", transB=1), weights=("w",), rtol=1e-12, atol=1e-12)

for _name, _sa, _sb in [("2d", (3, 4), (4, 5)), ("batch_2d", (2, 3, 4), (4, 5)),
                        ("broadcast", (2, 1, 3, 4), (5, 4, 6)), ("vec_mat", (4,), (4, 5)),
                        ("mat_vec", (3, 4), (4,)), ("dot", (4,), (4,)),
                        ("vec_batch", (4,), (2, 4, 3)), ("batch_vec", (2, 3, 4), (4,)),
                        ("batch_2d_left", (3, 4), (2, 4, 5))]:
    case("matmul", _name, {"a": randn(*_sa), "b": randn(*_sb)}, N("MatMul", "a", "b"),
         rtol=1e-5, atol=1e-5)
case("matmul", "f64", {"a": randn(2, 3, dtype=np.float64), "b": randn(3, 2, dtype=np.float64)},
     N("MatMul", "a", "b"), rtol=1e-12, atol=1e-12)

# ---- softmax -----------------------------------------------------------------------------
SM = randn(2, 3, 4, scale=3)
for _op, _onnx in (("softmax", "Softmax"), ("log_softmax", "LogSoftmax")):
    for _axis in (-1, 0, 1):
        case(_op, f"axis{_axis}", {"x": SM}, N(_onnx, "x", axis=_axis),
             attrs={} if _axis == -1 else {"axis": _axis})
    case(_op, "rank1_large", {"x": f32([1000, 999, -1000, 0])}, N(_onnx, "x"))
    case(_op, "f64", {"x": SM.astype(np.float64)}, N(_onnx, "x", axis=1), attrs={"axis": 1},
         rtol=1e-12, atol=1e-14)
