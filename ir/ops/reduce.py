"""Reductions over axes, numpy style (axes=[] reduces everything)."""

from __future__ import annotations

import numpy as np

from ..types import TensorType
from ._util import axes as norm_axes
from ._util import floats
from .registry import Attr, Fusion, OpDef, register

ATTRS = {"axes": Attr("ints", ()), "keepdims": Attr("bool", False)}


def _infer(x, *, axes, keepdims):
    floats(x)
    red = norm_axes(axes, x.rank) if axes else tuple(range(x.rank))
    shape = tuple(1 if i in red else d for i, d in enumerate(x.shape) if keepdims or i not in red)
    return TensorType(shape, x.dtype)


def reduction(name, fn, doc, identity=None):
    def compute(x, *, axes, keepdims):
        red = norm_axes(axes, x.ndim) if axes else None
        return np.asarray(fn(x, axis=red, keepdims=keepdims)).astype(x.dtype, copy=False)

    return register(OpDef(name, _infer, compute, ATTRS, (1, 1), Fusion.REDUCTION, doc,
                          identity=identity))


reduction("reduce_sum", np.sum, "sum over axes (all when axes is empty)", 0.0)
reduction("reduce_mean", np.mean, "mean over axes (all when axes is empty)")
reduction("reduce_max", np.max, "max over axes (all when axes is empty); NaN wins")
reduction("reduce_min", np.min, "min over axes (all when axes is empty); NaN wins")
