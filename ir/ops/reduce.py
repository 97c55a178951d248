"""Reductions over axes, numpy style (axes=[] reduces everything)."""

from __future__ import annotations

from functools import partial

import numpy as np

from ..tensor_type import TensorType
from . import grad_rules as G
from .registry import Attr, Fusion, OpDef, register
from .shape_rules import axes as norm_axes
from .shape_rules import floats

ATTRS = {"axes": Attr("ints", ()), "keepdims": Attr("bool", False)}


def _infer(x, *, axes, keepdims):
    floats(x)
    red = norm_axes(axes, x.rank) if axes else tuple(range(x.rank))
    shape = tuple(1 if i in red else d for i, d in enumerate(x.shape) if keepdims or i not in red)
    return TensorType(shape, x.dtype)


def _sum_grad(b, node, grads):
    x = node.inputs[0]
    return [G.unreduce(b, grads[0], x.shape, G.reduced_axes(node.attrs["axes"], len(x.shape)))]


def _mean_grad(b, node, grads):
    x = node.inputs[0]
    axes = G.reduced_axes(node.attrs["axes"], len(x.shape))
    dy = b.call("mul", grads[0], G.scalar(b, 1 / max(G.count(x.shape, axes), 1), x))
    return [G.unreduce(b, dy, x.shape, axes)]


def _extreme_grad(b, node, grads):
    """reduce_max/min: the gradient is shared by the elements equal to the result."""
    x = node.inputs[0]
    axes = G.reduced_axes(node.attrs["axes"], len(x.shape))
    keep = G.keep_shape(x.shape, axes)
    hit = b.call("equal", x, G.reshape(b, node.output, keep))
    n = b.call("reduce_sum", b.call("cast", hit, dtype=x.dtype), axes=axes, keepdims=True)
    return [G.mask(b, hit, b.call("div", G.reshape(b, grads[0], keep), n))]


def reduction(name, fn, doc, identity=None, grad=None):
    def compute(x, *, axes, keepdims):
        red = norm_axes(axes, x.ndim) if axes else None
        return np.asarray(fn(x, axis=red, keepdims=keepdims)).astype(x.dtype, copy=False)

    return register(OpDef(
        name=name,
        infer=_infer,
        compute=compute,
        attrs=ATTRS,
        arity=(1, 1),
        fusion=Fusion.REDUCTION,
        doc=doc,
        identity=identity,
        grad=grad))


reduction("reduce_sum", np.sum, "sum over axes (all when axes is empty)", 0.0, _sum_grad)
reduction("reduce_mean", np.mean, "mean over axes (all when axes is empty)",
          grad=_mean_grad)
reduction("reduce_max", partial(np.max, initial=-np.inf),
          "max over axes (all when axes is empty); NaN wins; -inf over no elements",
          grad=_extreme_grad)
reduction("reduce_min", partial(np.min, initial=np.inf),
          "min over axes (all when axes is empty); NaN wins; +inf over no elements",
          grad=_extreme_grad)
