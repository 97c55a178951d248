"""The ONNX operator table: one small function per ONNX operator, named like it.

Each function takes the `Builder`, the `OnnxNode` (attributes, opset) and the node's inputs
(graph values, numpy arrays for what is known at import time, or None for an omitted
optional input), and returns the node's output(s). It builds registry operators with
`b.call`, which evaluates them on the spot when every input is constant, so one function
serves both the run-time graph and import-time constant folding. Operators without a
registry counterpart (`Range`, `NonZero`, ...) only fold: they take their inputs with
`b.const`, which raises `Unsupported` for a run-time value. This
module holds the elementwise, logic, reduction and constant-making operators; shape
operators live in shape.py, neural-network ones in nn.py, Resize in resize.py and the
recurrent ones in rnn.py, the table itself in common.py.

Attribute defaults and inputs-versus-attributes follow each operator's history: `b.opset`
is the model's version of the default operator set.
"""

from __future__ import annotations

import math

import numpy as np

from ir.ops import narrow
from ir.tensor_type import DTYPES, dtype_name

from ...op_table import along
from ...topk import topk
from ..builder import Builder, OnnxNode, Unsupported, np_dtype, onnx_type_name, stored_dtype
from .common import alias, dtype, handler, is_const, like, norm_axis, rank


# ---- constants and shapes (fold at import time) --------------------------------------------
@handler
def Constant(b: Builder, n: OnnxNode):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in n.attrs:
            v = n.attrs[key]
            if key == "value":
                return np.asarray(v)
            return np.asarray(v, np.float32 if "float" in key else np.int64)
    raise Unsupported(f"Constant with attribute(s) {sorted(n.attrs)} (sparse or string)")


@handler
def ConstantOfShape(b: Builder, n: OnnxNode, shape):
    value = n.get("value", np.zeros(1, np.float32))
    dims = b.sized(b.ints(shape, "the shape"), value.dtype)  # before numpy allocates it
    return np.full(dims, value.reshape(-1)[0], value.dtype)


@handler
def Shape(b: Builder, n: OnnxNode, x):
    dims = list(x.shape)
    r = len(dims)
    start, end = n.get("start", 0), n.get("end", r)
    start, end = (min(max(norm_axis(v, r), 0), r) for v in (start, end))
    return np.asarray(dims[start:end], np.int64)


@handler
def Size(b: Builder, n: OnnxNode, x):
    return np.asarray(math.prod(x.shape), np.int64)


@handler
def Identity(b: Builder, n: OnnxNode, x):
    return x


@handler
def Cast(b: Builder, n: OnnxNode, x):
    to = np_dtype(n.get("to"))
    if to is None:
        raise Unsupported(f"cast to {onnx_type_name(n.get('to'))}")
    if stored_dtype(n.get("to")).name in narrow.ROUNDINGS:  # float16 ... int2: in f32/i32
        return _cast_narrow(b, n, x, stored_dtype(n.get("to")), to)
    if is_const(x):
        return x.astype(to)
    if to not in DTYPES.values():
        raise Unsupported(f"cast to {to} (Lamina has {', '.join(DTYPES)})")
    return x if dtype(x) == to else b.call("cast", x, dtype=dtype_name(to))


def _cast_narrow(b: Builder, n: OnnxNode, x, stored: np.dtype, to: np.dtype):
    """A Cast to float16, bfloat16, float8, float4, int4 or int2: the value rounded to the
    format (ONNX's rounding, saturation and special values: ir/ops/narrow.py) in the type it
    travels in, `to` (f32, or i32 for the integer formats)."""
    fmt = narrow.ROUNDINGS[stored.name]
    if n.outputs and n.outputs[0]:  # a CastLike reading this value casts to its format
        b.stored[n.outputs[0]] = stored
    src = dtype(x)
    if src.kind == "f" or (fmt.kind == "int" and src.name in ("int32", "int64")):
        work = src  # what round_to_format takes as it is: one rounding from the source
    elif fmt.kind == "int":
        work = np.dtype(np.int32)  # bool, 8-bit: exact in int32
    else:
        work = np.dtype(np.float64 if src.name == "int64" else np.float32)
    # saturate is float8's attribute: float16 and bfloat16 overflow to inf
    attrs = {"format": fmt.name, "saturate": bool(n.get("saturate", 1)) and fmt.bits < 16}
    if fmt.kind == "e8m0":
        attrs["round_mode"] = n.get("round_mode", "up")
    return _cast(b, b.call("round_to_format", _cast(b, x, work), **attrs), to)


@handler
def CastLike(b: Builder, n: OnnxNode, x, target):
    # the target's type as the file declares it where Lamina carries it wider (float8 in f32)
    stored = b.stored.get(n.inputs[1]) if len(n.inputs) > 1 else None
    to = stored if stored is not None and stored.name in narrow.ROUNDINGS else dtype(target)
    attrs = {k: n.attrs[k] for k in ("saturate", "round_mode") if k in n.attrs}
    return Cast(b, OnnxNode("Cast", n.name, [], n.outputs, {"to": _onnx_dtype(to), **attrs}),
                x)


def _onnx_dtype(dt: np.dtype) -> int:
    import onnx

    return onnx.helper.np_dtype_to_tensor_dtype(dt)


@handler
def Range(b: Builder, n: OnnxNode, start, limit, delta):
    s, lim, d = (b.const(v).reshape(()) for v in (start, limit, delta))
    count = max(math.ceil(float((lim - s) / d)), 0)
    b.sized([count], s.dtype)  # before numpy allocates it
    return (s + np.arange(count, dtype=s.dtype) * d).astype(s.dtype)


def _numpy_only(name: str, fn):
    """An ONNX operator with no registry counterpart: folds when its inputs are constant."""

    def run(b: Builder, n: OnnxNode, *xs):
        arrays = [b.const(x, f"input {i} of {name}") for i, x in enumerate(xs)]
        with np.errstate(all="ignore"):
            return np.asarray(fn(*arrays))

    run.__name__ = name
    alias(name, run)


_numpy_only("NonZero", lambda x: np.asarray(np.nonzero(x), np.int64))


# ---- trigonometry, hyperbolic functions and Round: one registry operator each --------------
def _float_unary(name: str, op: str):
    def run(b: Builder, n: OnnxNode, x):
        return b.call(op, x)

    run.__name__ = name
    alias(name, run)


for _name in ("Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh",
              "Atanh", "Round"):
    _float_unary(_name, _name.lower())


@handler
def EyeLike(b: Builder, n: OnnxNode, x):
    """Ones on the k-th diagonal: depends on x's shape only, so it is a constant."""
    to = np_dtype(n.get("dtype")) if "dtype" in n.attrs else dtype(x)
    if to is None:
        raise Unsupported(f"EyeLike to {onnx_type_name(n.get('dtype'))}")
    if rank(x) != 2:
        raise ValueError(f"EyeLike of a rank-{rank(x)} input (it takes 2-D)")
    rows, cols = b.sized(x.shape, to)
    return np.eye(rows, cols, n.get("k", 0), dtype=to)


# ---- comparisons and logic: greater, equal and where make all of them ----------------------
TRUE, FALSE = np.asarray(True), np.asarray(False)


def _not(b: Builder, x):
    return b.call("where", x, FALSE, TRUE)


@handler
def Equal(b: Builder, n: OnnxNode, x, y):
    return b.call("equal", x, y)


@handler
def Greater(b: Builder, n: OnnxNode, x, y):
    return b.call("greater", x, y)


@handler
def Less(b: Builder, n: OnnxNode, x, y):
    return b.call("greater", y, x)


@handler
def GreaterOrEqual(b: Builder, n: OnnxNode, x, y):  # not "not less": NaN compares false
    return b.call("where", b.call("greater", x, y), TRUE, b.call("equal", x, y))


@handler
def LessOrEqual(b: Builder, n: OnnxNode, x, y):
    return b.call("where", b.call("greater", y, x), TRUE, b.call("equal", x, y))


@handler
def Not(b: Builder, n: OnnxNode, x):
    return _not(b, x)


@handler
def And(b: Builder, n: OnnxNode, x, y):
    return b.call("where", x, y, FALSE)


@handler
def Or(b: Builder, n: OnnxNode, x, y):
    return b.call("where", x, TRUE, y)


@handler
def Xor(b: Builder, n: OnnxNode, x, y):
    return b.call("where", x, _not(b, y), y)


@handler
def IsNaN(b: Builder, n: OnnxNode, x):
    return _not(b, b.call("equal", x, x))


@handler
def IsInf(b: Builder, n: OnnxNode, x):
    pos, neg = n.get("detect_positive", 1), n.get("detect_negative", 1)
    if pos and neg:
        return b.call("equal", b.call("abs", x), like(x, np.inf))
    if pos or neg:
        return b.call("equal", x, like(x, np.inf if pos else -np.inf))
    return np.zeros(x.shape, np.bool_)


@handler
def Where(b: Builder, n: OnnxNode, cond, x, y):
    return b.call("where", cond, x, y)


@handler
def OneHot(b: Builder, n: OnnxNode, indices, depth, values):
    d = int(b.const(depth, "the depth").reshape(-1)[0])
    if dtype(indices).kind == "f":
        indices = b.call("cast", indices, dtype="i64")
    # an index outside [-depth, depth) gives a row of off values (the registry's one_hot
    # refuses one): such indices become 0, and their rows are masked off
    inside = b.call("where", b.call("greater", indices, like(indices, -d - 1)),
                    b.call("greater", like(indices, d), indices), np.asarray(False))
    safe = b.call("where", inside, indices, like(indices, 0))
    axis = norm_axis(n.get("axis", -1), rank(indices) + 1)
    hot = b.call("one_hot", safe, depth=d, axis=axis, dtype="bool")
    inside = b.reshape(inside, [*inside.shape[:axis], 1, *inside.shape[axis:]])
    hot = b.call("where", inside, hot, np.asarray(False))
    off, on = (b.call("gather", values, np.asarray(k, np.int64)) for k in (0, 1))
    return b.call("where", hot, on, off)


@handler
def Trilu(b: Builder, n: OnnxNode, x, k=None):
    k = 0 if k is None else int(b.const(k, "k").reshape(-1)[0])
    rows, cols = x.shape[-2:]
    keep = (np.triu if n.get("upper", 1) else np.tril)(np.ones((rows, cols), np.bool_), k)
    return b.call("where", keep, x, like(x, 0))


def _trunc(b: Builder, x):
    """x rounded toward zero: through int64 where it is small enough to have a fraction (from
    2**52 on every float is whole; inf and NaN pass through as they are)."""
    whole = b.call("cast", b.call("cast", x, dtype="i64"), dtype=dtype_name(dtype(x)))
    return b.call("where", b.call("greater", like(x, 2.0**52), b.call("abs", x)), whole, x)


def _rounding(name: str, fn, toward: float):
    """Floor and Ceil: truncated, then moved one step `toward` where that passed x."""

    def run(b: Builder, n: OnnxNode, x):
        if is_const(x):
            return fn(x)
        if dtype(x).kind != "f":
            return x
        t = _trunc(b, x)
        past = b.call("greater", t, x) if toward < 0 else b.call("greater", x, t)
        return b.call("where", past, b.call("add", t, like(x, toward)), t)

    run.__name__ = name
    alias(name, run)


_rounding("Floor", np.floor, -1.0)
_rounding("Ceil", np.ceil, 1.0)


@handler
def Sign(b: Builder, n: OnnxNode, x):
    if is_const(x):
        return np.sign(x)
    one, zero = like(x, 1), like(x, 0)
    return b.call("where", b.call("greater", x, zero), one,
                  b.call("where", b.call("greater", zero, x), like(x, -1), zero))


@handler
def Mod(b: Builder, n: OnnxNode, x, y):
    """x - trunc(x / y) * y (C's fmod), shifted by y where its sign differs from y's (Python's
    mod, ONNX's default). Integers are computed in float64: exact while |x| < 2**52."""
    if is_const(x) and is_const(y):
        with np.errstate(all="ignore"):
            return np.fmod(x, y) if n.get("fmod", 0) else np.mod(x, y)
    out = np.result_type(dtype(x), dtype(y))
    if out.kind != "f":
        x, y = (v.astype(np.float64) if is_const(v) else b.call("cast", v, dtype="f64")
                for v in (x, y))
    q = b.call("div", x, y)
    rem = b.call("sub", x, b.call("mul", _trunc(b, q), y))
    finite_by_inf = b.call("where", b.call("equal", b.call("abs", y), like(q, np.inf)),
                           b.call("greater", like(q, np.inf), b.call("abs", x)), FALSE)
    rem = b.call("where", finite_by_inf, x, rem)  # fmod(x, ±inf) = x
    if not n.get("fmod", 0):
        neg_r, neg_y = b.call("greater", like(q, 0), rem), b.call("greater", like(q, 0), y)
        differ = b.call("where", neg_r, _not(b, neg_y), neg_y)
        shift = b.call("where", b.call("equal", rem, like(q, 0)), FALSE, differ)
        rem = b.call("where", shift, b.call("add", rem, y), rem)
    return rem if out.kind == "f" else b.call("cast", rem, dtype=dtype_name(out))


@handler
def ArgMax(b: Builder, n: OnnxNode, x):
    return _arg(b, n, x, np.argmax)


@handler
def ArgMin(b: Builder, n: OnnxNode, x):
    return _arg(b, n, x, np.argmin)


def _arg(b, n, x, fn):
    axis = norm_axis(n.get("axis", 0), rank(x))
    keep, last = bool(n.get("keepdims", 1)), bool(n.get("select_last_index", 0))
    if is_const(x):
        idx = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis) if last else fn(x, axis=axis)
        idx = idx.astype(np.int64)
        return np.expand_dims(idx, axis) if keep else idx
    if dtype(x).kind != "f":
        raise Unsupported(f"{n.op} of {dtype(x)} values")
    # the positions holding the extreme value, as float indices; the least (or greatest) wins
    best = b.call("reduce_max" if fn is np.argmax else "reduce_min", x, axes=[axis],
                  keepdims=True)
    d = x.shape[axis]
    iota = np.arange(d, dtype=dtype(x)).reshape([d if k == axis else 1 for k in range(rank(x))])
    hits = b.call("where", b.call("equal", x, best), iota, like(x, -1 if last else d))
    idx = b.call("reduce_max" if last else "reduce_min", hits, axes=[axis], keepdims=keep)
    return b.call("cast", idx, dtype="i64")


@handler
def TopK(b: Builder, n: OnnxNode, x, k):
    """The shared composition (compiler/frontends/topk.py): stable, lower indices first among
    equals, as ONNX asks; quadratic in the axis length."""
    kk = int(b.const(k, "k").reshape(-1)[0])
    axis = norm_axis(n.get("axis", -1), rank(x))
    d = x.shape[axis]
    if not 0 <= kk <= d:
        raise ValueError(f"k={kk} for an axis of length {d}")
    kind = dtype(x)
    if kind.kind != "f":  # compared and summed as float64 (exact below 2**53)
        x = x.astype(np.float64) if is_const(x) else b.call("cast", x, dtype="f64")
    values, index = topk(b.call, x, tuple(x.shape), dtype_name(dtype(x)), kk, axis,
                         bool(n.get("largest", 1)))
    return _cast(b, values, kind), _cast(b, index, np.dtype(np.int64))


def _cast(b: Builder, y, to: np.dtype):
    if dtype(y) == to:
        return y
    return y.astype(to) if is_const(y) else b.call("cast", y, dtype=dtype_name(to))


# ---- elementwise ---------------------------------------------------------------------------
def _unary(name: str, op: str, **attrs_from_onnx):
    def run(b: Builder, n: OnnxNode, x):
        attrs = {k: float(n.get(onnx_key, default)) for k, (onnx_key, default)
                 in attrs_from_onnx.items()}
        return b.call(op, x, **attrs)

    run.__name__ = name
    alias(name, run)


for _name, _op in {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp",
                   "Log": "log", "Sqrt": "sqrt", "Neg": "neg", "Abs": "abs", "Erf": "erf",
                   "Softplus": "softplus"}.items():
    _unary(_name, _op)
_unary("LeakyRelu", "leaky_relu", alpha=("alpha", 0.01))
_unary("Elu", "elu", alpha=("alpha", 1.0))


@handler
def Selu(b: Builder, n: OnnxNode, x):
    alpha = n.get("alpha", 1.67326319217681884765625)
    gamma = n.get("gamma", 1.05070102214813232421875)
    return b.call("mul", b.call("elu", x, alpha=float(alpha)), like(x, gamma))


@handler
def Softsign(b: Builder, n: OnnxNode, x):
    return b.call("div", x, b.call("add", b.call("abs", x), like(x, 1)))


@handler
def Reciprocal(b: Builder, n: OnnxNode, x):
    return b.call("div", like(x, 1), x)


@handler
def HardSigmoid(b: Builder, n: OnnxNode, x):
    y = b.call("add", b.call("mul", x, like(x, n.get("alpha", 0.2))), like(x, n.get("beta", 0.5)))
    return b.call("clip", y, min=0.0, max=1.0)


@handler
def HardSwish(b: Builder, n: OnnxNode, x):
    hs = HardSigmoid(b, OnnxNode("HardSigmoid", n.name, [], [], {"alpha": 1 / 6}), x)
    return b.call("mul", x, hs)


@handler
def Mish(b: Builder, n: OnnxNode, x):
    return b.call("mul", x, b.call("tanh", b.call("softplus", x)))


@handler
def Gelu(b: Builder, n: OnnxNode, x):
    return b.call("gelu", x, approximate=n.get("approximate", "none"))


@handler
def PRelu(b: Builder, n: OnnxNode, x, slope):
    if is_const(slope) and slope.size == 1:
        return b.call("leaky_relu", x, alpha=float(slope.reshape(-1)[0]))
    if b.opset < 7 and rank(slope) == 1 and rank(x) > 2 and slope.shape[0] == x.shape[1]:
        slope = b.reshape(slope, (slope.shape[0], *[1] * (rank(x) - 2)))  # per channel
    neg = b.call("mul", slope, b.call("minimum", x, like(x, 0)))
    return b.call("add", b.call("relu", x), neg)


@handler
def Clip(b: Builder, n: OnnxNode, x, lo=None, hi=None):
    if b.opset < 11:
        lo = like(x, n.get("min", -np.inf)) if "min" in n.attrs else None
        hi = like(x, n.get("max", np.inf)) if "max" in n.attrs else None
    floats = dtype(x).kind == "f"
    if floats and all(v is None or is_const(v) for v in (lo, hi)):
        attrs = {k: float(v.reshape(-1)[0]) for k, v in (("min", lo), ("max", hi))
                 if v is not None}
        return b.call("clip", x, **attrs)
    if lo is not None:
        x = b.call("maximum", x, lo)
    if hi is not None:
        x = b.call("minimum", x, hi)
    return x


def _legacy_broadcast(b: Builder, n: OnnxNode, x, y):
    """Opsets before 7 broadcast B against A from `axis` when asked (`broadcast=1`)."""
    if b.opset < 7 and n.get("broadcast", 0) and "axis" in n.attrs and rank(y) < rank(x):
        axis = norm_axis(n.get("axis"), rank(x))
        y = b.reshape(y, (*[1] * axis, *y.shape, *[1] * (rank(x) - axis - rank(y))))
    return x, y


def _binary(name: str, op: str):
    def run(b: Builder, n: OnnxNode, x, y):
        x, y = _legacy_broadcast(b, n, x, y)
        if name == "Pow" and dtype(y) != dtype(x):  # the exponent may have its own type
            y = y.astype(dtype(x)) if is_const(y) else b.call("cast", y,
                                                                dtype=dtype_name(dtype(x)))
        if name == "Div" and is_const(x) and is_const(y) and dtype(x).kind in "iu":
            with np.errstate(all="ignore"):  # C's truncating integer division
                return (np.trunc(x / y)).astype(x.dtype) if y.all() else np.zeros_like(x)
        if name == "Div" and dtype(x).kind in "iu":  # the same in float64 (exact below 2**52)
            f = [b.call("cast", v, dtype="f64") for v in (x, y)]
            return b.call("cast", _trunc(b, b.call("div", *f)), dtype=dtype_name(dtype(x)))
        if name == "Pow" and dtype(x).kind in "iu" and not (is_const(x) and is_const(y)):
            # integer powers in float64: exact while the result is below 2**53
            f = [v.astype(np.float64) if is_const(v) else b.call("cast", v, dtype="f64")
                 for v in (x, y)]
            return b.call("cast", b.call("pow", *f), dtype=dtype_name(dtype(x)))
        return b.call(op, x, y)

    run.__name__ = name
    alias(name, run)


for _name, _op in {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div",
                   "Pow": "pow"}.items():
    _binary(_name, _op)


def _variadic(name: str, op: str):
    def run(b: Builder, n: OnnxNode, *xs):
        xs = [x for x in xs if x is not None]
        y = xs[0]
        for x in xs[1:]:
            y = b.call(op, y, x)
        if name == "Mean" and len(xs) > 1:
            y = b.call("div", y, like(y, len(xs)))
        return y

    run.__name__ = name
    alias(name, run)


for _name, _op in {"Sum": "add", "Max": "maximum", "Min": "minimum", "Mean": "add"}.items():
    _variadic(_name, _op)


@handler
def CumSum(b: Builder, n: OnnxNode, x, axis):
    """A matmul by a constant triangle of ones along the axis."""
    a = norm_axis(int(b.const(axis, "the axis").reshape(-1)[0]), rank(x))
    d = x.shape[a]
    i, j = np.arange(d)[:, None], np.arange(d)[None, :]  # out index i, in index j
    exclusive, reverse = n.get("exclusive", 0), n.get("reverse", 0)
    keep = (j >= i if reverse else j <= i) & ((j != i) if exclusive else True)
    if is_const(x):
        return np.moveaxis(np.moveaxis(x, a, -1) @ keep.T.astype(x.dtype), -1, a)
    if dtype(x).kind != "f":  # integers in float64: exact while the sums stay below 2**53
        return _cast(b, along(b, _cast(b, x, np.dtype(np.float64)), a,
                              keep.astype(np.float64)), dtype(x))
    return along(b, x, a, keep.astype(np.float64))


@handler
def CumProd(b: Builder, n: OnnxNode, x, axis):
    """A running product over the slices along the axis, concatenated (one mul per slice)."""
    a = norm_axis(int(b.const(axis, "the axis").reshape(-1)[0]), rank(x))
    d = x.shape[a]
    if d > 256:
        raise Unsupported(f"CumProd over {d} elements (one node per element)")
    parts = [b.call("slice", x, starts=[k], ends=[k + 1], axes=[a]) for k in range(d)]
    if n.get("reverse", 0):
        parts.reverse()
    ones = np.ones([1 if i == a else s for i, s in enumerate(x.shape)], dtype(x))
    running, outs = None, []
    for p in parts:
        before = running
        running = p if before is None else b.call("mul", before, p)
        if n.get("exclusive", 0):  # the product of the slices before this one
            outs.append(ones if before is None else before)
        else:
            outs.append(running)
    if n.get("reverse", 0):
        outs.reverse()
    return outs[0] if d == 1 else b.call("concat", *outs, axis=a)


@handler
def BitShift(b: Builder, n: OnnxNode, x, y):
    """ONNX shifts unsigned types, which the importer reads widened (uint8 as int32, ...):
    bit_shift reads its operands as unsigned, so a right shift brings in zeros, and the
    bits a left shift moves past the narrow type go when the output is narrowed back."""
    left = n.get("direction") in ("LEFT", b"LEFT")
    return b.call("bit_shift", x, y, direction="left" if left else "right")


# ---- softmax -------------------------------------------------------------------------------
def _softmax(b: Builder, n: OnnxNode, x, op: str):
    r = rank(x)
    if b.opset >= 13:
        return b.call(op, x, axis=n.get("axis", -1))
    axis = norm_axis(n.get("axis", 1), r)  # before 13: over all axes from `axis` on, as 2-D
    if axis == r - 1:
        return b.call(op, x, axis=-1)
    y = b.call(op, b.call("flatten", x, axis=axis), axis=-1)
    return b.reshape(y, x.shape)


@handler
def Hardmax(b: Builder, n: OnnxNode, x):
    """1 at the first maximum along the axis, 0 elsewhere."""
    r = rank(x)
    if b.opset < 13:  # over all axes from `axis` on, as 2-D (as Softmax was)
        axis = norm_axis(n.get("axis", 1), r)
        if axis == r - 1:
            return _hardmax(b, x, axis)
        return b.reshape(_hardmax(b, b.call("flatten", x, axis=axis), 1), x.shape)
    return _hardmax(b, x, norm_axis(n.get("axis", -1), r))


def _hardmax(b: Builder, x, axis: int):
    first = _arg(b, OnnxNode("ArgMax", "", [], [], {"axis": axis, "keepdims": 0}), x,
                 np.argmax)
    hot = b.call("one_hot", first, depth=x.shape[axis], axis=axis, dtype="bool")
    return b.call("where", hot, like(x, 1), like(x, 0))


@handler
def LpNormalization(b: Builder, n: OnnxNode, x):
    axis, p = n.get("axis", -1), n.get("p", 2)
    if p not in (1, 2):
        raise Unsupported(f"LpNormalization with p={p}")
    mag = b.call("abs", x) if p == 1 else b.call("mul", x, x)
    norm = b.call("reduce_sum", mag, axes=[axis], keepdims=True)
    norm = norm if p == 1 else b.call("sqrt", norm)
    safe = b.call("where", b.call("equal", norm, like(x, 0)), like(x, 1), norm)  # 0 stays 0
    return b.call("div", x, safe)


@handler
def Softmax(b: Builder, n: OnnxNode, x):
    return _softmax(b, n, x, "softmax")


@handler
def LogSoftmax(b: Builder, n: OnnxNode, x):
    return _softmax(b, n, x, "log_softmax")


# ---- reductions ----------------------------------------------------------------------------
def _reduce_axes(b: Builder, n: OnnxNode, axes_input, since: int):
    """(axes, keepdims), or None for an identity (no axes with noop_with_empty_axes)."""
    if b.opset >= since:
        axes = b.ints(axes_input, "the axes") if axes_input is not None else []
    else:
        axes = list(n.get("axes", []))
    if not axes and n.get("noop_with_empty_axes", 0):
        return None
    return tuple(axes), bool(n.get("keepdims", 1))


def _reduction(name: str, since: int, pre=None, op: str = "reduce_sum", post=None):
    def run(b: Builder, n: OnnxNode, x, axes=None):
        spec = _reduce_axes(b, n, axes, since)
        if spec is None:
            return x
        axes, keepdims = spec
        if is_const(x) and name == "ReduceProd":
            red = tuple(norm_axis(a, x.ndim) for a in axes) or None
            return np.prod(x, axis=red, keepdims=keepdims).astype(x.dtype)
        if name == "ReduceProd":
            return _reduce_prod(b, x, axes, keepdims)
        if name == "ReduceLogSumExp":  # shifted by the max so that exp cannot overflow
            m = b.call("reduce_max", x, axes=axes, keepdims=True)
            s = b.call("reduce_sum", b.call("exp", b.call("sub", x, m)), axes=axes,
                       keepdims=keepdims)
            return b.call("add", b.call("log", s), m if keepdims else b.reshape(m, s.shape))
        if op in ("reduce_max", "reduce_min") and not is_const(x) and \
                dtype(x) in (np.bool_, np.int32):
            return _int_extreme(b, x, op, axes, keepdims)
        y = b.call(op, pre(b, x) if pre else x, axes=axes, keepdims=keepdims)
        return post(b, y) if post else y

    run.__name__ = name
    alias(name, run)


def _int_extreme(b: Builder, x, op: str, axes, keepdims):
    """ReduceMax/ReduceMin of bool or int32 values, in float64 (exact for both). Over an
    empty set the float result is -inf (max) or +inf (min): as bool, x > 0.5 makes them
    False and True, ONNX's answer; an int32 result then has no value (refused)."""
    if math.prod(x.shape) == 0 and dtype(x) != np.bool_:
        raise Unsupported(f"{op} of an empty int32 tensor")
    y = b.call(op, b.call("cast", x, dtype="f64"), axes=axes, keepdims=keepdims)
    if dtype(x) == np.bool_:
        return b.call("greater", y, like(y, 0.5))
    return b.call("cast", y, dtype="i32")


def _reduce_prod(b: Builder, x, axes, keepdims):
    """exp(sum of log|x|) (a zero gives log 0 = -inf, so 0), negated where an odd number of
    the factors is negative."""
    if dtype(x).kind != "f":
        raise Unsupported(f"ReduceProd of {dtype(x)} values at run time")
    mag = b.call("exp", b.call("reduce_sum", b.call("log", b.call("abs", x)), axes=axes,
                               keepdims=keepdims))
    neg = b.call("reduce_sum", b.call("where", b.call("greater", like(x, 0), x), like(x, 1),
                                      like(x, 0)), axes=axes, keepdims=keepdims)
    odd = b.call("greater", b.call("sub", neg, b.call("mul", _trunc(b, b.call(
        "mul", neg, like(x, 0.5))), like(x, 2))), like(x, 0.5))
    return b.call("where", odd, b.call("neg", mag), mag)


_reduction("ReduceSum", 13)
_reduction("ReduceMean", 18, op="reduce_mean")
_reduction("ReduceMax", 18, op="reduce_max")
_reduction("ReduceMin", 18, op="reduce_min")
_reduction("ReduceProd", 18)
_reduction("ReduceLogSumExp", 18)
_reduction("ReduceSumSquare", 18, pre=lambda b, x: b.call("mul", x, x))
_reduction("ReduceL1", 18, pre=lambda b, x: b.call("abs", x))
_reduction("ReduceL2", 18, pre=lambda b, x: b.call("mul", x, x),
           post=lambda b, y: b.call("sqrt", y))
_reduction("ReduceLogSum", 18, post=lambda b, y: b.call("log", y))

