"""Cases for bf16_linear (see cases.py). The ONNX peer rounds x with onnxruntime's Cast to
BFLOAT16 and back, reads the weight from a BFLOAT16 initialiser made here by viewing the
operator's i32 words as ml_dtypes.bfloat16 pairs (not with Lamina's unpacking), and
multiplies in float32; the sums may differ only in order."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from onnx import TensorProto

from .cases import N, case, randn

_BF16 = TensorProto.BFLOAT16


def _words(w: np.ndarray) -> np.ndarray:
    """[N, K] float32 -> [N, ceil(K/2)] int32 words of two bfloat16 (low half first)."""
    n, k = w.shape
    pairs = np.zeros((n, 2 * -(-k // 2)), ml_dtypes.bfloat16)
    pairs[:, :k] = w.astype(ml_dtypes.bfloat16)
    return pairs.view(np.int32)  # little-endian: value 2j is word j's low half


def _bf16_linear(variant, lead, k, n, bias=True):
    w = randn(n, k)
    args = {"x": randn(*lead, k, scale=2.0), "w": _words(w)}
    if bias:
        args["b"] = randn(n)
    wb = args["w"].view(ml_dtypes.bfloat16).reshape(n, -1)[:, :k]
    nodes = [N("Cast", "x", out="xb", to=_BF16), N("Cast", "xb", out="xf", to=TensorProto.FLOAT),
             N("Cast", "wb", out="wf", to=TensorProto.FLOAT),
             N("Transpose", "wf", out="wT", perm=[1, 0]),
             N("MatMul", "xf", "wT", out="y" if not bias else "xw")]
    if bias:
        nodes.append(N("Add", "xw", "b"))
    case("bf16_linear", variant, args, nodes, weights=tuple(a for a in args if a != "x"),
         consts={"wb": np.ascontiguousarray(wb)}, rtol=1e-5, atol=1e-5)


_bf16_linear("odd-k", (5,), 7, 3)
_bf16_linear("rank3-no-bias", (2, 3), 40, 17, bias=False)
_bf16_linear("k1", (4,), 1, 2)


def _bf16_conv2d(variant, xs, ws, bias=True, **window):
    o, c, kh, kw = ws
    w = randn(*ws)
    args = {"x": randn(*xs), "w": _words(w.reshape(o, -1))}
    if bias:
        args["b"] = randn(o)
    wb = args["w"].view(ml_dtypes.bfloat16).reshape(o, -1)[:, :c * kh * kw].reshape(ws)
    conv = {"kernel_shape": [kh, kw], "strides": list(window.get("stride", (1, 1))),
            "pads": list(window.get("pad", (0, 0, 0, 0))),
            "dilations": list(window.get("dilation", (1, 1)))}
    nodes = [N("Cast", "x", out="xb", to=_BF16), N("Cast", "xb", out="xf", to=TensorProto.FLOAT),
             N("Cast", "wb", out="wf", to=TensorProto.FLOAT),
             N("Conv", "xf", "wf", *(["b"] if bias else []), **conv)]
    case("bf16_conv2d", variant, args, nodes, attrs={"kernel": (kh, kw), **window},
         weights=tuple(a for a in args if a != "x"), consts={"wb": np.ascontiguousarray(wb)},
         rtol=1e-5, atol=1e-5)


_bf16_conv2d("pad-odd-k", (2, 3, 7, 7), (5, 3, 3, 3), pad=(1, 1, 1, 1))
_bf16_conv2d("stride-dilation-no-bias", (1, 4, 9, 8), (6, 4, 2, 3), bias=False,
             stride=(2, 1), pad=(0, 1, 2, 0), dilation=(1, 2))
