"""ONNX import: each mapped operator and attribute variant against onnxruntime, ONNX's own
conformance data, the registry's operator cases, and the importer's errors and warnings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import compiler  # noqa: E402
import ir  # noqa: E402
from backends.reference import run  # noqa: E402
from compiler import OnnxImportError, OnnxImportWarning, load_onnx  # noqa: E402
from compiler.frontends.onnx.builder import widened  # noqa: E402

ml_dtypes = pytest.importorskip("ml_dtypes")  # onnx's own dependency: bfloat16 in numpy

from .onnx_util import compare, info, lamina_run, model, ort_run  # noqa: E402

N = helper.make_node
_rng = np.random.default_rng(5)


def randn(*shape, dtype=np.float32):
    return _rng.standard_normal(shape).astype(dtype)


def i64(*v):
    return np.array(v, np.int64)


# ---- operator cases: (id, model, feeds); each runs in Lamina and in onnxruntime --------------
CASES: list = []


def case(id, nodes, inputs, inits=None, opset=17, outputs=("y",), rtol=1e-5, atol=1e-5,
         **kw):
    nodes = nodes if isinstance(nodes, list) else [nodes]
    CASES.append(pytest.param(model(nodes, inputs, outputs, inits, opset, **kw), inputs,
                              rtol, atol, id=id))


X4, X3 = randn(2, 3, 7, 6), randn(2, 4, 9)
W3x3, W1d = randn(4, 3, 3, 3), randn(6, 4, 3)
B4 = randn(4)
for name, attrs in {
    "plain": {}, "pads": {"pads": [1, 0, 2, 1]}, "strides": {"strides": [2, 3], "pads": [1] * 4},
    "dilations": {"dilations": [2, 1], "pads": [2, 1, 2, 1]},
    "same_upper": {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
    "same_lower": {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
    "valid": {"auto_pad": "VALID"},
}.items():
    case(f"Conv-{name}", N("Conv", ["x", "w", "b"], ["y"], **attrs), {"x": X4},
         {"w": W3x3, "b": B4})
case("Conv-groups-nobias", N("Conv", ["x", "w"], ["y"], group=3), {"x": randn(1, 6, 5, 5)},
     {"w": randn(9, 2, 3, 3)})
case("Conv-depthwise", N("Conv", ["x", "w", "b"], ["y"], group=3, pads=[1] * 4),
     {"x": X4}, {"w": randn(3, 1, 3, 3), "b": randn(3)})
case("Conv-runtime-weight", N("Conv", ["x", "w"], ["y"], pads=[1] * 4),
     {"x": X4, "w": W3x3})
case("Conv-1d", N("Conv", ["x", "w"], ["y"], pads=[1, 2], strides=[2], dilations=[2]),
     {"x": X3}, {"w": W1d})
case("Conv-1d-groups-same", N("Conv", ["x", "w", "b"], ["y"], group=2, auto_pad="SAME_UPPER"),
     {"x": X3}, {"w": randn(6, 2, 4), "b": randn(6)})
for name, attrs in {
    "plain": {}, "strides": {"strides": [2, 2]},
    "pads-outpad": {"strides": [2, 3], "pads": [1, 0, 1, 2], "output_padding": [1, 1]},
    "dilations": {"dilations": [2, 2], "pads": [1, 1, 1, 1]},
    "groups": {"group": 3, "strides": [2, 1]},
    "output_shape": {"strides": [2, 2], "output_shape": [15, 13]},
    "output_shape-wider": {"strides": [2, 2], "output_shape": [16, 14]},  # negative pads
    "same_upper": {"strides": [2, 2], "auto_pad": "SAME_UPPER"},
}.items():
    w = randn(3, 1 if name == "groups" else 2, 3, 3)
    case(f"ConvTranspose-{name}", N("ConvTranspose", ["x", "w", "b"], ["y"], **attrs),
         {"x": randn(1, 3, 7, 6)}, {"w": w, "b": randn(w.shape[1] * attrs.get("group", 1))})
case("ConvTranspose-1d", N("ConvTranspose", ["x", "w"], ["y"], strides=[3], pads=[1, 0]),
     {"x": X3}, {"w": randn(4, 2, 4)})

for name, attrs in {
    "plain": {"kernel_shape": [3, 3]},
    "pads-strides": {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1]},
    "ceil": {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    "same_upper": {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    "wide-pads": {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1]},
}.items():
    case(f"MaxPool-{name}", N("MaxPool", ["x"], ["y"], **attrs), {"x": X4})
    case(f"AveragePool-{name}", N("AveragePool", ["x"], ["y"], **attrs), {"x": X4})
    case(f"AveragePool-{name}-incl", N("AveragePool", ["x"], ["y"], count_include_pad=1,
                                        **attrs), {"x": X4})
case("MaxPool-dilations", N("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2]),
     {"x": X4})
case("MaxPool-1d", N("MaxPool", ["x"], ["y"], kernel_shape=[3], strides=[2], pads=[1, 1]),
     {"x": X3})
case("AveragePool-1d", N("AveragePool", ["x"], ["y"], kernel_shape=[2]), {"x": X3})
case("GlobalAveragePool", N("GlobalAveragePool", ["x"], ["y"]), {"x": X4})
case("GlobalMaxPool", N("GlobalMaxPool", ["x"], ["y"]), {"x": X4})

BN = {"s": randn(3), "b": randn(3), "m": randn(3), "v": np.abs(randn(3)) + 0.5}
case("BatchNormalization", N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                             epsilon=1e-3), {"x": X4}, BN)
case("BatchNormalization-opset9-2d", N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"]),
     {"x": randn(5, 3)}, BN, opset=9)
case("InstanceNormalization", N("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-4),
     {"x": X4}, {"s": BN["s"], "b": BN["b"]})
case("LRN", N("LRN", ["x"], ["y"], size=3, alpha=1e-3, beta=0.7, bias=1.5),
     {"x": randn(2, 6, 4, 4)})
case("LayerNormalization", N("LayerNormalization", ["x", "s", "b"], ["y"], epsilon=1e-3),
     {"x": X3}, {"s": randn(9), "b": randn(9)})
case("LayerNormalization-axis1-stats", N("LayerNormalization", ["x", "s"],
                                         ["y", "mean", "inv"], axis=1),
     {"x": X3}, {"s": randn(4, 9)}, outputs=("y", "mean", "inv"))
case("LayerNormalization-broadcast-scale", N("LayerNormalization", ["x", "s"], ["y"], axis=1),
     {"x": X3}, {"s": randn(1, 9)})
case("Dropout-opset12-mask", N("Dropout", ["x", "r"], ["y", "mask"]), {"x": X3},
     {"r": np.float32(0.3)}, opset=12, outputs=("y", ("mask", np.bool_)))
case("Dropout-opset10", N("Dropout", ["x"], ["y"], ratio=0.2), {"x": X3}, opset=10)

A, Bm = randn(4, 5), randn(5, 3)
for name, attrs, c in [
    ("plain", {}, randn(3)), ("transA-transB", {"transA": 1, "transB": 1}, randn(4, 3)),
    ("alpha-beta", {"alpha": 0.5, "beta": 2.0}, randn(1, 3)), ("scalar-C", {}, randn(1)),
    ("beta0", {"beta": 0.0}, randn(3)), ("noC", {}, None),
]:
    a = A.T.copy() if attrs.get("transA") else A
    w = Bm.T.copy() if attrs.get("transB") else Bm
    case(f"Gemm-{name}", N("Gemm", ["a", "w"] + (["c"] if c is not None else []), ["y"],
                           **attrs), {"a": a}, {"w": w, **({"c": c} if c is not None else {})})
case("Gemm-runtime-B", N("Gemm", ["a", "w", "c"], ["y"], transB=1), {"a": A, "w": Bm.T.copy()},
     {"c": randn(3)})
case("MatMul-weight", N("MatMul", ["x", "w"], ["y"]), {"x": X3}, {"w": randn(9, 5)})
case("MatMul-batched", N("MatMul", ["x", "w"], ["y"]), {"x": X3, "w": randn(2, 9, 3)})
case("MatMul-vector", N("MatMul", ["x", "w"], ["y"]), {"x": X3}, {"w": randn(9)})

U = randn(2, 3, 4)
for op, attrs in [("Relu", {}), ("LeakyRelu", {"alpha": 0.2}), ("Elu", {"alpha": 0.7}),
                  ("Selu", {}), ("Selu", {"alpha": 1.5, "gamma": 2.0}), ("Sigmoid", {}),
                  ("Tanh", {}), ("Softplus", {}), ("Softsign", {}), ("Erf", {}), ("Exp", {}),
                  ("Neg", {}), ("Abs", {}), ("Reciprocal", {}), ("HardSigmoid", {}),
                  ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("HardSwish", {}),
                  ("Mish", {}), ("Identity", {})]:
    case(f"{op}-{len(attrs)}", N(op, ["x"], ["y"], **attrs), {"x": U}, opset=18)
case("Log", N("Log", ["x"], ["y"]), {"x": np.abs(U) + 0.1})
case("Sqrt", N("Sqrt", ["x"], ["y"]), {"x": np.abs(U)})
case("Gelu-opset20", N("Gelu", ["x"], ["y"]), {"x": U}, opset=20)
case("Gelu-tanh", N("Gelu", ["x"], ["y"], approximate="tanh"), {"x": U}, opset=20)
case("PRelu-scalar", N("PRelu", ["x", "s"], ["y"]), {"x": X4}, {"s": np.float32([0.2])})
case("PRelu-channels", N("PRelu", ["x", "s"], ["y"]), {"x": X4}, {"s": randn(3, 1, 1)})
case("Clip-opset6", N("Clip", ["x"], ["y"], min=-0.5, max=0.7), {"x": U}, opset=6)
case("Clip-min-only", N("Clip", ["x", "lo"], ["y"]), {"x": U}, {"lo": np.float32(-0.1)})
case("Clip-max-only", N("Clip", ["x", "", "hi"], ["y"]), {"x": U}, {"hi": np.float32(0.1)})
case("Clip-int", N("Clip", ["x", "lo", "hi"], ["y"]), {"x": i64(-5, 0, 3, 9)},
     {"lo": np.int64(-2), "hi": np.int64(4)}, outputs=(("y", np.int64),))
for op in ("Softmax", "LogSoftmax"):
    case(f"{op}-opset11-axis1", N(op, ["x"], ["y"], axis=1), {"x": X4}, opset=11)
    case(f"{op}-opset11-default", N(op, ["x"], ["y"]), {"x": X3}, opset=11)
    case(f"{op}-opset11-last", N(op, ["x"], ["y"], axis=-1), {"x": X3}, opset=11)
    case(f"{op}-opset13-axis1", N(op, ["x"], ["y"], axis=1), {"x": X4}, opset=13)

for op in ("Add", "Sub", "Mul", "Div", "Max", "Min"):
    case(f"{op}-broadcast", N(op, ["a", "b"], ["y"]), {"a": randn(2, 3, 4), "b": randn(3, 1)})
case("Pow", N("Pow", ["a", "b"], ["y"]), {"a": np.abs(U) + 0.1, "b": randn(4)})
case("Pow-int-exponent", N("Pow", ["a", "e"], ["y"]), {"a": U}, {"e": np.int64(3)})
for op in ("Sum", "Max", "Min", "Mean"):
    case(f"{op}-variadic", N(op, ["a", "b", "c"], ["y"]),
         {"a": randn(2, 3), "b": randn(3), "c": randn(2, 1)})
case("Sum-single", N("Sum", ["a"], ["y"]), {"a": U})

for op in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2",
           "ReduceSumSquare", "ReduceLogSumExp"):
    case(f"{op}-attr", N(op, ["x"], ["y"], axes=[1, -1], keepdims=0), {"x": U}, opset=11)
    case(f"{op}-input-keep", N(op, ["x", "ax"], ["y"]), {"x": U}, {"ax": i64(0, 2)}, opset=18)
    case(f"{op}-all", N(op, ["x"], ["y"], keepdims=0), {"x": U}, opset=18)
case("ReduceLogSum", N("ReduceLogSum", ["x"], ["y"], axes=[1]), {"x": np.abs(U)}, opset=13)
case("ReduceSum-opset13-noop", N("ReduceSum", ["x"], ["y"], noop_with_empty_axes=1), {"x": U},
     opset=13)

case("Reshape-zero-minus1", N("Reshape", ["x", "s"], ["y"]), {"x": X4}, {"s": i64(0, -1, 6)})
case("Reshape-allowzero", N("Reshape", ["x", "s"], ["y"], allowzero=1), {"x": X3},
     {"s": i64(8, 9)}, opset=14)
for axis in (0, 2, -1):
    case(f"Flatten-{axis}", N("Flatten", ["x"], ["y"], axis=axis), {"x": X4}, opset=13)
case("Transpose-default", N("Transpose", ["x"], ["y"]), {"x": X4})
case("Transpose-perm", N("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1]), {"x": X4})
case("Squeeze-opset11", N("Squeeze", ["x"], ["y"], axes=[1, -1]), {"x": randn(2, 1, 3, 1)},
     opset=11)
case("Squeeze-opset13-all", N("Squeeze", ["x"], ["y"]), {"x": randn(2, 1, 3, 1)}, opset=13)
case("Unsqueeze-opset11", N("Unsqueeze", ["x"], ["y"], axes=[0, -1]), {"x": U}, opset=11)
case("Unsqueeze-opset13", N("Unsqueeze", ["x", "ax"], ["y"]), {"x": U}, {"ax": i64(1, 4)})
case("Concat-mixed", N("Concat", ["a", "c", "b"], ["y"], axis=-1), {"a": U, "b": randn(2, 3, 1)},
     {"c": randn(2, 3, 2)})
case("Split-opset11", N("Split", ["x"], ["y0", "y1"], axis=2, split=[1, 3]), {"x": U},
     opset=11, outputs=("y0", "y1"))
case("Split-opset13-input", N("Split", ["x", "s"], ["y0", "y1", "y2"], axis=1), {"x": U},
     {"s": i64(1, 1, 1)}, opset=13, outputs=("y0", "y1", "y2"))
case("Split-opset18-uneven", N("Split", ["x"], ["y0", "y1", "y2"], axis=0, num_outputs=3),
     {"x": randn(7, 2)}, opset=18, outputs=("y0", "y1", "y2"))
case("Slice-opset9", N("Slice", ["x"], ["y"], starts=[1, 0], ends=[3, -1], axes=[1, 3]),
     {"x": X4}, opset=9)
case("Slice-steps", N("Slice", ["x", "s", "e", "a", "st"], ["y"]), {"x": X4},
     {"s": i64(-1, 5, 0), "e": i64(-100, 0, 99), "a": i64(3, 2, 1), "st": i64(-2, -1, 2)})
case("Slice-clamp", N("Slice", ["x", "s", "e"], ["y"]), {"x": U},
     {"s": i64(-10, 1), "e": i64(10**10, 2**62)})
case("Gather-constant-indices", N("Gather", ["x", "i"], ["y"], axis=2), {"x": X4},
     {"i": i64(-1, 0, 3)})
case("Gather-scalar-index", N("Gather", ["x", "i"], ["y"], axis=1), {"x": X4}, {"i": i64(2)[0]})
case("Gather-embedding", N("Gather", ["t", "ids"], ["y"]), {"ids": i64([[1, 4], [-1, 0]])},
     {"t": randn(5, 3)})
case("Pad-opset9", N("Pad", ["x"], ["y"], pads=[0, 1, 2, 0, 0, 2, 1, 0], value=1.5), {"x": X4},
     opset=9)
for mode in ("constant", "reflect", "edge"):
    case(f"Pad-{mode}", N("Pad", ["x", "p"], ["y"], mode=mode), {"x": X4},
         {"p": i64(0, 0, 2, 1, 0, 0, 1, 3)})
case("Pad-negative", N("Pad", ["x", "p", "v"], ["y"]), {"x": X4},
     {"p": i64(0, 0, -2, 1, 0, 0, 1, -3), "v": np.float32(-2)})
case("Pad-axes", N("Pad", ["x", "p", "", "a"], ["y"], mode="edge"), {"x": X4},
     {"p": i64(1, 2, 3, 0), "a": i64(-1, 1)}, opset=18)
case("Pad-wrap", N("Pad", ["x", "p"], ["y"], mode="wrap"), {"x": X4},
     {"p": i64(0, 0, 2, 1, 0, 0, 1, 3)}, opset=19)
case("Tile", N("Tile", ["x", "r"], ["y"]), {"x": U}, {"r": i64(2, 1, 3)})
case("Expand", N("Expand", ["x", "s"], ["y"]), {"x": randn(3, 1)}, {"s": i64(2, 1, 4)})
case("Expand-bool", N("Expand", ["x", "s"], ["y"]), {"x": np.array([[True], [False]])},
     {"s": i64(2, 3)}, outputs=(("y", np.bool_),))
case("Cast", [N("Cast", ["x"], ["i"], to=TensorProto.INT32),
              N("Cast", ["i"], ["y"], to=TensorProto.DOUBLE)], {"x": U * 5},
     outputs=(("y", np.float64),))
case("CastLike", N("CastLike", ["x", "t"], ["y"]), {"x": U * 5}, {"t": i64(1)},
     outputs=(("y", np.int64),))
F4 = np.array([[1.0, np.nan, -np.inf], [np.inf, 0.0, -2.0]], np.float32)
for op in ("Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"):
    case(f"{op}", N(op, ["a", "b"], ["y"]), {"a": F4, "b": np.float32([1, 0, -2])},
         outputs=(("y", np.bool_),))
BOOLS = {"a": np.array([[True, False], [True, True]]), "b": np.array([False, True])}
for op in ("And", "Or", "Xor"):
    case(op, N(op, ["a", "b"], ["y"]), BOOLS, outputs=(("y", np.bool_),))
case("Not", N("Not", ["a"], ["y"]), {"a": BOOLS["a"]}, outputs=(("y", np.bool_),))
case("IsNaN", N("IsNaN", ["a"], ["y"]), {"a": F4}, outputs=(("y", np.bool_),))
case("IsInf", N("IsInf", ["a"], ["y"], detect_negative=0), {"a": F4},
     outputs=(("y", np.bool_),))
case("Where", N("Where", ["c", "a", "b"], ["y"]), {"c": BOOLS["a"], "a": randn(2, 2)},
     {"b": randn(2)})
case("OneHot", N("OneHot", ["i", "d", "v"], ["y"], axis=1), {"i": i64([0, 3], [-1, 2])},
     {"d": np.float32(4), "v": np.float32([-1, 5])})
case("Trilu", N("Trilu", ["x", "k"], ["y"], upper=0), {"x": randn(2, 4, 5)}, {"k": i64(1)[0]},
     opset=14)
case("SoftmaxCrossEntropyLoss", N("SoftmaxCrossEntropyLoss", ["x", "t"], ["y", "logp"]),
     {"x": randn(4, 5), "t": i64(0, 4, 2, 1)}, outputs=("y", "logp"))

case("GatherElements", N("GatherElements", ["x", "i"], ["y"], axis=1), {"x": randn(3, 4, 2)},
     {"i": i64([[0, -1], [3, 1], [2, 2]]).reshape(3, 2, 1).repeat(2, axis=2)})
case("GatherElements-runtime", N("GatherElements", ["x", "i"], ["y"], axis=0),
     {"x": randn(4, 3), "i": np.array([[0, 3, 1], [2, -2, 0]], np.int64)})
case("CumSum", N("CumSum", ["x", "a"], ["y"]), {"x": randn(2, 5, 3)}, {"a": i64(1)[0]})
case("CumSum-exclusive-reverse", N("CumSum", ["x", "a"], ["y"], exclusive=1, reverse=1),
     {"x": randn(2, 5)}, {"a": i64(-1)[0]})
case("Hardmax", N("Hardmax", ["x"], ["y"], axis=1), {"x": randn(2, 4, 3)}, opset=13)
case("ArgMax-last", N("ArgMax", ["x"], ["y"], axis=1, select_last_index=1),
     {"x": np.round(randn(3, 4))}, outputs=(("y", np.int64),))
case("ArgMin", N("ArgMin", ["x"], ["y"], axis=0, keepdims=0), {"x": randn(3, 4)},
     outputs=(("y", np.int64),))
case("LpPool", N("LpPool", ["x"], ["y"], kernel_shape=[2, 3], pads=[1, 1, 0, 1]), {"x": X4})
case("LpNormalization", N("LpNormalization", ["x"], ["y"], axis=1, p=1), {"x": U})
for name, attrs, extra in [
    ("nearest-scales", {}, {"scales": np.float32([1, 1, 2, 1.5])}),
    ("linear-sizes", {"mode": "linear"}, {"sizes": i64(2, 3, 4, 11)}),
    ("cubic-align", {"mode": "cubic", "coordinate_transformation_mode": "align_corners"},
     {"scales": np.float32([1, 1, 1.6, 1.7])}),
    ("cubic-exclude", {"mode": "cubic", "exclude_outside": 1, "cubic_coeff_a": -0.5},
     {"scales": np.float32([1, 1, 2, 1])}),
    ("linear-pytorch-down", {"mode": "linear",
                             "coordinate_transformation_mode": "pytorch_half_pixel"},
     {"scales": np.float32([1, 1, 0.5, 0.5])}),
    ("nearest-ceil-asym", {"nearest_mode": "ceil",
                           "coordinate_transformation_mode": "asymmetric"},
     {"sizes": i64(2, 3, 10, 4)}),
]:
    names = ["x", "", "scales"] if "scales" in extra else ["x", "", "", "sizes"]
    case(f"Resize-{name}", N("Resize", names, ["y"], **attrs), {"x": X4}, extra, opset=13)
case("Upsample-opset9", N("Upsample", ["x", "s"], ["y"]), {"x": X4},
     {"s": np.float32([1, 1, 2, 3])}, opset=9)

RNN_X = randn(5, 2, 3)  # [seq, batch, input]


def _rnn_case(op, gates, name, dirs=1, extra_inputs=(), **attrs):
    h = 4
    w, r = randn(dirs, gates * h, 3), randn(dirs, gates * h, h)
    inits = {"w": w, "r": r, "b": randn(dirs, 2 * gates * h)}
    names = ["x", "w", "r", "b"]
    for extra in extra_inputs:  # sequence_lens, initial_h, (initial_c, P)
        shape = {"h0": (dirs, 2, h), "c0": (dirs, 2, h), "p": (dirs, 3 * h)}.get(extra)
        inits[extra] = np.full(2, 5, np.int32) if extra == "lens" else randn(*shape)
        names.append(extra)
    x = RNN_X
    outs = ("y", "yh", "yc") if op == "LSTM" else ("y", "yh")
    names = [*names[:4], *[n if n in names else "" for n in ("lens", "h0", "c0", "p")]]
    while names[-1] == "":
        names.pop()
    case(f"{op}-{name}", N(op, names, list(outs), hidden_size=h, **attrs), {"x": x}, inits,
         outputs=outs, opset=14)


for op, gates in (("RNN", 1), ("GRU", 3), ("LSTM", 4)):
    _rnn_case(op, gates, "forward")
    _rnn_case(op, gates, "bidirectional-h0", dirs=2, direction="bidirectional",
              extra_inputs=("lens", "h0"))
    _rnn_case(op, gates, "reverse-clip", direction="reverse", clip=0.7)
_rnn_case("RNN", 1, "relu", activations=["Relu"])
_rnn_case("GRU", 3, "linear-before-reset", linear_before_reset=1, extra_inputs=("h0",))
_rnn_case("LSTM", 4, "peepholes-c0", extra_inputs=("h0", "c0", "p"))
_rnn_case("LSTM", 4, "input-forget-activations", input_forget=1,
          activations=["HardSigmoid", "Softsign", "Tanh"], activation_alpha=[0.3],
          activation_beta=[0.4])

# operators ONNX defines as functions: Celu and MeanVarianceNormalization go through the
# function; ThresholdedRelu, Shrink and GroupNormalization have table entries (ops/misc.py)
for op, attrs, opset in [("Celu", {"alpha": 0.7}, 12), ("ThresholdedRelu", {"alpha": 0.3}, 10),
                         ("Shrink", {"lambd": 0.4, "bias": 0.1}, 9),
                         ("MeanVarianceNormalization", {}, 13)]:
    case(f"function-{op}", N(op, ["x"], ["y"], **attrs), {"x": X4}, opset=opset)
case("function-GroupNormalization", N("GroupNormalization", ["x", "s", "b"], ["y"],
                                      num_groups=2), {"x": randn(2, 4, 3, 3)},
     {"s": randn(4), "b": randn(4)}, opset=21)
for mode in ("CRD", "DCR"):
    case(f"DepthToSpace-{mode}", N("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode),
         {"x": randn(1, 8, 2, 3)}, opset=13)
case("SpaceToDepth", N("SpaceToDepth", ["x"], ["y"], blocksize=2), {"x": randn(1, 2, 4, 6)})
case("If-constant-condition", [
    N("If", ["c"], ["y"], then_branch=helper.make_graph(
        [N("Mul", ["x", "x"], ["t"])], "then", [], [info("t", np.float32)]),
      else_branch=helper.make_graph([N("Neg", ["x"], ["e"])], "else", [],
                                    [info("e", np.float32)]))],
    {"x": U}, {"c": np.bool_(False)})

# constant subgraphs: the shape arithmetic PyTorch exports for x.view(x.size(0), -1)
SHAPE_NODES = [
    N("Shape", ["x"], ["shape"]), N("Constant", [], ["zero"], value=numpy_helper.from_array(
        i64(0)[0])),
    N("Gather", ["shape", "zero"], ["batch"], axis=0),
    N("Unsqueeze", ["batch", "ax0"], ["batch1"]),
    N("Constant", [], ["minus1"], value_ints=[-1]),
    N("Concat", ["batch1", "minus1"], ["target"], axis=0),
    N("Reshape", ["x", "target"], ["flat"]),
    N("ConstantOfShape", ["cshape"], ["ones"], value=numpy_helper.from_array(np.float32([2]))),
    N("Mul", ["flat", "ones"], ["y"]),
]
case("shape-arithmetic", SHAPE_NODES, {"x": X4}, {"ax0": i64(0), "cshape": i64(1, 126)})
case("Range-Where-Equal-folded", [
    N("Range", ["s", "l", "d"], ["r"]), N("Equal", ["r", "two"], ["eq"]),
    N("Where", ["eq", "ten", "r"], ["w"]), N("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
    N("Add", ["x", "wf"], ["y"])], {"x": randn(2, 4)},
    {"s": i64(0)[0], "l": i64(4)[0], "d": i64(1)[0], "two": i64(2)[0], "ten": i64(10)[0]})


@pytest.mark.parametrize("m, feeds, rtol, atol", CASES)
def test_operator_matches_onnxruntime(m, feeds, rtol, atol):
    compare(lamina_run(m, feeds), ort_run(m, feeds), rtol, atol)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_recurrent_batch_first_layout(op):
    """layout=1 (onnxruntime refuses it): the same numbers as layout 0, transposed."""
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[op]
    inits = {"w": randn(2, gates * 4, 3), "r": randn(2, gates * 4, 4)}
    outs = ["y", "yh", "yc"][: 3 if op == "LSTM" else 2]
    attrs = dict(hidden_size=4, direction="bidirectional")
    plain = model([N(op, ["x", "w", "r"], outs, **attrs)], {"x": RNN_X}, outs, inits, 14)
    first = model([N(op, ["x", "w", "r"], outs, layout=1, **attrs)],
                  {"x": RNN_X.transpose(1, 0, 2)}, outs, inits, 14)
    expected = ort_run(plain, {"x": RNN_X})
    actual = lamina_run(first, {"x": RNN_X.transpose(1, 0, 2).copy()})
    compare(actual, [expected[0].transpose(2, 0, 1, 3),
                     *[e.transpose(1, 0, 2) for e in expected[1:]]])


def test_legacy_broadcast_with_axis():
    """Opset 6 Add with broadcast=1, axis=1 (onnxruntime no longer runs opset 6)."""
    a, b = U, randn(3)
    m = model([N("Add", ["a", "b"], ["y"], broadcast=1, axis=1)], {"a": a}, inits={"b": b},
              opset=6)
    compare(lamina_run(m, {"a": a}), [a + b.reshape(1, 3, 1)])


def test_folded_constants_leave_no_nodes():
    g = load_onnx(model(SHAPE_NODES, {"x": X4}, inits={"ax0": i64(0), "cshape": i64(1, 126)}))
    assert [n.op for n in g.nodes] == ["reshape", "mul"]  # Shape/Gather/Concat/... folded
    (ones,) = g.params.values()
    assert ones.name.startswith("ones")  # weights keep their ONNX names


def test_matmul_with_a_weight_becomes_linear():
    g = load_onnx(model([N("MatMul", ["x", "w"], ["y"])], {"x": X3}, inits={"w": randn(9, 5)}))
    assert [n.op for n in g.nodes] == ["linear"]
    assert g.params[g.nodes[0].inputs[1].name].shape == (5, 9)


# ---- the registry's own operator cases, imported from their ONNX peers ---------------------
def _registry_cases():
    from tests.ir.cases import CASES as REG

    for c in REG:
        marks = []
        if c.id == "batch_norm-training":
            marks = [pytest.mark.skip(reason="training-mode batch norm imports for inference")]
        if c.op == "max_pool2d_grad":  # a gradient: no forward ONNX operator
            marks = [pytest.mark.skip(reason="its ONNX peer uses MaxPool's indices")]
        yield pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("c", list(_registry_cases()))
def test_registry_case_imports(c):
    g = c.graph()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OnnxImportWarning)  # dropout cases in training mode
        imported = load_onnx(c.onnx_model(g), input_shapes=[a.shape for a in c.inputs])
    # int8, float16, ... travel widened: fed so, and read back narrowed, as compile() does
    fed = [a.astype(widened(a.dtype)) for a in c.inputs]
    expected = run(g, *c.inputs)
    got = [a.astype(e.dtype) if a.dtype == widened(e.dtype) else a
           for a, e in zip(run(imported, *fed), expected)]
    compare(got, expected, max(c.rtol, 1e-5), max(c.atol, 1e-6), c.id)


# ---- errors and warnings -------------------------------------------------------------------
def test_unsupported_operators_are_all_listed():
    m = model([N("Relu", ["x"], ["a"]), N("TfIdfVectorizer", ["a"], ["b"], name="tfidf1"),
               N("Multinomial", ["b"], ["c"], name="draw"),
               N("TfIdfVectorizer", ["c"], ["d"], name="tfidf2"),
               N("NonZero", ["d"], ["y"], name="nz")], {"x": U})
    with pytest.raises(OnnxImportError) as e:
        load_onnx(m)
    msg = str(e.value)
    assert "(Multinomial, TfIdfVectorizer)" in msg
    for name in ("tfidf1", "draw", "tfidf2"):
        assert f"'{name}'" in msg
    assert {(op, name) for op, name, _ in e.value.unsupported} == {
        ("TfIdfVectorizer", "tfidf1"), ("Multinomial", "draw"), ("TfIdfVectorizer", "tfidf2")}
    assert isinstance(e.value, ir.LaminaError)
    m = model([N("NonZero", ["x"], ["y"], name="nz")], {"x": U})  # folds constants only
    with pytest.raises(OnnxImportError, match=r"NonZero \(node 'nz'\): input 0 of NonZero "
                                              "is computed at run time"):
        load_onnx(m)


def test_unsupported_attribute_and_dtype_name_the_node():
    m = model([N("Conv", ["x", "w"], ["y"], name="conv4d")], {"x": randn(1, 2, 3, 3, 3, 3)},
              inits={"w": randn(1, 2, 1, 1, 1, 1)})
    with pytest.raises(OnnxImportError, match=r"conv4d.*4-D convolution"):
        load_onnx(m)
    m = model([N("Relu", ["x"], ["y"])], {"x": np.zeros(3, np.complex64)})
    with pytest.raises(OnnxImportError, match=r"input 'x' has element type complex64"):
        load_onnx(m)


def test_corrupt_and_truncated_files(tmp_path):
    m = model([N("Relu", ["x"], ["y"])], {"x": U}, inits={"unused": randn(64, 64)})
    data = m.SerializeToString()
    for name, content in {"truncated": data[: len(data) // 2], "garbage": b"\x0f\xff" * 40,
                          "empty": b""}.items():
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(content)
        with pytest.raises(OnnxImportError, match=r"corrupt|truncated|no graph"):
            load_onnx(path)
        with pytest.raises(ir.LaminaError):
            compiler.compile(str(path))
    with pytest.raises(OnnxImportError, match="no such file"):
        load_onnx(tmp_path / "missing.onnx")


def test_dynamic_batch(tmp_path):
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])
    graph = helper.make_graph([N("Flatten", ["x"], ["f"]), N("MatMul", ["f", "w"], ["y"])], "g",
                              [x_info], [info("y", np.float32)],
                              [numpy_helper.from_array(randn(6, 2), "w")])
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    for batch in (1, 5):
        x = randn(batch, 6)
        fn = compiler.compile(str(path), x)
        compare([fn(x)], ort_run(onnx.load(path), {"x": x}))
    assert load_onnx(path, {"x": (3, 6)}).inputs[0].shape == (3, 6)
    with pytest.raises(OnnxImportError, match=r"symbolic dimension.*'batch'"):
        load_onnx(path)
    with pytest.raises(OnnxImportError, match="dimension 1 is 6"):
        load_onnx(path, [(2, 7)])


def test_old_style_initialisers_listed_as_inputs():
    w = randn(4, 3, 3, 3)
    graph = helper.make_graph([N("Conv", ["x", "w"], ["y"])], "g",
                              [info("x", X4), info("w", w)], [info("y", np.float32)],
                              [numpy_helper.from_array(w, "w")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=3)
    g = load_onnx(m)
    assert [v.name for v in g.inputs] == ["x"] and list(g.params) == ["w"]
    compare(run(g, X4), ort_run(m, {"x": X4}))


def test_training_leftovers_warn_with_node_names():
    m = model([N("Dropout", ["x", "r", "t"], ["d"], name="drop1"),
               N("BatchNormalization", ["d", "s", "b", "m", "v"], ["y"], name="bn1",
                 training_mode=1)], {"x": X4},
              inits={"r": np.float32(0.5), "t": np.bool_(True), **BN}, opset=15)
    with pytest.warns(OnnxImportWarning, match=r"Dropout 'drop1'.*BatchNormalization 'bn1'"):
        g = load_onnx(m)
    assert [n.op for n in g.nodes] == ["batch_norm"]  # dropout is the identity
    assert not g.nodes[0].attrs["training"]


def test_compile_onnx_path(tmp_path):
    m = model([N("Conv", ["x", "w", "b"], ["c"], pads=[1] * 4), N("Relu", ["c"], ["y"])],
              {"x": X4}, inits={"w": W3x3, "b": B4})
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    fn = compiler.compile(str(path), X4)
    compare([fn(X4)], ort_run(m, {"x": X4}))


# ---- ONNX's conformance data ---------------------------------------------------------------
# The node cases come from the generators onnx ships (onnx.backend.test.case.node), the very
# code that writes onnx/backend/test/data/node/*/ (this onnx wheel ships the generators, not
# the files). Each case runs when the importer maps every operator in it (by its table, or
# through the function ONNX defines the operator by); cases that then need something Lamina
# lacks (a dtype, a run-time value where Lamina needs a constant, 3-D windows) are skipped
# with the importer's own reason.
def _node_cases():
    from onnx.backend.test.case.node import collect_testcases

    from compiler.frontends.onnx import importable

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    default = [c for c in cases if all(n.domain in ("", "ai.onnx") for n in c.model.graph.node)]
    selected = [c for c in default if all(importable(n.op_type) for n in c.model.graph.node)]
    return selected, len(cases), len(default)


# all node cases, and those of the default domain (no ai.onnx.ml, preview.training, ...)
NODE_CASES, NODE_TOTAL, NODE_DEFAULT_TOTAL = _node_cases()
KNOWN = {  # case -> why Lamina's answer differs from the stored one
    **dict.fromkeys(["test_resize_downsample_scales_linear_align_corners",
                     "test_resize_downsample_scales_cubic_align_corners"],
                    "align_corners with a fractional output length: onnx's reference divides "
                    "by the fractional length, onnxruntime (and Lamina) by the integer one"),
    **dict.fromkeys(["test_dft_inverse", "test_dft_inverse_opset19"],
                    "the stored imaginary parts that are exactly 0 hold numpy's FFT rounding "
                    "(1.9e-7), past the case's atol of 1e-7; Lamina's are within 1e-14"),
    "test_maxunpool_export_with_output_shape":
        "onnx's reference reads the indices in the inferred shape and pads it to "
        "output_shape; onnxruntime, torch (and Lamina) read them in output_shape",
}


def _tensor(t):
    if isinstance(t, onnx.TensorProto):
        return numpy_helper.to_array(t)
    return np.asarray(t) if isinstance(t, np.generic) else t


# operators whose output shape depends on their input values: Lamina (static shapes)
# computes them at import time, so their cases run with every input fixed
DATA_DEPENDENT = {"NonZero", "NonMaxSuppression", "Unique", "Compress", "Range", "OneHot",
                  "MelWeightMatrix", "Loop"}  # Loop: a trip count or condition given as input


def _with_constant_inputs(m, inputs, every=False):
    """The node cases feed axes, pads, shapes, repeats and Resize's scales as graph inputs;
    Lamina compiles static shapes, so where the importer needs them constant, the 0-D and
    1-D integer inputs and Resize's `scales` and `roi` become initialisers (the same model
    with those inputs fixed to the case's values); with `every`, all inputs do."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(m)
    kept = []
    for i, a in zip(m.graph.input, inputs):
        if every or (a.ndim <= 1 and (a.dtype.kind in "iu" or i.name in ("scales", "roi"))):
            fixed.graph.initializer.append(numpy_helper.from_array(a, i.name))
        else:
            kept.append(a)
    return fixed, kept


def _import_case(m, inputs):
    """(graph, inputs) for a conformance model, or pytest.skip with the importer's reason."""
    shapes = [a.shape for a in inputs]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", OnnxImportWarning)
            try:
                return load_onnx(m, shapes), inputs
            except OnnxImportError as e:
                if not any("computed at run time" in u[2] for u in e.unsupported):
                    raise
            fixed, kept = _with_constant_inputs(m, inputs)
            try:
                return load_onnx(fixed, [a.shape for a in kept]), kept
            except OnnxImportError as e:
                if not e.unsupported or any(u[0] not in DATA_DEPENDENT or "computed at run "
                                            "time" not in u[2] for u in e.unsupported):
                    raise
            m, inputs = _with_constant_inputs(m, inputs, every=True)
            return load_onnx(m, []), inputs
    except OnnxImportWarning as w:
        pytest.skip(f"training mode: {w}")
    except OnnxImportError as e:
        if e.unsupported and len(e.unsupported) == len(e.problems):
            pytest.skip("unsupported: " + "; ".join(name if op == "<input>" else f"{op}: {why}"
                                                    for op, name, why in e.unsupported))
        raise


def _check_expected(g, inputs, expected, rtol, atol, what, backend="reference"):
    # the boundary conversion compile() makes for a file's float16, int8, ... (computed
    # in the wider types the importer reads them in): inputs widened, outputs narrowed back
    # (float8, float4, int4, int2 by ml_dtypes: independent of ir/ops/narrow.py's codes)
    inputs = [a.astype(widened(a.dtype)) for a in inputs]
    with np.errstate(all="ignore"):  # cases that expect NaN (fully masked softmax rows)
        if backend == "reference":
            actual = run(g, *inputs)
        else:
            actual = compiler.compile(g, *inputs, opt_level=2, backend=backend)(*inputs)
            actual = list(actual) if isinstance(actual, tuple) else [actual]
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        if a.dtype != e.dtype and a.dtype == widened(e.dtype):
            if e.dtype.name in ("float16", "bfloat16"):  # the case rounds to that type at
                # each step, Lamina once at the end: within two of its rounding steps
                rtol = max(rtol, 2 * float(ml_dtypes.finfo(e.dtype).eps))
            a = a.astype(e.dtype)
        assert a.shape == e.shape and a.dtype == e.dtype, \
            f"{what} output {i}: {a.dtype}{list(a.shape)}, expected {e.dtype}{list(e.shape)}"
        if e.dtype.kind in "biu":
            np.testing.assert_array_equal(a, e, err_msg=f"{what} output {i}")
        else:
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, equal_nan=True,
                                       err_msg=f"{what} output {i}")


def _node_params():
    for c in NODE_CASES:
        marks = [pytest.mark.xfail(reason=KNOWN[c.name], strict=True)] if c.name in KNOWN else []
        yield pytest.param(c, id=c.name, marks=marks)


@pytest.mark.parametrize("c", list(_node_params()))
def test_onnx_node_conformance(c):
    for inputs, outputs in c.data_sets:
        inputs, outputs = [_tensor(t) for t in inputs], [_tensor(t) for t in outputs]
        if not all(isinstance(a, np.ndarray) for a in [*inputs, *outputs]):
            pytest.skip("sequence or optional values")
        g, inputs = _import_case(c.model, inputs)
        _check_expected(g, inputs, outputs, c.rtol, c.atol, c.name)


def test_node_conformance_selection():
    """Most node cases use operators in the table (the rest are listed in the report)."""
    assert len(NODE_CASES) > 1000 and NODE_TOTAL > 1500


NODE_PASS_FLOOR = 1777  # node cases passing when last measured: raise it as more pass


def test_node_conformance_pass_count():
    """No fewer node cases pass than when last measured, and at least 95% of the default
    domain's (issue 15; docs/ONNX_CONFORMANCE.md lists the cases that do not, by reason).
    It runs them itself, as the report does: the count then holds whatever other tests a
    session selects and however they are spread over workers."""
    from .onnx_conformance import outcome

    passed = sum(outcome(c)[0] == "pass" for c in NODE_CASES)
    assert passed >= NODE_PASS_FLOOR, \
        f"{passed}/{NODE_TOTAL} node cases pass, fewer than {NODE_PASS_FLOOR}"
    assert passed >= 0.95 * NODE_DEFAULT_TOTAL, \
        f"{passed} of the default domain's {NODE_DEFAULT_TOTAL} node cases pass, under 95%"


def _data_dirs():
    import glob
    import os

    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    for sub in ("pytorch-converted", "pytorch-operator", "simple"):
        for d in sorted(glob.glob(os.path.join(root, sub, "*"))):
            yield pytest.param(d, id=f"{sub}/{os.path.basename(d)}")


@pytest.mark.parametrize("backend", ["reference", "llvm"])
@pytest.mark.parametrize("d", list(_data_dirs()))
def test_onnx_data_conformance(d, backend):
    import glob

    m = onnx.load(f"{d}/model.onnx")
    for ds in sorted(glob.glob(f"{d}/test_data_set_*")):
        load = [numpy_helper.to_array(onnx.load_tensor(f))
                for f in sorted(glob.glob(f"{ds}/input_*.pb"))]
        expected = [numpy_helper.to_array(onnx.load_tensor(f))
                    for f in sorted(glob.glob(f"{ds}/output_*.pb"))]
        if any(i.type.tensor_type.elem_type == TensorProto.STRING for i in m.graph.input):
            pytest.skip("string tensors")
        g, inputs = _import_case(m, load)
        _check_expected(g, inputs, expected, 1e-3, 1e-6, d, backend)


LIGHT = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
         "shufflenet", "squeezenet", "zfnet512", "vgg19"]


@pytest.mark.parametrize("name", LIGHT)
def test_onnx_light_model_zoo(name, rng):
    """onnx's "light" zoo models (real architectures, constant weights; several list their
    initialisers among the inputs) against onnxruntime, on the final output and on the
    tensor feeding the classifier (the output alone is a uniform softmax here)."""
    import os

    path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light",
                        f"light_{name}.onnx")
    m = onnx.load(path)
    last = next(n for n in reversed(m.graph.node) if n.op_type in ("Gemm", "Conv"))
    m.graph.output.append(helper.make_tensor_value_info(last.input[0], TensorProto.FLOAT, None))
    g = load_onnx(m)
    x = rng.standard_normal(g.inputs[0].shape).astype(np.float32)
    actual = run(g, x)
    inits = {t.name for t in m.graph.initializer}
    feed = next(i.name for i in m.graph.input if i.name not in inits)
    expected = ort_run(m, {feed: x})
    if name == "squeezenet":  # its logits reach 1e9: float rounding picks the softmax's peak
        actual, expected = actual[1:], expected[1:]
    for a, e in zip(actual, expected):
        scale = float(np.abs(e).max()) or 1.0
        np.testing.assert_allclose(a / scale, e / scale, rtol=0, atol=2e-4)


def test_compiler_imports_without_onnx():
    """onnx is a test dependency: `import compiler` must not need it (it loads lazily)."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] in ('onnx', 'onnxruntime'):\n"
            "            raise ImportError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import compiler\n"
            "assert callable(compiler.load_onnx) and 'onnx' not in sys.modules\n")
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)


def _torch_style_encoder(tmp_path):
    """An encoder block written the way torch.onnx exports one: symbolic batch and sequence,
    head shapes computed with Shape/Gather/Unsqueeze/Concat, a causal mask built from
    ConstantOfShape/Trilu/Equal/Where, GELU spelled with Erf, MatMul + Add for linears."""
    d, h = 16, 2
    w = {k: randn(*s) * 0.3 for k, s in {"wq": (d, d), "wk": (d, d), "wv": (d, d),
                                         "wo": (d, d), "w1": (d, 4 * d), "w2": (4 * d, d)}.items()}
    consts = {**w, "ln_s": randn(d), "ln_b": randn(d), "b1": randn(4 * d),
              "i0": i64(0)[0], "i1": i64(1)[0], "ax0": i64(0), "heads": i64(h),
              "dh": i64(d // h), "dm": i64(d), "sqrt_dh": np.float32(np.sqrt(d // h)),
              "zero": np.float32(0), "ninf": np.float32(-np.inf), "one": np.float32(1),
              "half": np.float32(0.5), "sqrt2": np.float32(np.sqrt(2))}
    nodes = [
        N("LayerNormalization", ["x", "ln_s", "ln_b"], ["ln"], axis=-1),
        N("Shape", ["x"], ["shape"]),
        N("Gather", ["shape", "i0"], ["B"]), N("Gather", ["shape", "i1"], ["T"]),
        N("Unsqueeze", ["B", "ax0"], ["B1"]), N("Unsqueeze", ["T", "ax0"], ["T1"]),
        N("Concat", ["B1", "T1", "heads", "dh"], ["heads_shape"], axis=0),
        N("Concat", ["B1", "T1", "dm"], ["model_shape"], axis=0),
        N("Concat", ["T1", "T1"], ["tt"], axis=0),
        N("ConstantOfShape", ["tt"], ["ones"], value=numpy_helper.from_array(np.float32([1]))),
        N("Trilu", ["ones"], ["lower"], upper=0),
        N("Equal", ["lower", "zero"], ["masked"]),
    ]
    for k, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        nodes += [N("MatMul", ["ln", f"w{k}"], [f"{k}0"]),
                  N("Reshape", [f"{k}0", "heads_shape"], [f"{k}1"]),
                  N("Transpose", [f"{k}1"], [k], perm=perm)]
    nodes += [
        N("MatMul", ["q", "k"], ["s0"]), N("Div", ["s0", "sqrt_dh"], ["s1"]),
        N("Where", ["masked", "ninf", "s1"], ["s2"]), N("Softmax", ["s2"], ["att"], axis=-1),
        N("MatMul", ["att", "v"], ["o0"]), N("Transpose", ["o0"], ["o1"], perm=[0, 2, 1, 3]),
        N("Reshape", ["o1", "model_shape"], ["o2"]), N("MatMul", ["o2", "wo"], ["o3"]),
        N("Add", ["x", "o3"], ["r1"]),
        N("MatMul", ["r1", "w1"], ["f0"]), N("Add", ["f0", "b1"], ["f1"]),
        N("Div", ["f1", "sqrt2"], ["g0"]), N("Erf", ["g0"], ["g1"]),
        N("Add", ["g1", "one"], ["g2"]), N("Mul", ["f1", "g2"], ["g3"]),
        N("Mul", ["g3", "half"], ["g4"]), N("MatMul", ["g4", "w2"], ["f2"]),
        N("Add", ["r1", "f2"], ["y"]),
    ]
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", d])
    graph = helper.make_graph(nodes, "encoder", [x_info], [info("y", np.float32)],
                              [numpy_helper.from_array(np.asarray(a), k)
                               for k, a in consts.items()])
    path = tmp_path / "encoder.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_torch_style_encoder_with_dynamic_shapes(tmp_path):
    path = _torch_style_encoder(tmp_path)
    for shape in ((2, 5, 16), (3, 7, 16)):
        x = randn(*shape)
        fn = compiler.compile(str(path), x)
        compare([fn(x)], ort_run(onnx.load(path), {"x": x}), 1e-4, 1e-5)
    ops = {n.op for n in load_onnx(path, [(2, 5, 16)]).nodes}
    assert {"linear", "where", "layer_norm"} <= ops
    assert not ops & {"gather", "concat", "equal"}  # shape arithmetic and the mask folded
