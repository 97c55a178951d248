"""Vectorised transcendental functions for float32, on scalars or vectors of any width.

float32 versions are branch-free polynomial approximations in the style of Cephes (exp, log,
tanh) and Eigen (erf), evaluated with llvm.fmuladd; special values are handled by selects, so
NaN propagates and +-Inf give IEEE results. Measured accuracy over dense grids against
float64 math (tests/backends/test_llvm_vmath.py): exp, log, tanh, expm1 within 2 ulp in their
normal range; erf within 5e-7 absolute and relative; sigmoid, softplus and gelu follow from
them (within 1e-6 relative except where the result underflows).

float64 inputs call the C library (exp, log, tanh, erf, expm1, log1p, pow) lane by lane:
exact to libm's accuracy, scalar speed. `pow` calls powf/pow for float32 too: its special
cases (negative bases with integral exponents, 0 ** 0) are numpy's and libm's.
"""

from __future__ import annotations

import math

from llvmlite import ir

from .builder import F64, I32, KBuilder, const, declare, elem_of, lanes_of, vec_type

LOG2E = 1.44269504088896341
SQRTHF = 0.707106781186547524
MIN_NORMAL = 1.17549435e-38


def is_f64(x) -> bool:
    return isinstance(elem_of(x.type), ir.DoubleType)


def per_lane(b: KBuilder, name: str, *args):
    """Call the C library function `name` on each lane (the scalar type's own version)."""
    t = args[0].type
    el = elem_of(t)
    fn = declare(b.module, name if el == F64 else name + "f", el, [el] * len(args))
    if lanes_of(t) == 1:
        return b.call(fn, list(args))
    out = ir.Constant(t, ir.Undefined)
    for i in range(lanes_of(t)):
        lane = [b.extract_element(a, b.i32(i)) for a in args]
        out = b.insert_element(out, b.call(fn, lane), b.i32(i))
    return out


def _ints(x) -> ir.Type:
    return vec_type(I32, lanes_of(x.type))


def _sel_lt(b, x, c, v):
    """x < c ? v : x (ordered: NaN stays)."""
    return b.select(b.fcmp("<", x, const(x.type, c)), const(x.type, v), x)


def _sel_gt(b, x, c, v):
    return b.select(b.fcmp(">", x, const(x.type, c)), const(x.type, v), x)


def _keep_nan(b, x, r):
    return b.select(b.fcmp("uno", x, x), x, r)


def fabs(b, x):
    return b.intrinsic("fabs", [x])


def exp(b: KBuilder, x):
    """e**x: Cephes expf (range reduction by ln2 in two parts, degree-7 polynomial), then
    2**n applied in two halves so results down to the smallest denormal are exact."""
    if is_f64(x):
        return per_lane(b, "exp", x)
    t = x.type
    xc = _sel_gt(b, _sel_lt(b, x, -104.0, -104.0), 89.0, 89.0)
    fx = b.intrinsic("floor", [b.fmuladd(xc, const(t, LOG2E), const(t, 0.5))])
    r = b.fmuladd(fx, const(t, -0.693359375), xc)
    r = b.fmuladd(fx, const(t, 2.12194440e-4), r)
    p = b.poly(r, [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                   1.6666665459e-1, 5.0000001201e-1])
    p = b.fadd(b.fmuladd(p, b.fmul(r, r), r), const(t, 1.0))
    n = b.fptosi(fx, _ints(x))
    n1 = b.ashr(n, const(n.type, 1))
    n2 = b.sub(n, n1)
    r = b.fmul(b.fmul(p, _pow2(b, n1, t)), _pow2(b, n2, t))
    return _keep_nan(b, x, r)


def _pow2(b, n, t):
    """2**n as a float, for -126 <= n <= 127."""
    bits = b.shl(b.add(n, const(n.type, 127)), const(n.type, 23))
    return b.bitcast(bits, t)


def log(b: KBuilder, x):
    """Natural log: Cephes logf (mantissa in [sqrt(1/2), sqrt(2)), degree-9 polynomial);
    denormals are scaled up first; log(0) = -inf, log(x<0) = NaN, log(inf) = inf."""
    if is_f64(x):
        return per_lane(b, "log", x)
    t, it = x.type, _ints(x)
    small = b.fcmp("<", x, const(t, MIN_NORMAL))
    xs = b.select(small, b.fmul(x, const(t, 8388608.0)), x)
    bits = b.bitcast(xs, it)
    e = b.sub(b.lshr(bits, const(it, 23)), const(it, 126))
    e = b.sub(e, b.select(small, const(it, 23), const(it, 0)))
    m = b.bitcast(b.or_(b.and_(bits, const(it, 0x807FFFFF)), const(it, 0x3F000000)), t)
    lt = b.fcmp("<", m, const(t, SQRTHF))
    e = b.sub(e, b.zext(lt, it))
    m = b.fsub(b.select(lt, b.fadd(m, m), m), const(t, 1.0))
    z = b.fmul(m, m)
    y = b.poly(m, [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                   1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
                   3.3333331174e-1])
    y = b.fmul(b.fmul(y, m), z)
    fe = b.sitofp(e, t)
    y = b.fmuladd(fe, const(t, -2.12194440e-4), y)
    y = b.fmuladd(z, const(t, -0.5), y)
    r = b.fmuladd(fe, const(t, 0.693359375), b.fadd(m, y))
    r = b.select(b.fcmp("==", x, const(t, math.inf)), x, r)
    r = b.select(b.fcmp("==", x, const(t, 0.0)), const(t, -math.inf), r)
    r = b.select(b.fcmp("<", x, const(t, 0.0)), const(t, math.nan), r)
    return _keep_nan(b, x, r)


def tanh(b: KBuilder, x):
    """Cephes tanhf: odd polynomial for |x| < 0.625, else 1 - 2 / (exp(2|x|) + 1)."""
    if is_f64(x):
        return per_lane(b, "tanh", x)
    t = x.type
    ax = fabs(b, x)
    e = exp(b, b.fadd(ax, ax))
    big = b.fsub(const(t, 1.0), b.fdiv(const(t, 2.0), b.fadd(e, const(t, 1.0))))
    big = b.intrinsic("copysign", [big, x])
    s = b.fmul(x, x)
    p = b.poly(s, [-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                   1.33314422036e-1, -3.33332819422e-1])
    small = b.fmuladd(b.fmul(p, s), x, x)
    return b.select(b.fcmp(">=", ax, const(t, 0.625)), big, small)


def erf(b: KBuilder, x):
    """Eigen's float erf: x * P(x^2) / Q(x^2) on x clamped to [-4, 4] (erf is +-1 in float32
    beyond); max error 5e-7 absolute and relative."""
    if is_f64(x):
        return per_lane(b, "erf", x)
    xc = _sel_gt(b, _sel_lt(b, x, -4.0, -4.0), 4.0, 4.0)
    x2 = b.fmul(xc, xc)
    p = b.poly(x2, [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                    -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                    -1.60960333262415e-02])
    q = b.poly(x2, [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                    -7.37332916720468e-03, -1.42647390514189e-02])
    return b.fdiv(b.fmul(xc, p), q)


def expm1(b: KBuilder, x):
    """exp(x) - 1 without cancellation: Taylor series to x^8 for |x| < 0.5."""
    if is_f64(x):
        return per_lane(b, "expm1", x)
    t = x.type
    p = b.poly(x, [1 / 40320, 1 / 5040, 1 / 720, 1 / 120, 1 / 24, 1 / 6, 0.5, 1.0])
    small = b.fmul(p, x)
    big = b.fsub(exp(b, x), const(t, 1.0))
    return b.select(b.fcmp("<", fabs(b, x), const(t, 0.5)), small, big)


def log1p(b: KBuilder, y):
    """log(1 + y) for y > -1, accurate for small y (Goldberg: log(u) * y / (u - 1))."""
    if is_f64(y):
        return per_lane(b, "log1p", y)
    t = y.type
    u = b.fadd(y, const(t, 1.0))
    d = b.fsub(u, const(t, 1.0))
    r = b.fmul(log(b, u), b.fdiv(y, d))
    return b.select(b.fcmp("==", d, const(t, 0.0)), y, r)


def sigmoid(b: KBuilder, x):
    """1 / (1 + exp(-x)): relative accuracy also for large negative x."""
    t = x.type
    return b.fdiv(const(t, 1.0), b.fadd(const(t, 1.0), exp(b, b.fneg(x))))


def softplus(b: KBuilder, x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow for large x."""
    t = x.type
    pos = b.select(b.fcmp(">", x, const(t, 0.0)), x, const(t, 0.0))
    return b.fadd(pos, log1p(b, exp(b, b.fneg(fabs(b, x)))))


def gelu(b: KBuilder, x, approximate: str = "none"):
    """x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); 'tanh': 0.5 x (1 + tanh(c (x + 0.044715 x^3)))."""
    t = x.type
    half_x = b.fmul(x, const(t, 0.5))
    if approximate == "tanh":
        x3 = b.fmul(b.fmul(x, x), x)
        inner = b.fmul(const(t, math.sqrt(2 / math.pi)), b.fmuladd(x3, const(t, 0.044715), x))
        g = tanh(b, inner)
    else:
        g = erf(b, b.fmul(x, const(t, math.sqrt(0.5))))
    return b.fmul(half_x, b.fadd(const(t, 1.0), g))


def pow_(b: KBuilder, x, y):
    """x ** y: a constant small integer exponent (GELU's `x ** 3`, a variance's `x ** 2`)
    as multiplications by squaring, in vector lanes; any other through the C library (powf /
    pow), lane by lane. The products round at each step: within a few ulp of libm's."""
    n = splat_value(y)
    if n is not None and n.is_integer() and abs(n) <= 16:
        r = _powi(b, x, abs(int(n)))
        return b.fdiv(const(x.type, 1.0), r) if n < 0 else r
    return per_lane(b, "pow", x, y)


def splat_value(v) -> float | None:
    """The value of a constant scalar, or of a vector constant with every lane equal."""
    if not isinstance(v, ir.Constant) or v.constant is ir.Undefined:
        return None
    lanes = v.constant if isinstance(v.type, ir.VectorType) else [v]
    values = {c.constant for c in lanes}
    if len(values) != 1:
        return None
    (value,) = values
    return float(value) if isinstance(value, (int, float)) else None


def _powi(b: KBuilder, x, n: int):
    """x ** n for n >= 0 by repeated squaring (x ** 0 is 1, NaN included, as in C's pow)."""
    result, square = None, x
    while n:
        if n & 1:
            result = square if result is None else b.fmul(result, square)
        n >>= 1
        if n:
            square = b.fmul(square, square)
    return const(x.type, 1.0) if result is None else result


# ---- trigonometry: sin, cos, tan -------------------------------------------------------------
# float32: the argument is reduced by pi/2 in float64 (pi/2 in two parts, the first with 33
# significant bits, so q * PIO2_HI is exact for |q| < 2**20) and fdlibm's float64 kernels run
# on the remainder; one rounding to float32 at the end gives about half an ulp. Vectors with a
# lane past TRIG_LIMIT (or inf/NaN) call the C library instead, lane by lane.
PIO2_HI = 1.57079632673412561417e+00
PIO2_LO = 6.07710050650619224932e-11
TRIG_LIMIT = 2.0**19
_SIN = [1.58969099521155010221e-10, -2.50507602534068634195e-08, 2.75573137070700676789e-06,
        -1.98412698298579493134e-04, 8.33333333332248946124e-03, -1.66666666666666324348e-01]
_COS = [-1.13596475577881948265e-11, 2.08757232129817482790e-09, -2.75573143513906633035e-07,
        2.48015872894767294178e-05, -1.38888888888741095749e-03, 4.16666666666666019037e-02]


def any_lane(b: KBuilder, mask):
    """One i1: whether any lane of the i1 (vector) `mask` is set."""
    if lanes_of(mask.type) == 1:
        return mask
    return b.intrinsic("vector.reduce.or", [mask], ret=ir.IntType(1))


def _sin_cos_kernels(b: KBuilder, r):
    """(sin r, cos r) for |r| <= pi/4, float64."""
    t = r.type
    z = b.fmul(r, r)
    s = b.fmuladd(b.fmul(z, r), b.poly(z, _SIN), r)
    c = b.fmuladd(b.fmul(z, z), b.poly(z, _COS), b.fmuladd(z, const(t, -0.5), const(t, 1.0)))
    return s, c


def _trig_f32(b: KBuilder, x, which: str):
    """sin, cos or tan of float32 lanes with |x| <= TRIG_LIMIT, through float64."""
    lanes = lanes_of(x.type)
    dt, it = vec_type(F64, lanes), vec_type(I32, lanes)
    xd = b.fpext(x, dt)
    q = b.intrinsic("rint", [b.fmul(xd, const(dt, 2 / math.pi))])
    r = b.fmuladd(q, const(dt, -PIO2_LO), b.fmuladd(q, const(dt, -PIO2_HI), xd))
    s, c = _sin_cos_kernels(b, r)
    quadrant = b.and_(b.fptosi(q, it), const(it, 3))
    if which == "cos":  # cos x = sin(x + pi/2)
        quadrant = b.and_(b.add(quadrant, const(it, 1)), const(it, 3))
    odd = b.trunc(quadrant, vec_type(ir.IntType(1), lanes))
    if which == "tan":  # quadrants 1 and 3: -cos r / sin r
        y = b.select(odd, b.fdiv(b.fneg(c), s), b.fdiv(s, c))
    else:
        y = b.select(odd, c, s)
        negative = b.icmp_unsigned(">=", quadrant, const(it, 2))
        y = b.select(negative, b.fneg(y), y)
    y = b.fptrunc(y, x.type)
    if which == "cos":
        return y
    return b.select(b.fcmp("==", x, const(x.type, 0.0)), x, y)  # sin and tan keep -0.0


def _trig(b: KBuilder, x, which: str):
    if is_f64(x):
        return per_lane(b, which, x)
    rare = any_lane(b, b.fcmp_unordered(">", fabs(b, x), const(x.type, TRIG_LIMIT)))
    with b.if_else(rare) as (slow, fast):
        with slow:
            slow_value, slow_block = per_lane(b, which, x), b.block
        with fast:
            fast_value, fast_block = _trig_f32(b, x, which), b.block
    out = b.phi(x.type)
    out.add_incoming(slow_value, slow_block)
    out.add_incoming(fast_value, fast_block)
    return out


def sin(b: KBuilder, x):
    return _trig(b, x, "sin")


def cos(b: KBuilder, x):
    return _trig(b, x, "cos")


def tan(b: KBuilder, x):
    return _trig(b, x, "tan")
