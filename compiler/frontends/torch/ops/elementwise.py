"""Elementwise ATen operators: arithmetic, activations, comparisons and logic, casts, and
the operators that create constant tensors (full, arange, scalar_tensor, ...).

Binary arithmetic computes in the dtype torch gives the result (recorded on the node), so
an int tensor plus a float scalar adds in float32 as in torch; comparisons compute in the
operands' promoted dtype. Operators Lamina has no registry counterpart for (fmod, floor,
bitwise ops, ...) are evaluated with numpy when their inputs are constants, and reported as
unsupported otherwise.
"""

from __future__ import annotations

import numpy as np

from .common import (
    Builder,
    TorchNode,
    Unsupported,
    alias,
    dtype_of,
    handler,
    is_const,
    is_tensor,
    operand,
    out_dtype,
    promote,
)


# ---- arithmetic ------------------------------------------------------------------------------
def _binary(b: Builder, n: TorchNode, op: str, x, y):
    dt = out_dtype(n, promote(x, y))
    return b.call(op, operand(b, x, dt), operand(b, y, dt))


@handler
def add(b: Builder, n: TorchNode, x, y, alpha=1):
    if alpha != 1:
        y = _binary(b, n, "mul", y, alpha)
    return _binary(b, n, "add", x, y)


@handler
def sub(b: Builder, n: TorchNode, x, y, alpha=1):
    if alpha != 1:
        y = _binary(b, n, "mul", y, alpha)
    return _binary(b, n, "sub", x, y)


@handler
def rsub(b: Builder, n: TorchNode, x, y, alpha=1):
    return sub(b, n, y, x, alpha)


@handler
def mul(b: Builder, n: TorchNode, x, y):
    if out_dtype(n, None) == np.bool_:  # and of two masks
        return logical_and(b, n, x, y)
    return _binary(b, n, "mul", x, y)


@handler
def div(b: Builder, n: TorchNode, x, y, rounding_mode=None):
    if rounding_mode is None:
        return _binary(b, n, "div", x, y)
    rounding = {"floor": np.floor_divide, "trunc": lambda p, q: np.trunc(p / q)}
    return _numpy(b, n, lambda p, q: rounding[rounding_mode](p, q).astype(n.dtype), x, y)


@handler
def maximum(b: Builder, n: TorchNode, x, y):
    return _binary(b, n, "maximum", x, y)


@handler
def minimum(b: Builder, n: TorchNode, x, y):
    return _binary(b, n, "minimum", x, y)


@handler
def pow(b: Builder, n: TorchNode, x, exponent):
    if not is_tensor(exponent) and is_tensor(x) and not is_const(x):
        e = float(exponent)
        dt = out_dtype(n, dtype_of(x))
        x = b.cast(x, dt)
        if e == 1:
            return x
        if e == 2:
            return b.call("mul", x, x)
        if e == 0.5:
            return b.call("sqrt", x)
    return _binary(b, n, "pow", x, exponent)


def _numpy(b: Builder, n: TorchNode, fn, *args):
    """An operator Lamina has no registry counterpart for, evaluated on constants."""
    if any(is_tensor(a) and not is_const(a) for a in args):
        raise Unsupported("no Lamina operator computes this at run time")
    with np.errstate(all="ignore"):
        out = np.asarray(fn(*[np.asarray(a) for a in args]))
    dt = out_dtype(n, out.dtype)
    return b.derive(out.astype(dt, copy=False), *[a for a in args if is_const(a)])


@handler
def fmod(b: Builder, n: TorchNode, x, y):
    return _numpy(b, n, np.fmod, x, y)


@handler
def remainder(b: Builder, n: TorchNode, x, y):
    return _numpy(b, n, np.mod, x, y)


for _name, _fn in [("floor", np.floor), ("ceil", np.ceil), ("trunc", np.trunc),
                   ("sign", np.sign)]:
    alias(_name, lambda b, n, *args, _fn=_fn: _numpy(b, n, _fn, *args))


def _bitwise(op: str, fn):
    """The registry's operator on integer tensors; bool ones (logical) fold with numpy."""
    def run(b: Builder, n: TorchNode, x, y):
        if all(is_tensor(v) and dtype_of(v) in (np.int32, np.int64) for v in (x, y)) and \
                dtype_of(x) == dtype_of(y) and not (is_const(x) and is_const(y)):
            return b.call(op, x, y)
        return _numpy(b, n, fn, x, y)

    run.__name__ = op
    return run


for _name, _fn in [("bitwise_and", np.bitwise_and), ("bitwise_or", np.bitwise_or),
                   ("bitwise_xor", np.bitwise_xor)]:
    alias(_name, _bitwise(_name, _fn))


def _round(b: Builder, n: TorchNode, x, decimals=0):
    """Halves to even, as torch rounds; integers are whole already."""
    if decimals or not np.issubdtype(dtype_of(x), np.floating):
        return _numpy(b, n, lambda v: np.round(v, decimals), x)
    return b.call("round", x)


alias("round", _round)  # (a function named round would hide the builtin in this module)


# ---- unary and activations -------------------------------------------------------------------
def _unary(op: str):
    def fn(b: Builder, n: TorchNode, x):
        return b.call(op, b.cast(x, out_dtype(n, dtype_of(x))))

    fn.__name__ = op
    return fn


for _aten, _op in [("neg", "neg"), ("abs", "abs"), ("exp", "exp"), ("log", "log"),
                   ("sqrt", "sqrt"), ("tanh", "tanh"), ("sigmoid", "sigmoid"), ("erf", "erf"),
                   ("relu", "relu")]:
    alias(_aten, _unary(_op))
for _aten in ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh",
              "atanh"):
    alias(_aten, _unary(_aten))


@handler
def rsqrt(b: Builder, n: TorchNode, x):
    x = b.cast(x, out_dtype(n, dtype_of(x)))
    return b.call("div", np.asarray(1, dtype_of(x)), b.call("sqrt", x))


@handler
def reciprocal(b: Builder, n: TorchNode, x):
    x = b.cast(x, out_dtype(n, dtype_of(x)))
    return b.call("div", np.asarray(1, dtype_of(x)), x)


@handler
def gelu(b: Builder, n: TorchNode, x, approximate="none"):
    return b.call("gelu", x, approximate=approximate)


@handler
def leaky_relu(b: Builder, n: TorchNode, x, negative_slope=0.01):
    return b.call("leaky_relu", x, alpha=float(negative_slope))


@handler
def elu(b: Builder, n: TorchNode, x, alpha=1.0, scale=1.0, input_scale=1.0):
    if input_scale != 1:
        x = b.call("mul", x, np.asarray(input_scale, dtype_of(x)))
    y = b.call("elu", x, alpha=float(alpha))
    return y if scale == 1 else b.call("mul", y, np.asarray(scale, dtype_of(x)))


@handler
def softplus(b: Builder, n: TorchNode, x, beta=1.0, threshold=20.0):
    if beta == 1:  # torch returns x past the threshold; softplus(x) - x < 3e-9 there
        return b.call("softplus", x)
    scaled = b.call("mul", x, np.asarray(beta, dtype_of(x)))
    return b.call("div", b.call("softplus", scaled), np.asarray(beta, dtype_of(x)))


@handler
def hardtanh(b: Builder, n: TorchNode, x, min_val=-1.0, max_val=1.0):
    if (min_val, max_val) == (0, 6):
        return b.call("relu6", x)
    return b.call("clip", x, min=float(min_val), max=float(max_val))


@handler
def clamp(b: Builder, n: TorchNode, x, min=None, max=None):
    dt = out_dtype(n, dtype_of(x))
    x = b.cast(x, dt)
    if is_tensor(min) or is_tensor(max):  # clamp.Tensor: bounds that broadcast
        if min is not None:
            x = b.call("maximum", x, operand(b, min, dt))
        if max is not None:
            x = b.call("minimum", x, operand(b, max, dt))
        return x
    if dt.kind != "f":
        return _numpy(b, n, lambda v: np.clip(v, min, max), x)
    if (min, max) == (0, 6):
        return b.call("relu6", x)
    lo = -np.inf if min is None else float(min)
    hi = np.inf if max is None else float(max)
    return b.call("clip", x, min=lo, max=hi)


@handler
def clamp_min(b: Builder, n: TorchNode, x, min):
    return clamp(b, n, x, min=min)


@handler
def clamp_max(b: Builder, n: TorchNode, x, max):
    return clamp(b, n, x, max=max)


@handler
def _softmax(b: Builder, n: TorchNode, x, dim, half_to_float=False):
    return b.call("softmax", x, axis=int(dim))


@handler
def _log_softmax(b: Builder, n: TorchNode, x, dim, half_to_float=False):
    return b.call("log_softmax", x, axis=int(dim))


# ---- comparisons and logic -------------------------------------------------------------------
def _compare(b: Builder, x, y):
    dt = promote(x, y)
    return operand(b, x, dt), operand(b, y, dt)


def _not(b: Builder, x):
    return b.call("equal", x, np.asarray(False))


@handler
def eq(b: Builder, n: TorchNode, x, y):
    return b.call("equal", *_compare(b, x, y))


@handler
def ne(b: Builder, n: TorchNode, x, y):
    return _not(b, eq(b, n, x, y))


@handler
def gt(b: Builder, n: TorchNode, x, y):
    return b.call("greater", *_compare(b, x, y))


@handler
def lt(b: Builder, n: TorchNode, x, y):
    return gt(b, n, y, x)


@handler
def ge(b: Builder, n: TorchNode, x, y):
    x, y = _compare(b, x, y)  # greater or equal: NaN compares false, as in torch
    return b.call("where", b.call("greater", x, y), np.asarray(True), b.call("equal", x, y))


@handler
def le(b: Builder, n: TorchNode, x, y):
    return ge(b, n, y, x)


def _bool(b: Builder, x):
    """A tensor's truth (nonzero), as torch's logical operators read it."""
    if dtype_of(x) == np.bool_:
        return x
    return _not(b, b.call("equal", x, np.asarray(0, dtype_of(x))))


@handler
def logical_not(b: Builder, n: TorchNode, x):
    return _not(b, _bool(b, x))


@handler
def logical_and(b: Builder, n: TorchNode, x, y):
    return b.call("where", _bool(b, x), _bool(b, y), np.asarray(False))


@handler
def logical_or(b: Builder, n: TorchNode, x, y):
    return b.call("where", _bool(b, x), np.asarray(True), _bool(b, y))


@handler
def logical_xor(b: Builder, n: TorchNode, x, y):
    return _not(b, b.call("equal", _bool(b, x), _bool(b, y)))


@handler
def bitwise_not(b: Builder, n: TorchNode, x):
    if dtype_of(x) == np.bool_:
        return _not(b, x)
    if dtype_of(x) in (np.int32, np.int64) and not is_const(x):
        return b.call("bitwise_not", x)
    return _numpy(b, n, np.invert, x)


@handler
def where(b: Builder, n: TorchNode, cond, x, y):
    dt = out_dtype(n, promote(x, y))
    return b.call("where", _bool(b, operand(b, cond, np.bool_) if not is_tensor(cond)
                                  else cond), operand(b, x, dt), operand(b, y, dt))


@handler
def isnan(b: Builder, n: TorchNode, x):
    return _not(b, b.call("equal", x, x))


# ---- casts and copies ------------------------------------------------------------------------
def _identity(b: Builder, n: TorchNode, x, *args, **kwargs):
    return x


for _name in ("clone", "alias", "lift_fresh_copy", "detach", "contiguous", "dropout"):
    alias(_name, _identity)


@handler
def _to_copy(b: Builder, n: TorchNode, x, dtype=None, **kwargs):
    return x if dtype is None else b.cast(x, dtype)


@handler
def native_dropout(b: Builder, n: TorchNode, x, p, train):
    if train:
        raise Unsupported("dropout in training mode")
    return x, None


# ---- constants -------------------------------------------------------------------------------
def _fill_dtype(value, dtype):
    if dtype is not None:
        return np.dtype(dtype)
    if isinstance(value, bool):
        return np.dtype(np.bool_)
    return np.dtype(np.int64) if isinstance(value, int) else np.dtype(np.float32)


@handler
def full(b: Builder, n: TorchNode, size, fill_value, dtype=None, **kwargs):
    return np.full(tuple(size), fill_value, _fill_dtype(fill_value, dtype))


@handler
def full_like(b: Builder, n: TorchNode, x, fill_value, dtype=None, **kwargs):
    return np.full(tuple(x.shape), fill_value, dtype if dtype is not None else dtype_of(x))


@handler
def zeros(b: Builder, n: TorchNode, size, dtype=None, **kwargs):
    return np.zeros(tuple(size), dtype or np.float32)


@handler
def ones(b: Builder, n: TorchNode, size, dtype=None, **kwargs):
    return np.ones(tuple(size), dtype or np.float32)


@handler
def zeros_like(b: Builder, n: TorchNode, x, dtype=None, **kwargs):
    return np.zeros(tuple(x.shape), dtype if dtype is not None else dtype_of(x))


@handler
def ones_like(b: Builder, n: TorchNode, x, dtype=None, **kwargs):
    return np.ones(tuple(x.shape), dtype if dtype is not None else dtype_of(x))


@handler
def empty(b: Builder, n: TorchNode, size, dtype=None, **kwargs):  # contents undefined: zeros
    return np.zeros(tuple(size), dtype or np.float32)


@handler
def scalar_tensor(b: Builder, n: TorchNode, value, dtype=None, **kwargs):
    return np.asarray(value, dtype or np.float32)


@handler
def arange(b: Builder, n: TorchNode, start, end=None, step=1, dtype=None, **kwargs):
    if end is None:
        start, end = 0, start
    values = np.arange(start, end, step)
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if ints else np.float32
    return values.astype(dtype)


@handler
def lift_fresh(b: Builder, n: TorchNode, x):
    return x
