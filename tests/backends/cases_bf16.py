"""LLVM cases for bf16_linear (registered into cases.CASES), against the reference
interpreter: sums in another order, so float32 tolerances. Odd sizes hit the partial row
tile (M % 8), masked column panels (N % 32), odd K (a zero half word) and K % 32 (the
masked last chunk of the conversion); tests/backends/test_bf16_gemm.py checks the numbers
against numpy on bfloat16-rounded operands."""

from __future__ import annotations

from ir.ops.bf16 import pack_pairs

from .cases import case
from .helpers import randn


def _bf16_linear(variant, lead, k, n, bias="weight"):
    args = {"x": randn(*lead, k), "w": pack_pairs(randn(n, k))}
    if bias:
        args["b"] = randn(n)
    weights = ("w", "b") if bias == "weight" else ("w",)
    case("bf16_linear", variant, args, weights=weights, rtol=1e-5, atol=1e-5)


_bf16_linear("aligned", (16,), 64, 32)
_bf16_linear("odd", (13,), 33, 45)
_bf16_linear("rank3-runtime-bias", (2, 7), 100, 70, bias="input")
_bf16_linear("no-bias-k1", (1,), 1, 1, bias=None)
_bf16_linear("many-blocks", (300,), 40, 300)


def _bf16_conv2d(variant, xs, ws, **window):
    o, _, kh, kw = ws
    args = {"x": randn(*xs), "w": pack_pairs(randn(*ws).reshape(o, -1)), "b": randn(o)}
    case("bf16_conv2d", variant, args, attrs={"kernel": (kh, kw), **window},
         weights=("w", "b"), rtol=1e-5, atol=1e-5)


_bf16_conv2d("pad", (2, 3, 7, 7), (17, 3, 3, 3), pad=(1, 1, 1, 1))
_bf16_conv2d("stride-dilation", (1, 5, 9, 8), (33, 5, 2, 3), stride=(2, 1), pad=(0, 1, 2, 0),
             dilation=(1, 2))
_bf16_conv2d("1x1", (2, 40, 4, 4), (9, 40, 1, 1))
