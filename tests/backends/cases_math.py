"""LLVM cases for trigonometry, hyperbolic functions, round and the bit operators
(registered into cases.CASES), against the reference interpreter: sizes around the vector
widths, IEEE special values, sin/cos/tan past the vectorised range (the C library path),
float64 (the C library lane by lane), shifts by counts past the width."""

from __future__ import annotations

import math

import numpy as np

from .cases import SPECIAL, case
from .helpers import randint, uniform

ONE_ULP = dict(rtol=2.5e-7, atol=1e-37)  # float32 results within about one ulp
F64 = dict(rtol=1e-14, atol=1e-300)
UNIT = np.concatenate([uniform(-1, 1, 30), np.float32([1, -1, 1.5, -0.0, math.nan])])
DOMAIN = {"asin": UNIT, "acos": UNIT, "atanh": UNIT, "acosh": uniform(1, 50, 33) }
for _op in ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh",
            "atanh"):
    for _n in (1, 15, 16, 17, 33):
        _x = DOMAIN[_op][:_n] if _op in DOMAIN else uniform(-10, 10, _n)
        case(_op, f"n{_n}", {"x": _x}, **ONE_ULP)
    case(_op, "special", {"x": SPECIAL}, **ONE_ULP)
    case(_op, "f64", {"x": uniform(-0.9, 0.9, 2, 19, dtype=np.float64) + (
        1.5 if _op == "acosh" else 0)}, **F64)
for _op in ("sin", "cos", "tan"):
    case(_op, "wide", {"x": np.linspace(-5e5, 5e5, 4099, dtype=np.float32)}, **ONE_ULP)
    case(_op, "huge", {"x": np.float32([1e6, -3e7, 1e30, 2.5, 1e8, 0.5, -4e9, 7.0] * 3)},
         **ONE_ULP)
    case(_op, "near-pi", {"x": np.float32(np.pi) * np.arange(-20, 21, dtype=np.float32) / 2},
         rtol=2.5e-7, atol=3e-7)  # near a zero of the result: absolute (float32's pi/2 is off)

_HALVES = np.arange(-40, 41, dtype=np.float32) / 4
case("round", "halves", {"x": np.concatenate([_HALVES, SPECIAL, np.float32([8388609.0])])},
     rtol=0, atol=0)
case("round", "f64", {"x": np.arange(-20, 21, dtype=np.float64) / 2 + 1e9}, rtol=0, atol=0)

EXACT = dict(rtol=0, atol=0)
for _dt in (np.int32, np.int64):
    _info = np.iinfo(_dt)
    _a = randint(_info.min, _info.max, 3, 37, dtype=_dt)
    _b = randint(_info.min, _info.max, 37, dtype=_dt)
    _name = np.dtype(_dt).name
    for _op in ("bitwise_and", "bitwise_or", "bitwise_xor"):
        case(_op, _name, {"a": _a, "b": _b}, **EXACT)
        case(_op, f"{_name}-column", {"a": _a, "b": _b[:3].reshape(3, 1)}, **EXACT)
    case("bitwise_not", _name, {"x": _a}, **EXACT)
    _bits = 8 * np.dtype(_dt).itemsize
    _counts = randint(-3, _bits + 5, 37, dtype=_dt)  # negative and past the width too
    for _dir in ("left", "right"):
        case("bit_shift", f"{_name}-{_dir}", {"a": _a, "b": _counts},
             attrs={"direction": _dir}, **EXACT)
case("bitcast", "f32-to-i32", {"x": np.concatenate([uniform(-9, 9, 30), SPECIAL])},
     attrs={"dtype": "i32"}, **EXACT)
case("bitcast", "i32-to-f32", {"x": randint(-2**31, 2**31, 33, dtype=np.int32)},
     attrs={"dtype": "f32"}, **EXACT)
case("bitcast", "f64-to-i64", {"x": uniform(-9, 9, 2, 17, dtype=np.float64)},
     attrs={"dtype": "i64"}, **EXACT)
