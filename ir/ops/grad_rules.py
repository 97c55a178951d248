"""Building blocks the gradient rules share.

A gradient rule is declared beside its operator (`OpDef.grad`) and has the signature

    rule(b, node, grads) -> list of input gradients (an ir.Value or None per input)

`b` is a builder with `Graph.call`'s signature (the reverse-mode pass hands one in that
names the new nodes after the forward node); `grads` holds one gradient value per output
of `node` (outputs with no gradient get zeros when the node has several, so a rule never
sees None). A rule returns None for an input that has no gradient (integer indices) and
builds everything else from registered operators, so the backward graph is ordinary IR.
The helpers below build common adjoints the same way; none of them touches numpy data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .shape_rules import axes as norm_axes


def const(b, value: float, dtype: str, shape: Sequence[int] = ()):
    """A constant tensor (a scalar by default) of `dtype`."""
    return b.call("constant", value=float(value), shape=tuple(shape), dtype=dtype)


def scalar(b, value: float, like):
    """A scalar constant with the dtype of the value `like`."""
    return const(b, value, like.dtype)


def zeros_like(b, v):
    return const(b, 0.0, v.dtype, v.shape)


def reshape(b, v, shape):
    shape = tuple(shape)
    return v if v.shape == shape else b.call("reshape", v, shape=shape)


def sum_to(b, dy, shape):
    """Sum a gradient of a broadcast result down to the operand's `shape`: the adjoint of
    numpy broadcasting (leading axes summed away, size-1 axes summed with keepdims)."""
    shape = tuple(shape)
    if dy.shape == shape:
        return dy
    lead = len(dy.shape) - len(shape)
    axes = [*range(lead), *(lead + i for i, d in enumerate(shape)
                            if d == 1 and dy.shape[lead + i] != 1)]
    out = b.call("reduce_sum", dy, axes=axes, keepdims=True) if axes else dy
    return reshape(b, out, shape)


def broadcast(b, v, shape):
    shape = tuple(shape)
    return v if v.shape == shape else b.call("broadcast_to", v, shape=shape)


def reduced_axes(attrs_axes, rank: int) -> tuple[int, ...]:
    """A reduction's axes, normalised; empty means every axis (numpy's None)."""
    return norm_axes(attrs_axes, rank) if attrs_axes else tuple(range(rank))


def keep_shape(shape, axes) -> tuple[int, ...]:
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def unreduce(b, dy, shape, axes):
    """Spread the gradient of a reduction over `axes` back to the input `shape`."""
    return broadcast(b, reshape(b, dy, keep_shape(shape, axes)), shape)


def count(shape, axes) -> int:
    return math.prod(shape[a] for a in axes)


def mask(b, cond, dy, value: float = 0.0):
    """dy where `cond` holds, `value` elsewhere."""
    return b.call("where", cond, dy, scalar(b, value, dy))


def standardize(b, x, axes, eps: float):
    """(x - mean) / sqrt(var + eps) over `axes` (biased variance) and 1 / sqrt(var + eps),
    both keeping the reduced axes: what batch_norm (training) and layer_norm compute.
    Centred about each group's first element first, as the operators' own `centered` is:
    exact for values with a large common offset, where x - mean(x) would carry the mean's
    rounding at the offset's scale."""
    axes = tuple(axes)
    first = b.call("slice", x, starts=[0] * len(axes), ends=[1] * len(axes), axes=axes)
    shifted = b.call("sub", x, first)
    xc = b.call("sub", shifted, b.call("reduce_mean", shifted, axes=axes, keepdims=True))
    var = b.call("reduce_mean", b.call("mul", xc, xc), axes=axes, keepdims=True)
    rstd = b.call("div", scalar(b, 1.0, x),
                  b.call("sqrt", b.call("add", var, scalar(b, eps, x))))
    return b.call("mul", xc, rstd), rstd


def standardize_grad(b, g, xhat, rstd, axes):
    """Gradient through xhat = standardize(x) given g = dL/dxhat:
    rstd * (g - mean(g) - xhat * mean(g * xhat)) over `axes`."""
    mg = b.call("reduce_mean", g, axes=axes, keepdims=True)
    mgx = b.call("reduce_mean", b.call("mul", g, xhat), axes=axes, keepdims=True)
    inner = b.call("sub", b.call("sub", g, mg), b.call("mul", xhat, mgx))
    return b.call("mul", inner, rstd)
