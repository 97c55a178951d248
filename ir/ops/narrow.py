"""Number formats narrower than the IR's types (float16, bfloat16, float8, float4, int4,
int2): values of them
travel as f32 (the float formats) or i32 (the integer ones), and one operator rounds a
value to the nearest one the format holds.

`round_to_format(x) {format, saturate, round_mode}`
    x rounded to a value of `format` (an ml_dtypes name, as ONNX's element types are
    stored), in x's own dtype; ONNX's Cast to that type, read back in the wider type:

    float8_e4m3fn, float8_e4m3fnuz, float8_e5m2, float8_e5m2fnuz, float4_e2m1fn
        (f32/f64 x) round to nearest, ties to even, at the format's precision, with its
        subnormals. A value whose rounding exceeds the largest finite one: that largest
        value with `saturate` (also +-inf), else inf (e5m2, the one with infinities) or NaN.
        NaN stays NaN. The fnuz formats have no -0 (it becomes +0); float4_e2m1fn has no
        NaN or infinity and always saturates; NaN becomes a zero there, of the other
        sign (-0 for numpy's NaN), as ONNX's reference (ml_dtypes) and test data give.
    float8_e8m0fnu
        (f32/f64 x) a power of two 2**k, -127 <= k <= 127 (an exponent alone), from x's
        binary exponent: `round_mode` "up" takes the next power unless x is one, "down" the
        one below, "nearest" the nearer one (ties up). Beyond the range, zero and negative
        x (ONNX leaves negatives unspecified; its table saturates them to the smallest):
        the nearest end with `saturate`, else NaN; +inf gives 2**127 or NaN; NaN stays NaN.
    int4, uint4, int2, uint2
        i32/i64 x wraps (the low bits, two's complement, ONNX's rule between integer
        types); f32/f64 x is truncated toward zero, as a Cast to int32 is, and a result
        outside the format's range, or NaN, becomes 0 (ONNX leaves both undefined; this is
        what its reference, through ml_dtypes, and its test data give; onnxruntime rounds
        and wraps instead). The result stays in x's dtype.

The boundary of a model (compiler.compile's `Converted`, the ONNX importer's weights) moves
values between this wide form and the formats' one-byte codes, as ml_dtypes stores them,
with `decode` and `encode` below: bit arithmetic of their own, no conversion library.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError
from ..tensor_type import TensorType
from .registry import REQUIRED, Attr, Fusion, OpDef, register


@dataclass(frozen=True)
class Format:
    """One narrow format. Floats: `mant` fraction bits, smallest normal exponent `emin`,
    largest finite value `max`, whether it has infinities (`inf`), a NaN (`nan`), a -0."""

    name: str
    kind: str  # "float", "e8m0" (powers of two only) or "int"
    bits: int
    mant: int = 0
    emin: int = 0
    max: float = 0.0
    inf: bool = False
    nan: bool = True
    neg_zero: bool = True
    signed: bool = True  # integer formats

    @property
    def range(self) -> tuple[int, int]:
        """The integers an integer format holds."""
        return (-(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1) if self.signed \
            else (0, (1 << self.bits) - 1)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("float8_e4m3fn", "float", 8, mant=3, emin=-6, max=448.0),
    Format("float8_e4m3fnuz", "float", 8, mant=3, emin=-7, max=240.0, neg_zero=False),
    Format("float8_e5m2", "float", 8, mant=2, emin=-14, max=57344.0, inf=True),
    Format("float8_e5m2fnuz", "float", 8, mant=2, emin=-15, max=57344.0, neg_zero=False),
    Format("float4_e2m1fn", "float", 4, mant=1, emin=0, max=6.0, nan=False),
    Format("float8_e8m0fnu", "e8m0", 8, neg_zero=False),
    Format("int4", "int", 4), Format("uint4", "int", 4, signed=False),
    Format("int2", "int", 2), Format("uint2", "int", 2, signed=False),
)}
# IEEE half and bfloat16: the IR carries them in f32 too (compile's boundary converts), and
# a Cast to them inside a model rounds there (to nearest even, overflow to inf): the same
# rounding, with no one-byte codes
HALF_FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("float16", "float", 16, mant=10, emin=-14, max=65504.0, inf=True),
    Format("bfloat16", "float", 16, mant=7, emin=-126, max=float.fromhex("0x1.fep127"),
           inf=True),
)}
ROUNDINGS = {**FORMATS, **HALF_FORMATS}  # every format round_to_format rounds to
ROUND_MODES = ("up", "down", "nearest")
# the bit layout of the float types x may have: (unsigned int view, fraction bits, bias)
_LAYOUT = {np.dtype(np.float32): (np.uint32, 23, 127), np.dtype(np.float64): (np.uint64, 52, 1023)}


# ---- the rounding -------------------------------------------------------------------------
def round_to_format(x, format: str, saturate: bool = True, round_mode: str = "up"):
    """x rounded to a value of `format`, in x's dtype (see the module docstring)."""
    fmt = ROUNDINGS[format]
    x = np.asarray(x)
    with np.errstate(all="ignore"):
        if fmt.kind == "int":
            return _round_int(x, fmt)
        if fmt.kind == "e8m0":
            return _round_e8m0(x.astype(np.float64), saturate, round_mode).astype(x.dtype)
        if needs_f64(fmt, x.dtype):
            return _round_float(x.astype(np.float64), fmt, saturate).astype(x.dtype)
        return _round_float(x, fmt, saturate)


def needs_f64(fmt: Format, dtype) -> bool:
    """Whether rounding float32 to `fmt` goes through float64: bfloat16's last fraction bit
    at its subnormals (2**-133) is below float32's normal range, where the scaling powers of
    two cannot be built from exponent bits (the float64 result converts back exactly)."""
    return np.dtype(dtype) == np.float32 and fmt.emin - fmt.mant < -126


def _round_float(x: np.ndarray, f: Format, saturate: bool) -> np.ndarray:
    """Scale |x| so that the format's last fraction bit at x's binade (or at the subnormal
    one) is the units digit, round half to even there, scale back: both scalings are by
    powers of two, so exact."""
    view, frac, bias = _LAYOUT[x.dtype]
    a = np.abs(x)
    e = ((a.view(view) >> frac).astype(np.int64) - bias).clip(f.emin)  # x's binade, or emin
    # (inf and NaN read as binade bias + 1: the scale below then stays finite, except for
    # float4's one-bit fraction, where it is 0 and the product NaN: caught as overflow)
    quantum = ((e - f.mant + bias).astype(view) << frac).view(x.dtype)  # 2**(e - mant)
    inverse = ((f.mant - e + bias).astype(view) << frac).view(x.dtype)
    r = np.rint(a * inverse) * quantum
    over = ~(r <= f.max) & ~np.isnan(a)  # also inf, and float4's NaN product above
    big = f.max if saturate or not f.nan else (np.inf if f.inf else np.nan)
    r = np.copysign(np.where(over, big, r), x)
    if not f.neg_zero:
        r = np.where(r == 0, 0.0, r)
    if not f.nan:  # the zero of the other sign: ml_dtypes' (so ONNX's reference's) choice
        r = np.where(np.isnan(x), np.copysign(0.0, -x), r)
    return r.astype(x.dtype)


def _round_e8m0(a: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    """In float64, where every float32 is normal: the exponent, rounded by its fraction."""
    bits = a.view(np.uint64)
    k = ((bits >> 52) & 0x7FF).astype(np.int64) - 1023
    fraction = bits & np.uint64((1 << 52) - 1)
    if round_mode == "up":
        k = k + (fraction != 0)
    elif round_mode == "nearest":  # at or past 1.5 * 2**k: nearer the next power
        k = k + (fraction >= np.uint64(1 << 51))
    low, high = (k < -127) | (a <= 0), (k > 127) | (a == np.inf)
    out = np.ldexp(1.0, k.clip(-127, 127).astype(np.int32))
    if saturate:
        out = np.where(high, 2.0**127, np.where(low, 2.0**-127, out))
    else:
        out = np.where(low | high, np.nan, out)
    return np.where(np.isnan(a), np.nan, out)


def _round_int(x: np.ndarray, f: Format) -> np.ndarray:
    lo, hi = f.range
    if x.dtype.kind == "f":
        t = np.trunc(x)
        return np.where((t >= lo) & (t <= hi), t + 0.0, 0.0).astype(x.dtype)  # (+0.0: no -0)
    low = x.astype(np.int64) & ((1 << f.bits) - 1)
    return (low - (low > hi) * (1 << f.bits)).astype(x.dtype)


# ---- the boundary: one-byte codes as ml_dtypes stores them ------------------------------
def _float_values(f: Format) -> np.ndarray:
    """The value of every code of a float format (float64), from its fields."""
    codes = np.arange(1 << f.bits)
    if f.kind == "e8m0":
        return np.where(codes == 255, np.nan, np.ldexp(1.0, codes - 127))
    ebits = f.bits - 1 - f.mant
    sign = np.where(codes >> (f.bits - 1), -1.0, 1.0)
    e, m = (codes >> f.mant) & ((1 << ebits) - 1), codes & ((1 << f.mant) - 1)
    bias = 1 - f.emin
    values = sign * np.where(e == 0, np.ldexp(m / 2.0**f.mant, f.emin),
                             np.ldexp(1 + m / 2.0**f.mant, e - bias))
    top = (1 << ebits) - 1
    if not f.neg_zero:  # fnuz: the code of -0 is the NaN
        values[1 << (f.bits - 1)] = np.nan
    elif f.inf:  # IEEE-like: the top exponent holds the infinities and the NaNs
        values[e == top] = np.where(m[e == top] == 0, sign[e == top] * np.inf, np.nan)
    elif f.nan:  # e4m3fn: only the all-ones code (of each sign) is NaN
        values[(e == top) & (m == (1 << f.mant) - 1)] = np.nan
    return values


def decode(codes, format: str) -> np.ndarray:
    """One-byte codes (uint8, an integer in the low bits) -> values: float32 for the float
    formats, int32 for the integer ones."""
    f = FORMATS[format]
    codes = np.asarray(codes, np.uint8) & np.uint8((1 << f.bits) - 1)
    if f.kind == "int":
        wide = codes.astype(np.int32)
        return wide - (wide > f.range[1]) * (1 << f.bits) if f.signed else wide
    return _float_values(f).astype(np.float32)[codes]


def encode(values, format: str) -> np.ndarray:
    """Values -> one-byte codes (uint8), rounded first as a Cast without saturation would
    (e8m0: to the nearest power of two): exact for values of the format."""
    f = FORMATS[format]
    v = np.asarray(values)
    if f.kind == "int":
        return (round_to_format(v, format).astype(np.int64) & ((1 << f.bits) - 1)).astype(np.uint8)
    v = round_to_format(v.astype(np.float64), format, saturate=not f.nan, round_mode="nearest")
    table = _float_values(f)
    half = 1 << (f.bits - 1)
    positive = table[:half]
    if f.inf:
        positive = positive[np.isfinite(positive)]
    elif f.nan and f.kind == "float":
        positive = positive[~np.isnan(positive)]
    if f.kind == "e8m0":  # no sign bit: all 255 values are positive
        positive = table[:255]
    with np.errstate(invalid="ignore"):
        code = np.searchsorted(positive, np.abs(v)).clip(0, len(positive) - 1)
    code = code.astype(np.uint8)
    if f.kind == "float":
        negative = np.signbit(v) & (f.neg_zero | (v != 0))
        code = np.where(negative, code | np.uint8(half), code)
        if f.inf:
            code = np.where(np.isinf(v), np.uint8(half - (1 << f.mant)) | np.where(
                v < 0, np.uint8(half), np.uint8(0)), code)
    nan_code = {"e8m0": 255}.get(f.kind, half if not f.neg_zero else half - 1)
    return np.where(np.isnan(v), np.uint8(nan_code), code).astype(np.uint8)


def from_storage(array: np.ndarray, wider: np.dtype) -> np.ndarray:
    """An array of a file's narrow type (ml_dtypes, one byte an element) in the IR type
    `wider`; other types by numpy's conversion."""
    array = np.asarray(array)
    if array.dtype.name in FORMATS:
        return decode(array.view(np.uint8), array.dtype.name).astype(wider)
    return array.astype(wider)


def to_storage(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Values computed in a wider type as an array of the narrow `dtype` (see from_storage)."""
    dtype = np.dtype(dtype)
    if dtype.name in FORMATS:
        return encode(values, dtype.name).view(dtype)
    return np.asarray(values).astype(dtype)


# ---- the operator -------------------------------------------------------------------------
def _infer(x: TensorType, format, saturate, round_mode):
    kinds = ("f32", "f64", "i32", "i64") if ROUNDINGS[format].kind == "int" else ("f32", "f64")
    if x.dtype not in kinds:
        raise ShapeError(f"round_to_format to {format} takes {', '.join(kinds)} values, got {x}")
    return x


register(OpDef(
    name="round_to_format",
    infer=_infer,
    compute=round_to_format,
    attrs={
        "format": Attr("str", REQUIRED, lambda v: v in ROUNDINGS,
                       f"one of {', '.join(ROUNDINGS)}"),
        "saturate": Attr("bool", True),
        "round_mode": Attr("str", "up", lambda v: v in ROUND_MODES, "up, down or nearest"),
    },
    arity=(1, 1),
    fusion=Fusion.ELEMENTWISE,
    doc="x rounded to the nearest value of a narrow format (float16, bfloat16, float8, "
        "float4, int4, int2: ONNX's Cast to it, in x's dtype)"))
