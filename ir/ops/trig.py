"""Trigonometric and hyperbolic functions, and rounding to the nearest integer.

Float-only elementwise maps with numpy's semantics (NaN outside an inverse function's
domain, +-inf where numpy gives it); `round` rounds halves to even, as numpy and ONNX do.
Each declares its derivative; `round`'s is zero wherever it exists.
"""

from __future__ import annotations

import numpy as np

from . import grad_rules as G
from .elementwise import _unary_rule, unary


def _one_minus_sq(b, x):
    return b.call("sub", G.scalar(b, 1.0, x), b.call("mul", x, x))


def _div_sqrt(b, dy, v):
    return b.call("div", dy, b.call("sqrt", v))


_GRADS = {
    "sin": lambda b, x, y, dy, a: b.call("mul", dy, b.call("cos", x)),
    "cos": lambda b, x, y, dy, a: b.call("neg", b.call("mul", dy, b.call("sin", x))),
    # 1 + tan^2 from the output: no second trigonometric call
    "tan": lambda b, x, y, dy, a: b.call(
        "mul", dy, b.call("add", G.scalar(b, 1.0, y), b.call("mul", y, y))),
    "asin": lambda b, x, y, dy, a: _div_sqrt(b, dy, _one_minus_sq(b, x)),
    "acos": lambda b, x, y, dy, a: b.call("neg", _div_sqrt(b, dy, _one_minus_sq(b, x))),
    "atan": lambda b, x, y, dy, a: b.call(
        "div", dy, b.call("add", G.scalar(b, 1.0, x), b.call("mul", x, x))),
    "sinh": lambda b, x, y, dy, a: b.call("mul", dy, b.call("cosh", x)),
    "cosh": lambda b, x, y, dy, a: b.call("mul", dy, b.call("sinh", x)),
    "asinh": lambda b, x, y, dy, a: _div_sqrt(
        b, dy, b.call("add", b.call("mul", x, x), G.scalar(b, 1.0, x))),
    "acosh": lambda b, x, y, dy, a: _div_sqrt(
        b, dy, b.call("sub", b.call("mul", x, x), G.scalar(b, 1.0, x))),
    "atanh": lambda b, x, y, dy, a: b.call("div", dy, _one_minus_sq(b, x)),
    # piecewise constant: zero where differentiable (everywhere but the half-integers)
    "round": lambda b, x, y, dy, a: G.zeros_like(b, dy),
}

for _name, _fn, _doc in (
        ("sin", np.sin, "sine (radians)"),
        ("cos", np.cos, "cosine (radians)"),
        ("tan", np.tan, "tangent (radians)"),
        ("asin", np.arcsin, "inverse sine; NaN outside [-1, 1]"),
        ("acos", np.arccos, "inverse cosine; NaN outside [-1, 1]"),
        ("atan", np.arctan, "inverse tangent"),
        ("sinh", np.sinh, "hyperbolic sine"),
        ("cosh", np.cosh, "hyperbolic cosine"),
        ("asinh", np.arcsinh, "inverse hyperbolic sine"),
        ("acosh", np.arccosh, "inverse hyperbolic cosine; NaN below 1"),
        ("atanh", np.arctanh, "inverse hyperbolic tangent; +-inf at +-1, NaN beyond"),
        ("round", np.round, "the nearest integer, halves to even (numpy's and ONNX's rule)")):
    unary(_name, _fn, _doc, grad=_unary_rule(_GRADS[_name]))
