"""Elementwise operators as code on LLVM values: one emitter per operator, shared by the
elementwise kernels, the fused-elementwise bodies and the epilogues of GEMM and conv.

An emitter takes the builder, operand values (all of one type: a scalar, or a vector of any
width), the IR dtype and the node's attributes, and returns the result value. The same
emitter serves a vector loop body and its scalar remainder.
"""

from __future__ import annotations

from collections.abc import Callable

from ir import LaminaError

from . import vmath
from .builder import I1, I8, KBuilder, const, elem_of, is_float, lanes_of, vec_type

EMITTERS: dict[str, Callable] = {}


def emitter(*names: str):
    def deco(fn):
        for n in names:
            EMITTERS[n] = fn
        return fn

    return deco


def emit(b: KBuilder, op: str, args, dtype: str, attrs: dict | None = None):
    """The value of `op` applied to `args` (scalars or vectors)."""
    try:
        fn = EMITTERS[op]
    except KeyError:
        raise LaminaError(f"no elementwise emitter for '{op}'") from None
    return fn(b, list(args), dtype, **(attrs or {}))


# ---- unary -----------------------------------------------------------------------------------
@emitter("relu")
def _relu(b, xs, dtype):
    (x,) = xs
    return b.select(b.fcmp("<", x, const(x.type, 0)), const(x.type, 0), x)


@emitter("relu6")
def _relu6(b, xs, dtype):
    r = _relu(b, xs, dtype)
    return b.select(b.fcmp(">", r, const(r.type, 6)), const(r.type, 6), r)


@emitter("leaky_relu")
def _leaky(b, xs, dtype, alpha):
    (x,) = xs
    return b.select(b.fcmp(">=", x, const(x.type, 0)), x, b.fmul(x, const(x.type, alpha)))


@emitter("elu")
def _elu(b, xs, dtype, alpha):
    (x,) = xs
    neg = b.fmul(const(x.type, alpha), vmath.expm1(b, x))
    return b.select(b.fcmp(">", x, const(x.type, 0)), x, neg)


@emitter("clip")
def _clip(b, xs, dtype, min, max):
    (x,) = xs
    lo = b.select(b.fcmp("<", x, const(x.type, min)), const(x.type, min), x)
    return b.select(b.fcmp(">", lo, const(x.type, max)), const(x.type, max), lo)


@emitter("neg")
def _neg(b, xs, dtype):
    (x,) = xs
    return b.fneg(x, flags=b.fmf) if is_float(x.type) else b.sub(const(x.type, 0), x)


@emitter("abs")
def _abs(b, xs, dtype):
    (x,) = xs
    if is_float(x.type):
        return b.intrinsic("fabs", [x])
    return b.intrinsic("abs", [x, const(I1, 0)])


@emitter("sqrt")
def _sqrt(b, xs, dtype):
    return b.intrinsic("sqrt", xs)


def _unary(name, fn):
    EMITTERS[name] = lambda b, xs, dtype, **kw: fn(b, xs[0], **kw)


for _name, _fn in (("exp", vmath.exp), ("log", vmath.log), ("tanh", vmath.tanh),
                   ("erf", vmath.erf), ("sigmoid", vmath.sigmoid),
                   ("softplus", vmath.softplus), ("gelu", vmath.gelu)):
    _unary(_name, _fn)


# ---- binary ----------------------------------------------------------------------------------
def _arith(name: str, float_op: str, int_op: str) -> None:
    """An arithmetic operator: one instruction, float or integer by the operand type."""
    def emit_(b, xs, dtype):
        x, y = xs
        return getattr(b, float_op if is_float(x.type) else int_op)(x, y)

    emitter(name)(emit_)


_arith("add", "fadd", "add")
_arith("sub", "fsub", "sub")
_arith("mul", "fmul", "mul")


@emitter("div")
def _div(b, xs, dtype):
    return b.fdiv(*xs)


@emitter("pow")
def _pow(b, xs, dtype):
    return vmath.pow_(b, *xs)


@emitter("maximum")
def _maximum(b, xs, dtype):
    """NaN-propagating for floats (llvm.maximum), as numpy's maximum."""
    return b.intrinsic("maximum" if is_float(xs[0].type) else "smax", xs)


@emitter("minimum")
def _minimum(b, xs, dtype):
    return b.intrinsic("minimum" if is_float(xs[0].type) else "smin", xs)


# ---- comparisons and selection (bool results are i8 0/1, as numpy stores them) ----------
def _compare(b, x, y, op: str):
    if is_float(x.type):
        return b.fcmp(op, x, y)  # ordered: NaN compares false
    if elem_of(x.type).width == 8:  # bool: 0 or 1
        return b.icmp_unsigned(op, x, y)
    return b.icmp_signed(op, x, y)


def _as_bool(b, i1):
    return b.zext(i1, vec_type(I8, lanes_of(i1.type)))


@emitter("greater")
def _greater(b, xs, dtype):
    return _as_bool(b, _compare(b, xs[0], xs[1], ">"))


@emitter("equal")
def _equal(b, xs, dtype):
    return _as_bool(b, _compare(b, xs[0], xs[1], "=="))


@emitter("where")
def _where(b, xs, dtype):
    cond, x, y = xs
    return b.select(b.icmp_unsigned("!=", cond, const(cond.type, 0)), x, y)
