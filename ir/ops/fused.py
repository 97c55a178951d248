"""Fused operators: what the fusion passes produce, registered like every other operator.

They are ordinary operators (inference, numpy reference semantics, printable, verifiable),
so the reference interpreter runs optimised graphs and backends lower them by name. The
names and attributes below are a contract with the backends; keep them stable.

`fused_conv2d(x, w, b[, residual]) {stride, pad, dilation, groups, act, alpha}`
    act(conv2d(x, w, b) + residual): conv2d's attributes and meaning; the bias `b` [O] is
    always present (zeros when the original conv had none). The residual, when given, has
    exactly the output's type and is added *before* the activation, as torch's ResNet
    computes relu(bn(conv(x)) + identity).
`fused_linear(x, w, b[, residual]) {act, alpha}`
    act(x @ w.T + b + residual), w [out, in], b [out], residual of the output's type.
`act` is one of "none", "relu", "relu6", "leaky_relu" (slope `alpha`, default 0.01),
"sigmoid", "tanh", "gelu" (the exact erf form; gelu's tanh approximation is not fused).
Each activation is evaluated by its own registered operator, so a fused node computes
bit for bit what the unfused chain computed.

`fused_elementwise(*inputs) {body}`
    `body` is an ir.Graph whose inputs match the node's inputs one to one (same types),
    which holds no weights, whose nodes are elementwise or broadcast operators (`fusable`
    says which; `constant` nodes may appear) and which returns one value: the node's
    output. Every body value's shape broadcasts to the output shape, so a backend can emit
    it as one loop over the output, evaluating the body per element with numpy
    broadcasting of each input. Body nodes keep the names and attributes they had.

Operands may alias: a residual can be the layer's own input (`fused_conv2d(%h, w, b, %h)`),
and an input may appear several times. All operands are read-only.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..tensor_type import TensorType
from . import elementwise, nn  # noqa: F401  (registered first: the fused ops reuse them)
from .registry import Attr, Fusion, OpDef, get, register

ACTIVATIONS = ("none", "relu", "relu6", "leaky_relu", "sigmoid", "tanh", "gelu")
EPILOGUE = {
    "act": Attr("str", "none", lambda a: a in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}"),
    "alpha": Attr("float", 0.01),
}
# Never inside a body: batch_norm broadcasts per channel (axis 1), not numpy-style, and
# dropout in training draws a mask; fused_elementwise itself is not nested.
NOT_FUSABLE = ("batch_norm", "dropout", "fused_elementwise")


def fusable(op: str) -> bool:
    """Whether `op` may appear in a fused_elementwise body."""
    kind = get(op).fusion
    return kind in (Fusion.ELEMENTWISE, Fusion.BROADCAST) and op not in NOT_FUSABLE


def activation(y: np.ndarray, act: str, alpha: float) -> np.ndarray:
    """The epilogue activation, through the registered operator of the same name."""
    if act == "none":
        return y
    attrs = {"leaky_relu": {"alpha": alpha}, "gelu": {"approximate": "none"}}.get(act, {})
    return get(act).compute(y, **attrs)


def _epilogue_infer(out: TensorType, residual: TensorType | None) -> TensorType:
    if residual is not None and residual != out:
        raise ShapeError(f"residual {residual} must have the output's type {out}")
    return out


# ---- fused_conv2d ------------------------------------------------------------------------
def _conv_infer(x, w, b, residual=None, *, act, alpha, **conv):
    out = get("conv2d").infer(x, w, b, **conv)
    return _epilogue_infer(out, residual)


def _conv(x, w, b, residual=None, *, act, alpha, **conv):
    y = get("conv2d").compute(x, w, b, **conv)
    if residual is not None:
        y = np.add(y, residual)
    return activation(y, act, alpha)


register(OpDef(
    name="fused_conv2d",
    infer=_conv_infer,
    compute=_conv,
    attrs={**get("conv2d").attrs, **EPILOGUE},
    arity=(3, 4),
    fusion=Fusion.COMPLEX,
    doc="act(conv2d(x, w, b) + residual): conv, bias, residual and activation "
    "in one kernel"))


# ---- fused_linear ------------------------------------------------------------------------
def _linear_infer(x, w, b, residual=None, *, act, alpha):
    return _epilogue_infer(get("linear").infer(x, w, b), residual)


def _linear(x, w, b, residual=None, *, act, alpha):
    y = get("linear").compute(x, w, b)
    if residual is not None:
        y = np.add(y, residual)
    return activation(y, act, alpha)


register(OpDef(
    name="fused_linear",
    infer=_linear_infer,
    compute=_linear,
    attrs=EPILOGUE,
    arity=(3, 4),
    fusion=Fusion.COMPLEX,
    doc="act(x @ w.T + b + residual) in one kernel"))


# ---- fused_elementwise -------------------------------------------------------------------
def _check_body(body, types) -> None:
    if len(body.inputs) != len(types):
        raise ShapeError(f"body takes {len(body.inputs)} inputs, the node gives {len(types)}")
    for p, t in zip(body.inputs, types):
        if p.type != t:
            raise ShapeError(f"body parameter {p.ref} is {p.type}, the node gives {t}")
    if body.params or len(body.outputs) != 1:
        raise ShapeError("a body holds no weights and returns exactly one value")
    for n in body.nodes:
        if not fusable(n.op):
            raise ShapeError(f"body node %{n.name} ({n.op}) is not an elementwise operator")
    # the body's own invariants are checked by ir.verify, which descends into graph attributes


def _elementwise_infer(*types, body):
    _check_body(body, types)
    return body.outputs[0].type


def _elementwise(*arrays, body):
    env = {id(p): a for p, a in zip(body.inputs, arrays)}
    for n in body.nodes:
        out = n.opdef.compute(*(env[id(v)] for v in n.inputs), **n.attrs)
        # the same coercion the reference interpreter applies after each node
        env[id(n.output)] = np.asarray(out, n.output.type.np_dtype).reshape(n.output.shape)
    return env[id(body.outputs[0])]


register(OpDef(
    name="fused_elementwise",
    infer=_elementwise_infer,
    compute=_elementwise,
    attrs={"body": Attr("graph")},
    arity=(1, None),
    fusion=Fusion.BROADCAST,
    doc="a region of elementwise/broadcast operators evaluated as one loop; "
    "`body` is the region as a graph"))
