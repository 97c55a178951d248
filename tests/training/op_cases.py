"""Gradient cases: one operator, small float64 operands, attributes; and the operators that
have no gradient, each with the reason.

Operands are chosen away from the points where an operator is not differentiable (relu at
0, ties of max, clip bounds) by more than the finite-difference step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

_rng = np.random.default_rng(7)


def randn(*shape, scale=1.0):
    return _rng.standard_normal(shape) * scale


def uniform(lo, hi, *shape):
    return _rng.uniform(lo, hi, shape)


def away(*shape, gap=0.05, scale=1.0):
    """Normal values with none closer than `gap` to zero."""
    x = randn(*shape, scale=scale)
    return np.where(np.abs(x) < gap, np.sign(x + 1e-12) * gap + x, x)


def ints(lo, hi, *shape):
    return _rng.integers(lo, hi, shape).astype(np.int64)


@dataclass
class GradCase:
    op: str
    variant: str
    args: dict[str, np.ndarray]
    attrs: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.op}-{self.variant}"


CASES: list[GradCase] = []


def case(op, variant, attrs=None, **args):
    c = GradCase(op, variant, args, attrs or {})
    assert all(c.id != o.id for o in CASES), c.id
    CASES.append(c)


# Every registered operator either has cases above or is listed here with the reason.
NON_DIFFERENTIABLE = {
    "constant": "it has no inputs",
    "greater": "its output is bool: piecewise constant, zero gradient almost everywhere",
    "equal": "its output is bool: piecewise constant, zero gradient almost everywhere",
    "one_hot": "its only input holds integer indices",
    "max_pool2d_grad": "a backward operator; second-order gradients of max pooling are not "
                       "supported",
    "fused_conv2d": "made by fusion passes, which run after differentiation: autodiff sees "
                    "conv2d and the activation",
    "fused_linear": "made by fusion passes, which run after differentiation: autodiff sees "
                    "linear and the activation",
    "fused_elementwise": "made by fusion passes, which run after differentiation: autodiff "
                         "sees the operators of its body",
    **dict.fromkeys(("lstm", "gru", "rnn"), "inference op from ONNX import; compiler.nn.LSTM "
                    "traces to differentiable cells"),
    **dict.fromkeys(("quantize", "dequantize", "qlinear", "qconv2d", "qmatmul", "qadd",
                     "qmax_pool2d"),
                    "post-training quantization: integer (u8/i8/i32) operands or results, "
                    "inference only"),
    **dict.fromkeys(("bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "bit_shift"),
                    "integer operands and results"),
    "bitcast": "it reinterprets bits: between a float and an integer type",
    **dict.fromkeys(("bf16_linear", "bf16_conv2d"), "post-training bfloat16 weights (two "
                    "per i32 word), inference only"),
    "round_to_format": "ONNX's Cast to float8/float4/int4 read back: piecewise constant, "
                       "inference only",
}

# Operators whose rule gives no gradient on purpose (not by calculus, so finite differences
# of their forward computation disagree), each with the reason.
STOPS_GRADIENT = {
    "detach": "torch's Tensor.detach: the value passes, its gradient does not",
}

# ---- elementwise -------------------------------------------------------------------------
X = away(3, 4)
for _op in ("relu", "sigmoid", "tanh", "softplus", "erf", "exp", "neg", "abs"):
    case(_op, "basic", x=X)
case("relu6", "both_sides", x=np.concatenate([uniform(-3, -0.1, 4), uniform(0.1, 5.9, 4),
                                             uniform(6.1, 9, 4)]).reshape(3, 4))
case("leaky_relu", "alpha0.2", {"alpha": 0.2}, x=X)
case("elu", "alpha0.7", {"alpha": 0.7}, x=X)
case("gelu", "exact", x=X * 2)
case("gelu", "tanh", {"approximate": "tanh"}, x=X * 2)
case("log", "positive", x=uniform(0.2, 3, 3, 4))
case("sqrt", "positive", x=uniform(0.2, 3, 3, 4))
case("clip", "both", {"min": -0.5, "max": 0.7}, x=X)
case("clip", "min_only", {"min": 0.3}, x=X)
case("clip", "max_only", {"max": -0.2}, x=X)
case("cast", "f64", {"dtype": "f64"}, x=X)
for _op in ("sin", "cos", "tan", "atan", "sinh", "cosh", "asinh"):
    case(_op, "basic", x=X)
for _op in ("asin", "acos", "atanh"):
    case(_op, "inside", x=uniform(-0.9, 0.9, 3, 4))
case("acosh", "above_one", x=uniform(1.2, 4, 3, 4))
case("round", "off_halves", x=np.arange(12.0).reshape(3, 4) - 5.7)  # all 0.2 from k + 0.5

for _op in ("add", "sub", "mul", "maximum", "minimum"):
    case(_op, "same", a=randn(3, 4), b=randn(3, 4))
    case(_op, "broadcast", a=randn(2, 1, 3), b=randn(4, 1))
case("div", "same", a=randn(3, 4), b=away(3, 4, gap=0.5))
case("div", "broadcast", a=randn(2, 3), b=away(3, gap=0.5))
case("pow", "same", a=uniform(0.3, 2, 3, 4), b=randn(3, 4))
case("pow", "broadcast", a=uniform(0.3, 2, 2, 3), b=randn(3))
case("where", "broadcast", cond=randn(3, 4) > 0, a=randn(4), b=randn(3, 1))
case("broadcast_to", "lead_and_ones", {"shape": (2, 3, 4)}, x=randn(3, 1))

# ---- reductions --------------------------------------------------------------------------
R = randn(2, 3, 4)
for _op in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min"):
    case(_op, "axis1", {"axes": (1,)}, x=R)
    case(_op, "all", x=R)
    case(_op, "keepdims_neg", {"axes": (0, -1), "keepdims": True}, x=R)
case("reduce_max", "scalar", x=np.array(1.5))

# ---- losses ------------------------------------------------------------------------------
LOGITS = randn(4, 5, scale=2)
for _red in ("mean", "sum", "none"):
    case("cross_entropy", f"index_{_red}", {"reduction": _red}, logits=LOGITS,
         target=ints(0, 5, 4))
    case("cross_entropy", f"probs_{_red}", {"reduction": _red}, logits=LOGITS,
         target=np.abs(randn(4, 5)))
    case("mse_loss", _red, {"reduction": _red}, a=randn(3, 4), b=randn(3, 4))
case("cross_entropy", "spatial", logits=randn(2, 4, 3, 2), target=ints(0, 4, 2, 3, 2))
case("cross_entropy", "spatial_none", {"reduction": "none"}, logits=randn(2, 4, 3),
     target=ints(0, 4, 2, 3))
case("cross_entropy", "index_i32", logits=LOGITS, target=ints(0, 5, 4).astype(np.int32))

# ---- shape -------------------------------------------------------------------------------
case("reshape", "basic", {"shape": (4, -1)}, x=R)
case("flatten", "axis2", {"axis": 2}, x=R)
case("transpose", "perm", {"perm": (2, 0, 1)}, x=R)
case("concat", "three", {"axis": 1}, a=randn(2, 1, 3), b=randn(2, 2, 3), c=randn(2, 3, 3))
case("concat", "one", {"axis": -1}, a=randn(2, 3))
case("split", "three", {"axis": -1, "sizes": (1, 2, 1)}, x=R)
case("split", "with_empty", {"axis": 1, "sizes": (2, 0, 1)}, x=R)
S = randn(4, 7, 3)
case("slice", "basic", {"starts": (1,), "ends": (3,)}, x=S)
case("slice", "axes_steps", {"starts": (1, 0), "ends": (7, 2), "axes": (1, 2), "steps": (2, 1)},
     x=S)
case("slice", "negative_step", {"starts": (5,), "ends": (-8,), "axes": (1,), "steps": (-2,)},
     x=S)
case("slice", "reverse_part", {"starts": (2, -2), "ends": (0, 0), "axes": (0, 1),
                               "steps": (-1, -3)}, x=S)
case("slice", "empty", {"starts": (3,), "ends": (3,), "axes": (1,)}, x=S)
P = randn(3, 5)
case("pad", "constant", {"pads": (1, 0, 2, 3)}, x=P)
case("pad", "constant_crop", {"pads": (-1, 2, 1, -2), "value": 1.5}, x=P)
case("pad", "reflect", {"pads": (2, 1, 1, 3), "mode": "reflect"}, x=P)
case("pad", "reflect_crop", {"pads": (0, -1, 1, 2), "mode": "reflect"}, x=P)
case("pad", "edge", {"pads": (2, 3, 1, 1), "mode": "edge"}, x=P)
case("pad", "edge_crop", {"pads": (-1, 2, 2, -1), "mode": "edge"}, x=P)
case("gather", "embedding", data=randn(6, 3), idx=np.array([[1, 4, 1], [0, 5, 4]]))
case("gather", "axis1_negative", {"axis": 1}, data=randn(3, 5, 2), idx=np.array([4, -1, 0, 4]))
case("gather", "scalar_index", {"axis": -1}, data=randn(3, 5), idx=np.array(2))
case("scatter_add", "repeats", {"axis": 0, "size": 5}, upd=randn(2, 3, 4),
     idx=np.array([[1, 4, 1], [0, 4, -1]]))
case("scatter_add", "axis1", {"axis": 1, "size": 4}, upd=randn(3, 5), idx=np.array([0, 3, 3, 1, 0]))

# ---- nn ----------------------------------------------------------------------------------
CONV = [  # variant, x, w, bias, attrs
    ("plain", (1, 2, 5, 5), (3, 2, 3, 3), False, {}),
    ("pad_bias", (2, 2, 4, 5), (3, 2, 3, 3), True, {"pad": (1, 1, 1, 1)}),
    ("stride2_asym", (1, 2, 7, 6), (2, 2, 3, 2), True, {"stride": (2, 2), "pad": (1, 0, 2, 1)}),
    ("dilation", (1, 1, 7, 7), (2, 1, 3, 3), False, {"dilation": (2, 1), "stride": (1, 2)}),
    ("groups2", (1, 4, 5, 5), (6, 2, 3, 3), True, {"groups": 2, "pad": (1, 1, 1, 1)}),
    ("depthwise", (2, 3, 5, 4), (3, 1, 3, 3), True, {"groups": 3, "stride": (2, 1)}),
]
for _name, _xs, _ws, _bias, _attrs in CONV:
    _args = {"x": randn(*_xs), "w": randn(*_ws, scale=0.5)}
    if _bias:
        _args["b"] = randn(_ws[0])
    case("conv2d", _name, _attrs, **_args)
case("conv2d_grad_input", "stride2", {"stride": (2, 2), "pad": (1, 1, 1, 0),
                                      "shape": (2, 2, 6, 5)},
     dy=randn(2, 3, 3, 3), w=randn(3, 2, 3, 2))
case("conv2d_grad_input", "groups", {"groups": 2, "dilation": (2, 1), "shape": (1, 4, 6, 4)},
     dy=randn(1, 2, 2, 2), w=randn(2, 2, 3, 3))
case("conv2d_grad_weight", "stride2", {"stride": (2, 2), "pad": (1, 1, 1, 0),
                                       "kernel": (3, 2)},
     x=randn(2, 2, 6, 5), dy=randn(2, 3, 3, 3))
case("conv2d_grad_weight", "groups", {"groups": 2, "kernel": (2, 2)}, x=randn(1, 4, 3, 3),
     dy=randn(1, 2, 2, 2))

POOL = [  # variant, x, attrs
    ("k2s2", (1, 2, 4, 4), {"kernel": (2, 2), "stride": (2, 2)}),
    ("k3s2_pad1", (2, 1, 5, 5), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1, 1, 1)}),
    ("k3s1_asym_pad", (1, 2, 4, 5), {"kernel": (3, 3), "pad": (1, 0, 0, 1)}),
    ("ceil", (1, 1, 5, 5), {"kernel": (2, 2), "stride": (2, 2), "ceil_mode": True}),
    ("ceil_pad", (1, 1, 6, 6), {"kernel": (3, 3), "stride": (2, 2), "pad": (1, 1, 1, 1),
                                "ceil_mode": True}),
    ("dilation", (1, 1, 6, 6), {"kernel": (2, 2), "dilation": (2, 2)}),
]
for _name, _xs, _attrs in POOL:
    case("max_pool2d", _name, _attrs, x=randn(*_xs))
    for _cip in (True, False):
        case("avg_pool2d", f"{_name}_{'incl' if _cip else 'excl'}",
             {**_attrs, "count_include_pad": _cip}, x=randn(*_xs))
case("global_avg_pool", "basic", x=randn(2, 3, 2, 3))

# 3-D convolution and pooling (their rules differentiate the 2-D decomposition)
case("conv3d", "stride_pad_dilation", {"stride": (2, 1, 1), "pad": (1, 0, 1, 0, 1, 0),
                                       "dilation": (1, 2, 1)},
     x=randn(1, 2, 5, 5, 3), w=randn(3, 2, 2, 2, 2, scale=0.5), b=randn(3))
case("conv3d", "groups2", {"groups": 2}, x=randn(2, 4, 3, 3, 3), w=randn(2, 2, 2, 2, 1))
case("conv3d_grad_input", "stride2", {"stride": (2, 1, 2), "pad": (1, 0, 0, 0, 1, 1),
                                      "shape": (1, 2, 5, 3, 4)},
     dy=randn(1, 3, 3, 3, 2), w=randn(3, 2, 2, 2, 3))
case("max_pool3d", "ceil_pad", {"kernel": (2, 3, 2), "stride": (2, 2, 1),
                                "pad": (1, 1, 0, 0, 1, 1), "ceil_mode": True},
     x=randn(1, 2, 4, 5, 3))
for _cip in (True, False):
    case("avg_pool3d", f"pad_{'incl' if _cip else 'excl'}",
         {"kernel": (3, 2, 2), "stride": (2, 1, 2), "pad": (1, 1, 0, 1, 0, 1),
          "count_include_pad": _cip, "ceil_mode": True}, x=randn(1, 2, 5, 3, 4))

BN = {"w": randn(3), "b": randn(3), "mean": randn(3), "var": uniform(0.5, 2, 3)}
case("batch_norm", "inference", x=randn(2, 3, 2, 2), **BN)
case("batch_norm", "inference_rank2", x=randn(4, 3), **BN)
case("batch_norm", "training", {"training": True}, x=randn(2, 3, 2, 2), **BN)
case("batch_norm", "training_rank3", {"training": True, "eps": 1e-3}, x=randn(3, 3, 2), **BN)
case("layer_norm", "affine", x=randn(2, 3, 4), w=randn(4), b=randn(4))
case("layer_norm", "axis1", {"axis": 1}, x=randn(2, 3, 4), w=randn(3, 4), b=randn(3, 4))
case("layer_norm", "scale_only", x=randn(3, 5), w=randn(5))
case("layer_norm", "plain", {"eps": 1e-3}, x=randn(3, 5))
case("dropout", "training", {"ratio": 0.3, "training": True, "seed": 3}, x=randn(4, 5))
case("dropout", "inference", {"ratio": 0.3}, x=randn(4, 5))
case("dropout_seeded", "basic", {"ratio": 0.4, "seed": 2}, x=randn(4, 5),
     step=np.array(7, np.int64))
case("linear", "bias_rank3", x=randn(2, 3, 4), w=randn(5, 4), b=randn(5))
case("linear", "vector", x=randn(4), w=randn(3, 4))
case("matmul", "2d", a=randn(3, 4), b=randn(4, 2))
case("matmul", "batched_broadcast", a=randn(2, 1, 3, 4), b=randn(5, 4, 2))
case("matmul", "vector_matrix", a=randn(4), b=randn(2, 4, 3))
case("matmul", "matrix_vector", a=randn(2, 3, 4), b=randn(4))
case("matmul", "dot", a=randn(4), b=randn(4))
case("softmax", "last", x=randn(3, 4))
case("softmax", "axis1", {"axis": 1}, x=randn(2, 3, 4))
case("log_softmax", "last", x=randn(3, 4))
case("log_softmax", "axis0", {"axis": 0}, x=randn(3, 4))


def by_op() -> dict[str, list[GradCase]]:
    out: dict[str, list[GradCase]] = {}
    for c in CASES:
        out.setdefault(c.op, []).append(c)
    return out
