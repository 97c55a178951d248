"""bfloat16 weights: the linear layer `compiler.quantize(..., dtype="bfloat16")` writes.

`bf16_linear(x, w[, bias])`
    x: f32 [..., K]; w: i32 [N, ceil(K/2)], the weight [N, K] (as `linear` lays it out) in
    bfloat16, two values to a 32-bit word: k = 2j in the low half of word j, k = 2j + 1 in
    the high half, and a zero high half in the last word when K is odd; bias: f32 [N].
        y = bf16(x) @ W.T + bias
    x is rounded to bfloat16 (`to_bf16`), each product of two bfloat16 values is exact in
    float32, the products are summed in float32 (in an unspecified order, as `linear`
    sums) and the bias is added in float32.

Why words of two: the IR has no 16-bit type, and a pair of consecutive k is exactly what
AVX512-BF16's `vdpbf16ps` consumes per 32-bit lane, so the kernel packs these words into
panels without touching a value. The weight takes half the bytes of the float32 one.

`bf16_conv2d(x, w[, bias]) {kernel, stride, pad, dilation}`
    conv2d (groups 1) in the same way: x f32 [N, C, H, W]; w: i32 [O, ceil(C*KH*KW/2)],
    the weight [O, C, KH, KW] flattened per output channel in (c, kh, kw) order and stored
    two values to a word as above (`kernel` = (KH, KW) gives back its shape); bias f32 [O].
        y = conv2d(bf16(x), W) + bias         (padding is an exact zero)

`to_bf16` is round to nearest, ties to even, with the conversion instruction's edge cases
(`vcvtne2ps2bf16`, which the kernel uses): NaN stays a (quiet) NaN, and a float32
subnormal becomes a zero of its sign, so every bfloat16 value here is normal or zero.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..tensor_type import TensorType
from .nn import WINDOW
from .registry import Attr, Fusion, OpDef, get, register
from .shape_rules import pair, window_out


# ---- float32 <-> bfloat16 bits ----------------------------------------------------------------
def to_bf16(x) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16): round to nearest even, NaN quieted,
    subnormals flushed to a signed zero."""
    x = np.asarray(x, np.float32)
    bits = np.ascontiguousarray(x).view(np.uint32).reshape(x.shape)  # keeps a 0-d shape
    lsb = (bits >> 16) & 1
    rounded = ((bits + np.uint32(0x7FFF) + lsb) >> 16).astype(np.uint16)  # wraps only for NaN
    sign = ((bits >> 16) & 0x8000).astype(np.uint16)
    out = np.where((bits & 0x7F800000) == 0, sign, rounded)
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, ((bits >> 16) | 0x40).astype(np.uint16), out).astype(np.uint16)


def from_bf16(bits) -> np.ndarray:
    """bfloat16 bit patterns -> float32, exactly (the high half of a float32)."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_bf16(x) -> np.ndarray:
    """x rounded to the nearest bfloat16 value, as float32."""
    return from_bf16(to_bf16(x))


def pack_pairs(w) -> np.ndarray:
    """float32 [N, K] -> int32 [N, ceil(K/2)]: rounded to bfloat16, two to a word."""
    bits = to_bf16(w).astype(np.uint32)
    n, k = bits.shape
    if k % 2:
        bits = np.concatenate([bits, np.zeros((n, 1), np.uint32)], axis=1)
    return (bits[:, 0::2] | (bits[:, 1::2] << 16)).view(np.int32)


def unpack_pairs(words, k: int) -> np.ndarray:
    """int32 [N, ceil(K/2)] -> the float32 [N, K] values they hold."""
    u = np.ascontiguousarray(words, np.int32).view(np.uint32)
    both = np.stack([u & 0xFFFF, u >> 16], axis=-1).reshape(u.shape[0], -1)
    return from_bf16(both[:, :k].astype(np.uint16))


# ---- bf16_linear ------------------------------------------------------------------------------
def _infer(x, w, bias=None):
    if x.dtype != "f32" or w.dtype != "i32":
        raise ShapeError(f"bf16_linear takes f32 activations and i32 words of two bfloat16 "
                         f"weights, got {x}, {w}")
    if x.rank < 1 or w.rank != 2 or -(-x.shape[-1] // 2) != w.shape[1]:
        raise ShapeError(f"bf16_linear: input {x} has {x.shape[-1] if x.rank else 0} features "
                         f"but weight {w} holds ceil(K/2) words of two per output")
    n = w.shape[0]
    if bias is not None and (bias.dtype != "f32" or bias.shape != (n,)):
        raise ShapeError(f"bf16_linear bias must be f32[{n}], got {bias}")
    return TensorType((*x.shape[:-1], n), "f32")


def _compute(x, w, bias=None):
    x = np.asarray(x, np.float32)
    y = round_bf16(x) @ unpack_pairs(w, x.shape[-1]).T
    return (y if bias is None else y + np.asarray(bias, np.float32)).astype(np.float32)


register(OpDef(
    name="bf16_linear",
    infer=_infer,
    compute=_compute,
    attrs={},
    arity=(2, 3),
    fusion=Fusion.OPAQUE,  # its weight is not a float tensor: the float fusers leave it alone
    doc="bf16(x) @ W.T + bias with W [out, in] in bfloat16, two per i32 word; products "
        "exact, summed in float32"))


# ---- bf16_conv2d ------------------------------------------------------------------------------
def _conv_infer(x, w, bias=None, *, kernel, stride, pad, dilation):
    if x.dtype != "f32" or w.dtype != "i32" or x.rank != 4 or w.rank != 2:
        raise ShapeError(f"bf16_conv2d takes f32 x [N,C,H,W] and i32 words [O, "
                         f"ceil(C*KH*KW/2)] of a bfloat16 weight, got {x}, {w}")
    n, c, h, wd = x.shape
    kh, kw = kernel
    if -(-c * kh * kw // 2) != w.shape[1]:
        raise ShapeError(f"bf16_conv2d: input {x} with kernel {kh}x{kw} needs "
                         f"ceil({c}*{kh}*{kw}/2) = {-(-c * kh * kw // 2)} words per output "
                         f"channel, weight {w} has {w.shape[1]}")
    o = w.shape[0]
    if bias is not None and (bias.dtype != "f32" or bias.shape != (o,)):
        raise ShapeError(f"bf16_conv2d bias must be f32[{o}], got {bias}")
    oh = window_out(h, kh, stride[0], pad[0], pad[2], dilation[0])
    ow = window_out(wd, kw, stride[1], pad[1], pad[3], dilation[1])
    return TensorType((n, o, oh, ow), "f32")


def _conv(x, w, bias=None, *, kernel, stride, pad, dilation):
    x = np.asarray(x, np.float32)
    c, (kh, kw) = x.shape[1], kernel
    wf = unpack_pairs(w, c * kh * kw).reshape(-1, c, kh, kw)
    y = get("conv2d").compute(round_bf16(x), wf, None if bias is None else
                              np.asarray(bias, np.float32), stride=stride, pad=pad,
                              dilation=dilation, groups=1)
    return np.asarray(y, np.float32)


register(OpDef(
    name="bf16_conv2d",
    infer=_conv_infer,
    compute=_conv,
    attrs={"kernel": Attr("ints", check=pair[0], rule=pair[1]), **WINDOW},
    arity=(2, 3),
    fusion=Fusion.OPAQUE,
    doc="conv2d(bf16(x), W) + bias (groups 1) with W [O, C, KH, KW] in bfloat16, flattened "
        "per output channel and stored two per i32 word; products exact, summed in float32"))
