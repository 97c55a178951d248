"""round_to_format (ir/ops/narrow.py): a value rounded to a float16, bfloat16, float8,
float4, int4 or int2 format, on vectors of any width, branch-free, with the reference's arithmetic.

Float formats scale |x| by a power of two so the format's last fraction bit is the units
digit, round half to even (`llvm.roundeven`) and scale back; both scalings are exact. The
powers of two are built from exponent bits, so nothing depends on the libm. No fast-math
flag is set on these instructions, whatever the mode: the NaN and overflow tests are the
operator's meaning, not incidental IEEE behaviour.
"""

from __future__ import annotations

from llvmlite import ir

from ir.ops.narrow import ROUNDINGS, Format, needs_f64

from .builder import F32, F64, I64, KBuilder, const, elem_of, lanes_of, vec_type
from .elementwise import map_kernel
from .emit import emitter
from .registry import lowering

_LAYOUT = {"float": (32, 23, 127), "double": (64, 52, 1023)}  # bits, fraction bits, bias


def _fmul(b: KBuilder, x, y):
    return b.fmul(x, y, flags=())


def _fcmp(b: KBuilder, op: str, x, y):
    """Ordered comparison without fast-math flags (NaN compares false)."""
    return ir.IRBuilder.fcmp_ordered(b, op, x, y)


def _is_nan(b: KBuilder, x):
    return ir.IRBuilder.fcmp_unordered(b, "uno", x, x)


def _layout(t):
    return _LAYOUT["float" if elem_of(t) == F32 else "double"]


def _round_float(b: KBuilder, x, f: Format, saturate: bool):
    width, frac, bias = _layout(x.type)
    it = vec_type(ir.IntType(width), lanes_of(x.type))
    abs_bits = b.and_(b.bitcast(x, it), const(it, (1 << (width - 1)) - 1))
    a = b.bitcast(abs_bits, x.type)
    e = b.sub(b.lshr(abs_bits, const(it, frac)), const(it, bias))  # x's binade
    e = b.select(b.icmp_signed("<", e, const(it, f.emin)), const(it, f.emin), e)
    quantum = b.bitcast(b.shl(b.add(e, const(it, bias - f.mant)), const(it, frac)), x.type)
    inverse = b.bitcast(b.shl(b.sub(const(it, bias + f.mant), e), const(it, frac)), x.type)
    r = _fmul(b, b.intrinsic("roundeven", [_fmul(b, a, inverse)]), quantum)
    # past the largest value (or inf: its scaled product is inf, or NaN for float4's
    # one-bit fraction), and not a NaN input
    over = b.and_(ir.IRBuilder.fcmp_unordered(b, ">", r, const(x.type, f.max)),
                  ir.IRBuilder.fcmp_ordered(b, "ord", a, a))
    big = f.max if saturate or not f.nan else float("inf") if f.inf else float("nan")
    r = b.intrinsic("copysign", [b.select(over, const(x.type, big), r), x])
    if not f.neg_zero:
        r = b.select(_fcmp(b, "==", r, const(x.type, 0.0)), const(x.type, 0.0), r)
    if not f.nan:  # the zero of the other sign
        r = b.select(_is_nan(b, x), b.intrinsic("copysign", [const(x.type, 0.0), b.fneg(x)]), r)
    return r


def _round_e8m0(b: KBuilder, x, saturate: bool, round_mode: str):
    """In float64, where every float32 is normal, as the reference computes it."""
    lanes = lanes_of(x.type)
    d, it = vec_type(F64, lanes), vec_type(I64, lanes)
    a = b.fpext(x, d) if elem_of(x.type) == F32 else x
    bits = b.bitcast(a, it)
    k = b.sub(b.and_(b.lshr(bits, const(it, 52)), const(it, 0x7FF)), const(it, 1023))
    fraction = b.and_(bits, const(it, (1 << 52) - 1))
    if round_mode == "up":
        k = b.add(k, b.zext(b.icmp_unsigned("!=", fraction, const(it, 0)), it))
    elif round_mode == "nearest":
        k = b.add(k, b.zext(b.icmp_unsigned(">=", fraction, const(it, 1 << 51)), it))
    low = b.or_(b.icmp_signed("<", k, const(it, -127)), _fcmp(b, "<=", a, const(d, 0.0)))
    high = b.or_(b.icmp_signed(">", k, const(it, 127)), _fcmp(b, "==", a, const(d, float("inf"))))
    k = b.select(b.icmp_signed("<", k, const(it, -127)), const(it, -127), k)
    k = b.select(b.icmp_signed(">", k, const(it, 127)), const(it, 127), k)
    out = b.bitcast(b.shl(b.add(k, const(it, 1023)), const(it, 52)), d)  # 2**k
    if saturate:
        out = b.select(high, const(d, 2.0**127), b.select(low, const(d, 2.0**-127), out))
    else:
        out = b.select(b.or_(low, high), const(d, float("nan")), out)
    out = b.select(_is_nan(b, a), const(d, float("nan")), out)
    return b.fptrunc(out, x.type) if elem_of(x.type) == F32 else out


def _round_int(b: KBuilder, x, f: Format):
    lo, hi = f.range
    t = x.type
    if elem_of(t) in (F32, F64):
        whole = b.intrinsic("trunc", [x])
        inside = b.and_(_fcmp(b, ">=", whole, const(t, lo)), _fcmp(b, "<=", whole, const(t, hi)))
        return b.select(inside, b.fadd(whole, const(t, 0.0), flags=()), const(t, 0.0))
    if not f.signed:
        return b.and_(x, const(t, (1 << f.bits) - 1))
    shift = const(t, elem_of(t).width - f.bits)  # sign-extend the low bits
    return b.ashr(b.shl(x, shift), shift)


@emitter("round_to_format")
def _emit(b: KBuilder, xs, dtype, format, saturate, round_mode):
    f = ROUNDINGS[format]
    x = xs[0]
    if f.kind == "int":
        return _round_int(b, x, f)
    if f.kind == "e8m0":
        return _round_e8m0(b, x, saturate, round_mode)
    if needs_f64(f, "float32") and elem_of(x.type) == F32:  # bfloat16, as the reference
        wide = _round_float(b, b.fpext(x, vec_type(F64, lanes_of(x.type))), f, saturate)
        return b.fptrunc(wide, x.type)
    return _round_float(b, x, f, saturate)


@lowering("round_to_format")
def lower_round_to_format(k) -> None:
    attrs = k.attrs
    map_kernel(k, lambda b, xs: _emit(b, xs, k.outputs[0].dtype, **attrs), cost=4)
