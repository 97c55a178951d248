"""LLVM cases for round_to_format (registered into cases.CASES), exact against the reference
interpreter: every format, with and without saturation, float32 and float64 (their own bit
layouts), sizes around the vector widths, IEEE specials, float32 subnormals, each binade
from below the formats' subnormals past their largest values; integers wrapped from i32
and i64. (Bit for bit, signs of zeros included, in test_onnx_narrow_types.py.)"""

from __future__ import annotations

import math

import numpy as np

from ir.ops.narrow import FORMATS, ROUND_MODES

from .cases import SPECIAL, case
from .helpers import randint, uniform

EXACT = dict(rtol=0, atol=0)
_WIDE = np.concatenate([uniform(-1, 1, 64) * np.float32(2) ** randint(-24, 20, 64)
                        .astype(np.float32), SPECIAL,
                        np.float32([448, 464, 480, 57344, 61440, 240, 248, 6, 7, 5, 0.25,
                                    2**-127, 3e-39, -1e-45, 3e38, math.ldexp(1, 127)])])
for _name, _f in FORMATS.items():
    _sats = (True, False) if _f.kind != "int" else (True,)
    _modes = ROUND_MODES if _f.kind == "e8m0" else ("up",)
    for _sat in _sats:
        for _mode in _modes:
            _attrs = {"format": _name, "saturate": _sat, "round_mode": _mode}
            _tag = f"{_name}-{'sat' if _sat else 'nosat'}-{_mode}"
            case("round_to_format", f"{_tag}-f32", {"x": _WIDE.astype(np.float32)},
                 attrs=_attrs, **EXACT)
            case("round_to_format", f"{_tag}-f64", {"x": _WIDE.astype(np.float64) * 1.0001},
                 attrs=_attrs, **EXACT)
for _n in (1, 15, 16, 17, 33):
    case("round_to_format", f"float8_e4m3fn-n{_n}", {"x": uniform(-500, 500, _n)},
         attrs={"format": "float8_e4m3fn"}, **EXACT)
for _name in ("int4", "uint4", "int2", "uint2"):
    for _dt in (np.int32, np.int64):
        case("round_to_format", f"{_name}-{np.dtype(_dt).name}",
             {"x": randint(-(2**31), 2**31 - 1, 3, 17, dtype=_dt)}, attrs={"format": _name})
