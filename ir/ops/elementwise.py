"""Elementwise operators: unary maps and numpy-broadcasting binary arithmetic."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..tensor_type import DTYPES, FLOATS, TensorType
from . import grad_rules as G
from .registry import Attr, Fusion, OpDef, register
from .shape_rules import broadcast, floats, same_dtype

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    """Exact erf (math.erf per element): the oracle may be slow, never approximate."""
    return _erf(x).astype(x.dtype) if x.size else x.copy()


def _typed(fn):
    """Keep the input dtype: numpy promotes Python-scalar arithmetic to float64 otherwise."""
    def run(*xs, **attrs):
        with np.errstate(all="ignore"):  # IEEE says what overflow and 0/0 give; no warnings
            return np.asarray(fn(*xs, **attrs)).astype(xs[0].dtype, copy=False)

    return run


def unary(name, fn, doc, attrs=None, float_only=True, grad=None):
    def infer(x, **_):
        return TensorType(x.shape, floats(x) if float_only else x.dtype)

    return register(OpDef(
        name=name,
        infer=infer,
        compute=_typed(fn),
        attrs=attrs or {},
        arity=(1, 1),
        fusion=Fusion.ELEMENTWISE,
        doc=doc,
        grad=grad))


def binary(name, fn, doc, float_only=False, **facts):
    def infer(a, b):
        dtype = floats(a, b) if float_only else same_dtype(a, b)
        if dtype == "bool":
            raise ShapeError(f"{name} does not take bool operands")
        return TensorType(broadcast(a, b), dtype)

    return register(OpDef(
        name=name,
        infer=infer,
        compute=_typed(fn),
        attrs={},
        arity=(2, 2),
        fusion=Fusion.BROADCAST,
        doc=doc,
        **facts))


# ---- gradient rules (see _grad.py): rule(b, node, grads) -> input gradients ------------------
def _unary_rule(fn):
    """A rule for y = f(x) from fn(b, x, y, dy, attrs) -> dx."""
    def rule(b, node, grads):
        return [fn(b, node.inputs[0], node.output, grads[0], node.attrs)]

    return rule


def _relu6_grad(b, x, y, dy, a):
    inside = G.mask(b, b.call("greater", G.scalar(b, 6.0, x), x), dy)
    return G.mask(b, b.call("greater", x, G.scalar(b, 0.0, x)), inside)


def _leaky_relu_grad(b, x, y, dy, a):
    scaled = b.call("mul", dy, G.scalar(b, a["alpha"], dy))
    return b.call("where", b.call("greater", G.scalar(b, 0.0, x), x), scaled, dy)


def _elu_grad(b, x, y, dy, a):  # below zero, d/dx alpha * (exp(x) - 1) = y + alpha
    below = b.call("mul", dy, b.call("add", y, G.scalar(b, a["alpha"], y)))
    return b.call("where", b.call("greater", x, G.scalar(b, 0.0, x)), dy, below)


def _gelu_grad(b, x, y, dy, a):
    s = lambda v: G.scalar(b, v, x)
    if a["approximate"] == "none":  # Phi(x) + x * phi(x)
        cdf = b.call("mul", s(0.5), b.call("add", s(1.0),
                                            b.call("erf", b.call("mul", x, s(1 / math.sqrt(2))))))
        pdf = b.call("mul", s(1 / math.sqrt(2 * math.pi)),
                     b.call("exp", b.call("mul", s(-0.5), b.call("mul", x, x))))
        return b.call("mul", dy, b.call("add", cdf, b.call("mul", x, pdf)))
    # t = tanh(c (x + k x^3)); dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3k x^2)
    x2 = b.call("mul", x, x)
    t = b.call("tanh", b.call("mul", s(_GELU_C),
                              b.call("mul", x, b.call("add", s(1.0), b.call("mul", s(0.044715),
                                                                             x2)))))
    du = b.call("mul", s(_GELU_C), b.call("add", s(1.0), b.call("mul", s(3 * 0.044715), x2)))
    dt = b.call("mul", b.call("mul", s(0.5), x),
                b.call("mul", b.call("sub", s(1.0), b.call("mul", t, t)), du))
    return b.call("mul", dy, b.call("add", b.call("mul", s(0.5), b.call("add", s(1.0), t)), dt))


def _erf_grad(b, x, y, dy, a):  # 2 / sqrt(pi) * exp(-x^2)
    e = b.call("exp", b.call("neg", b.call("mul", x, x)))
    return b.call("mul", dy, b.call("mul", e, G.scalar(b, 2 / math.sqrt(math.pi), x)))


def _clip_grad(b, x, y, dy, a):  # passes where min <= x <= max
    zero = G.scalar(b, 0.0, x)
    if a["min"] != -math.inf:
        dy = b.call("where", b.call("greater", G.scalar(b, a["min"], x), x), zero, dy)
    if a["max"] != math.inf:
        dy = b.call("where", b.call("greater", x, G.scalar(b, a["max"], x)), zero, dy)
    return dy


_UNARY_GRADS = {
    "relu": lambda b, x, y, dy, a: G.mask(b, b.call("greater", x, G.scalar(b, 0.0, x)), dy),
    "relu6": _relu6_grad,
    "leaky_relu": _leaky_relu_grad,
    "elu": _elu_grad,
    "sigmoid": lambda b, x, y, dy, a: b.call(
        "mul", dy, b.call("mul", y, b.call("sub", G.scalar(b, 1.0, y), y))),
    "tanh": lambda b, x, y, dy, a: b.call(
        "mul", dy, b.call("sub", G.scalar(b, 1.0, y), b.call("mul", y, y))),
    "softplus": lambda b, x, y, dy, a: b.call("mul", dy, b.call("sigmoid", x)),
    "gelu": _gelu_grad,
    "erf": _erf_grad,
    "exp": lambda b, x, y, dy, a: b.call("mul", dy, y),
    "log": lambda b, x, y, dy, a: b.call("div", dy, x),
    "sqrt": lambda b, x, y, dy, a: b.call("div", dy, b.call("mul", y, G.scalar(b, 2.0, y))),
    "neg": lambda b, x, y, dy, a: b.call("neg", dy),
    "abs": lambda b, x, y, dy, a: b.call(
        "where", b.call("greater", G.scalar(b, 0.0, x), x), b.call("neg", dy), dy),
    "clip": _clip_grad,
}


def _binary_rule(fn):
    """A rule for y = f(a, b) from fn(b, a, b, y, dy) -> (da, db) at the broadcast shape;
    each is then summed down to its operand's shape."""
    def rule(b, node, grads):
        x1, x2 = node.inputs
        d1, d2 = fn(b, x1, x2, node.output, grads[0])
        return [G.sum_to(b, d1, x1.shape), G.sum_to(b, d2, x2.shape)]

    return rule


def _div_grad(b, p, q, y, dy):
    return b.call("div", dy, q), b.call("neg", b.call("div", b.call("mul", dy, y), q))


def _pow_grad(b, p, q, y, dy):
    dp = b.call("mul", dy, b.call("mul", q, b.call("pow", p, b.call("sub", q,
                                                                     G.scalar(b, 1.0, q)))))
    # d/dq p^q = p^q log p, taken as 0 where p <= 0 (log undefined; torch's choice at p = 0)
    positive = b.call("greater", p, G.scalar(b, 0.0, p))
    safe = b.call("where", positive, p, G.scalar(b, 1.0, p))
    dq = G.mask(b, positive, b.call("mul", dy, b.call("mul", y, b.call("log", safe))))
    return dp, dq


def _select_grad(first_wins):
    """maximum/minimum: the gradient goes to the operand that was picked (ties: the first)."""
    def fn(b, p, q, y, dy):
        other = b.call("greater", *((q, p) if first_wins == "max" else (p, q)))
        return (b.call("where", other, G.scalar(b, 0.0, dy), dy), G.mask(b, other, dy))

    return fn


_BINARY_GRADS = {
    "add": lambda b, p, q, y, dy: (dy, dy),
    "sub": lambda b, p, q, y, dy: (dy, b.call("neg", dy)),
    "mul": lambda b, p, q, y, dy: (b.call("mul", dy, q), b.call("mul", dy, p)),
    "div": _div_grad,
    "pow": _pow_grad,
    "maximum": _select_grad("max"),
    "minimum": _select_grad("min"),
}


def _cast_grad(b, node, grads):
    x = node.inputs[0]
    float_in_out = x.dtype in FLOATS and node.output.dtype in FLOATS
    return [b.call("cast", grads[0], dtype=x.dtype) if float_in_out else None]


def _ugrad(name):
    return _unary_rule(_UNARY_GRADS[name])


def _bgrad(name):
    return _binary_rule(_BINARY_GRADS[name])


unary("relu", lambda x: np.maximum(x, 0), "max(x, 0)", grad=_ugrad("relu"))
unary("relu6", lambda x: np.minimum(np.maximum(x, 0), 6), "min(max(x, 0), 6)",
      grad=_ugrad("relu6"))
unary("leaky_relu", lambda x, alpha: np.where(x >= 0, x, x * x.dtype.type(alpha)),
      "x if x >= 0 else alpha * x", {"alpha": Attr("float", 0.01)}, grad=_ugrad("leaky_relu"))
unary("elu", lambda x, alpha: np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(x)),
      "x if x > 0 else alpha * (exp(x) - 1)", {"alpha": Attr("float", 1.0)}, grad=_ugrad("elu"))
def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows; keeps relative precision in both tails
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


unary("sigmoid", _sigmoid, "1 / (1 + exp(-x))", grad=_ugrad("sigmoid"))
unary("tanh", np.tanh, "hyperbolic tangent", grad=_ugrad("tanh"))
unary("softplus", lambda x: np.logaddexp(0, x), "log(1 + exp(x)), stable for large x",
      grad=_ugrad("softplus"))
_GELU_C = math.sqrt(2 / math.pi)
unary("gelu", lambda x, approximate: (
    0.5 * x * (1 + erf(x / math.sqrt(2))) if approximate == "none"
    else 0.5 * x * (1 + np.tanh(_GELU_C * (x + 0.044715 * x**3)))),
    "x * Phi(x); approximate='tanh' uses the tanh formula",
    {"approximate": Attr("str", "none", lambda v: v in ("none", "tanh"), "'none' or 'tanh'")},
    grad=_ugrad("gelu"))
unary("erf", erf, "the error function", grad=_ugrad("erf"))
unary("exp", np.exp, "e ** x", grad=_ugrad("exp"))
unary("log", np.log, "natural logarithm", grad=_ugrad("log"))
unary("sqrt", np.sqrt, "square root", grad=_ugrad("sqrt"))
unary("neg", np.negative, "-x", float_only=False, grad=_ugrad("neg"))
unary("abs", np.abs, "|x|", float_only=False, grad=_ugrad("abs"))
unary("clip", lambda x, min, max: np.minimum(np.maximum(x, min), max), "min(max(x, min), max)",
      {"min": Attr("float", -math.inf), "max": Attr("float", math.inf)}, grad=_ugrad("clip"))

binary("add", np.add, "a + b", commutative=True, identity=0.0, grad=_bgrad("add"))
binary("sub", np.subtract, "a - b", identity=0.0, grad=_bgrad("sub"))
binary("mul", np.multiply, "a * b", commutative=True, identity=1.0, grad=_bgrad("mul"))
binary("div", np.divide, "a / b (true division)", float_only=True, identity=1.0,
       grad=_bgrad("div"))
binary("pow", np.power, "a ** b", float_only=True, identity=1.0, grad=_bgrad("pow"))
binary("maximum", np.maximum, "elementwise max, NaN-propagating", commutative=True,
       grad=_bgrad("maximum"))
binary("minimum", np.minimum, "elementwise min, NaN-propagating", commutative=True,
       grad=_bgrad("minimum"))


def _cast(x, dtype):
    return x.astype(DTYPES[dtype])


register(OpDef(
    name="cast",
    infer=lambda x, dtype: TensorType(x.shape, dtype),
    compute=_cast,
    attrs={"dtype": Attr("str", "f32", lambda v: v in DTYPES, f"one of {', '.join(DTYPES)}")},
    arity=(1, 1),
    fusion=Fusion.ELEMENTWISE,
    doc="convert to another dtype (C rounding rules of numpy)",
    grad=_cast_grad))


def _constant_infer(value, shape, dtype):
    return TensorType(shape, dtype)


register(OpDef(
    name="constant",
    infer=_constant_infer,
    compute=lambda value, shape, dtype: np.full(shape, value, DTYPES[dtype]),
    attrs={"value": Attr("float"), "shape": Attr("ints", (), *(lambda v: all(d >= 0 for d in v),
                                                              "dimensions must be >= 0")),
           "dtype": Attr("str", "f32", lambda v: v in DTYPES, f"one of {', '.join(DTYPES)}")},
    arity=(0, 0),
    fusion=Fusion.ELEMENTWISE,
    doc="a tensor filled with one value (scalars of traced code)"))
