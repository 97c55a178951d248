"""Losses: scalar (or per-sample) objectives for training."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..tensor_type import FLOATS, TensorType
from . import grad_rules as G
from .registry import Attr, Fusion, OpDef, register
from .shape_rules import floats, rank_at_least

REDUCTION = {"reduction": Attr("str", "mean", lambda r: r in ("mean", "sum", "none"),
                               "'mean', 'sum' or 'none'")}


def _reduced(x: TensorType, per_sample: tuple[int, ...], reduction: str) -> TensorType:
    return x.with_shape(per_sample if reduction == "none" else ())


def _ce_infer(logits, target, *, reduction):
    dtype = floats(logits)
    rank_at_least(logits, 2, "cross_entropy logits [N, C, ...]")
    per_sample = (logits.shape[0], *logits.shape[2:])
    if target.dtype in FLOATS:  # class probabilities, same layout as logits
        if target.shape != logits.shape or target.dtype != dtype:
            raise ShapeError(f"probability targets must match the logits {logits}, got {target}")
    elif target.dtype in ("i32", "i64"):
        if target.shape != per_sample:
            raise ShapeError(f"class-index targets must be {list(per_sample)} for logits "
                             f"{logits}, got {target}")
    else:
        raise ShapeError(f"targets must be class indices (int) or probabilities, got {target}")
    return _reduced(logits, per_sample, reduction)


def _reduce(loss, reduction, dtype):
    out = {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]
    return np.asarray(out, dtype)


def _cross_entropy(logits, target, *, reduction):
    s = logits - logits.max(axis=1, keepdims=True, initial=-np.inf)  # no classes: no max
    logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    if target.dtype.kind == "f":
        loss = -(target * logp).sum(axis=1)
    else:
        c = logits.shape[1]
        if target.size and (target.min() < 0 or target.max() >= c):
            raise ShapeError(f"class index out of range [0, {c}): min {target.min()}, "
                             f"max {target.max()}")
        loss = -np.take_along_axis(logp, np.expand_dims(target, 1), axis=1).squeeze(1)
    return _reduce(loss, reduction, logits.dtype)


def _scaled(b, dy, per_sample, reduction, where_class_axis):
    """The loss gradient per sample, shaped to broadcast against the operands."""
    if reduction == "mean":
        return b.call("mul", dy, G.scalar(b, 1 / max(math.prod(per_sample), 1), dy))
    if reduction == "none" and where_class_axis:
        return G.reshape(b, dy, (per_sample[0], 1, *per_sample[1:]))
    return dy


def _ce_grad(b, node, grads):
    """softmax(logits) * sum(target) - target per sample (one_hot targets sum to 1);
    probability targets also get -log_softmax(logits)."""
    logits, target = node.inputs
    per_sample = (logits.shape[0], *logits.shape[2:])
    dy = _scaled(b, grads[0], per_sample, node.attrs["reduction"], True)
    p = b.call("softmax", logits, axis=1)
    if target.dtype in FLOATS:
        mass = b.call("reduce_sum", target, axes=(1,), keepdims=True)
        dl = b.call("sub", b.call("mul", p, mass), target)
        dt = b.call("mul", b.call("neg", b.call("log_softmax", logits, axis=1)), dy)
        return [b.call("mul", dl, dy), dt]
    hot = b.call("one_hot", target, depth=logits.shape[1], axis=1, dtype=logits.dtype)
    return [b.call("mul", b.call("sub", p, hot), dy), None]


register(OpDef(
    name="cross_entropy",
    infer=_ce_infer,
    compute=_cross_entropy,
    attrs=REDUCTION,
    arity=(2, 2),
    fusion=Fusion.OPAQUE,
    doc="softmax cross-entropy over axis 1 of the logits, against class indices "
        "[N, ...] or class probabilities shaped like the logits",
    grad=_ce_grad))


def _mse_infer(a, b, *, reduction):
    floats(a, b)
    if a.shape != b.shape:
        raise ShapeError(f"mse_loss operands must have one shape, got {a} and {b}")
    return _reduced(a, a.shape, reduction)


def _mse_grad(b, node, grads):
    a, t = node.inputs
    dy = _scaled(b, grads[0], a.shape, node.attrs["reduction"], False)
    d = b.call("mul", b.call("sub", a, t), b.call("mul", dy, G.scalar(b, 2.0, dy)))
    return [d, b.call("neg", d)]


register(OpDef(
    name="mse_loss",
    infer=_mse_infer,
    compute=lambda a, b, *, reduction: _reduce((a - b) ** 2, reduction, a.dtype),
    attrs=REDUCTION,
    arity=(2, 2),
    fusion=Fusion.OPAQUE,
    doc="squared error, averaged or summed",
    grad=_mse_grad))
