"""Elementwise operators: unary maps and numpy-broadcasting binary arithmetic."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ShapeError
from ..types import DTYPES, TensorType
from ._util import broadcast, floats, same_dtype
from .registry import Attr, Fusion, OpDef, register

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


def unary(name, fn, doc, attrs=None, float_only=True):
    def infer(x, **_):
        return TensorType(x.shape, floats(x) if float_only else x.dtype)

    return register(OpDef(name, infer, _typed(fn), attrs or {}, (1, 1), Fusion.ELEMENTWISE, doc))


def binary(name, fn, doc, float_only=False, **facts):
    def infer(a, b):
        dtype = floats(a, b) if float_only else same_dtype(a, b)
        if dtype == "bool":
            raise ShapeError(f"{name} does not take bool operands")
        return TensorType(broadcast(a, b), dtype)

    return register(OpDef(name, infer, _typed(fn), {}, (2, 2), Fusion.BROADCAST, doc, **facts))


unary("relu", lambda x: np.maximum(x, 0), "max(x, 0)")
unary("relu6", lambda x: np.minimum(np.maximum(x, 0), 6), "min(max(x, 0), 6)")
unary("leaky_relu", lambda x, alpha: np.where(x >= 0, x, x * x.dtype.type(alpha)),
      "x if x >= 0 else alpha * x", {"alpha": Attr("float", 0.01)})
unary("elu", lambda x, alpha: np.where(x > 0, x, x.dtype.type(alpha) * np.expm1(x)),
      "x if x > 0 else alpha * (exp(x) - 1)", {"alpha": Attr("float", 1.0)})
def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows; keeps relative precision in both tails
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


unary("sigmoid", _sigmoid, "1 / (1 + exp(-x))")
unary("tanh", np.tanh, "hyperbolic tangent")
unary("softplus", lambda x: np.logaddexp(0, x), "log(1 + exp(x)), stable for large x")
_GELU_C = math.sqrt(2 / math.pi)
unary("gelu", lambda x, approximate: (
    0.5 * x * (1 + erf(x / math.sqrt(2))) if approximate == "none"
    else 0.5 * x * (1 + np.tanh(_GELU_C * (x + 0.044715 * x**3)))),
    "x * Phi(x); approximate='tanh' uses the tanh formula",
    {"approximate": Attr("str", "none", lambda v: v in ("none", "tanh"), "'none' or 'tanh'")})
unary("erf", erf, "the error function")
unary("exp", np.exp, "e ** x")
unary("log", np.log, "natural logarithm")
unary("sqrt", np.sqrt, "square root")
unary("neg", np.negative, "-x", float_only=False)
unary("abs", np.abs, "|x|", float_only=False)
unary("clip", lambda x, min, max: np.minimum(np.maximum(x, min), max), "min(max(x, min), max)",
      {"min": Attr("float", -math.inf), "max": Attr("float", math.inf)})

binary("add", np.add, "a + b", commutative=True, identity=0.0)
binary("sub", np.subtract, "a - b", identity=0.0)
binary("mul", np.multiply, "a * b", commutative=True, identity=1.0)
binary("div", np.divide, "a / b (true division)", float_only=True, identity=1.0)
binary("pow", np.power, "a ** b", float_only=True, identity=1.0)
binary("maximum", np.maximum, "elementwise max, NaN-propagating", commutative=True)
binary("minimum", np.minimum, "elementwise min, NaN-propagating", commutative=True)


def _cast(x, dtype):
    return x.astype(DTYPES[dtype])


register(OpDef(
    "cast", lambda x, dtype: TensorType(x.shape, dtype), _cast,
    {"dtype": Attr("str", "f32", lambda v: v in DTYPES, f"one of {', '.join(DTYPES)}")},
    (1, 1), Fusion.ELEMENTWISE, "convert to another dtype (C rounding rules of numpy)"))


def _constant_infer(value, shape, dtype):
    return TensorType(shape, dtype)


register(OpDef(
    "constant", _constant_infer,
    lambda value, shape, dtype: np.full(shape, value, DTYPES[dtype]),
    {"value": Attr("float"), "shape": Attr("ints", (), *(lambda v: all(d >= 0 for d in v),
                                                        "dimensions must be >= 0")),
     "dtype": Attr("str", "f32", lambda v: v in DTYPES, f"one of {', '.join(DTYPES)}")},
    (0, 0), Fusion.ELEMENTWISE, "a tensor filled with one value (scalars of traced code)"))
