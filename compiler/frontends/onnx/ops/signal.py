"""ONNX signal-processing operators for the operator table: DFT and STFT (speech front
ends) and MelWeightMatrix.

A DFT of known length is a product with constant cosine and sine matrices along the signal
axis (`along`), real and imaginary parts apart: exact up to float rounding, and a GEMM the
backends run well for the frame lengths speech models use. STFT gathers its frames with
constant indices first. MelWeightMatrix depends on its (scalar) inputs only and is computed
at import time.
"""

from __future__ import annotations

import numpy as np

from ir.tensor_type import dtype_name

from ...op_table import along
from ..builder import Builder, OnnxNode, Unsupported, np_dtype
from .common import dtype, handler, is_const, norm_axis, rank


def _parts(b: Builder, x):
    """[..., 1 or 2] (real, or real and imaginary) as (re, im or None), the last axis gone."""
    shape = tuple(x.shape[:-1])
    if x.shape[-1] == 1:
        return b.reshape(x, shape), None
    if x.shape[-1] != 2:
        raise ValueError(f"a signal's last axis holds 1 (real) or 2 (complex) values, not "
                         f"{x.shape[-1]}")
    re, im = (b.reshape(b.call("slice", x, starts=[k], ends=[k + 1], axes=[rank(x) - 1]), shape)
              for k in (0, 1))
    return re, im


def _complex(b: Builder, re, im):
    """(re, im) as [..., 2]; im None: [..., 1]."""
    parts = [b.reshape(v, (*v.shape, 1)) for v in (re, im) if v is not None]
    return parts[0] if len(parts) == 1 else b.call("concat", *parts, axis=-1)


def _mix(b: Builder, terms):
    """sum of along(x, axis, m) over (x, axis, m) with x not None."""
    out = None
    for x, axis, m in terms:
        if x is None:
            continue
        y = along(b, x, axis, m)
        out = y if out is None else b.call("add", out, y)
    return out


def _angles(rows: int, cols: int, length: int) -> np.ndarray:
    """2 pi k n / length for k < rows, n < cols (in float64, exact integers first)."""
    k, n = np.arange(rows)[:, None], np.arange(cols)[None, :]
    return 2 * np.pi * ((k * n) % length) / length


def dft(b: Builder, re, im, axis: int, length: int, inverse: bool, onesided: bool):
    """(re, im) of the `length`-point DFT along `axis` (input truncated or zero-padded to
    it); the inverse is scaled by 1/length. Inverse and one-sided: the real signal of a
    one-sided spectrum (im of the result None)."""
    n_in = re.shape[axis]
    if inverse and onesided:  # irfft: bins k and length-k are conjugates; count both
        bins = length // 2 + 1
        theta = _angles(bins, length, length).T  # [length, bins]
        weight = np.where((np.arange(bins) == 0) | (2 * np.arange(bins) == length), 1, 2)
        cos, sin = (f(theta) * weight / length for f in (np.cos, np.sin))
        cos, sin = (_fit(m, n_in) for m in (cos, sin))
        return _mix(b, [(re, axis, cos), (im, axis, -sin)]), None
    rows = length // 2 + 1 if onesided else length
    theta = _angles(rows, length, length)
    scale = 1.0 / length if inverse else 1.0
    sign = 1.0 if inverse else -1.0
    cos, sin = (_fit(f(theta) * scale, n_in) for f in (np.cos, np.sin))
    out_re = _mix(b, [(re, axis, cos), (im, axis, -sign * sin)])
    out_im = _mix(b, [(im, axis, cos), (re, axis, sign * sin)])
    return out_re, out_im


def _fit(m: np.ndarray, n_in: int) -> np.ndarray:
    """m's columns for an input of n_in samples: extra input samples weigh nothing, missing
    ones (zero padding) are dropped."""
    cols = m.shape[1]
    if n_in <= cols:
        return np.ascontiguousarray(m[:, :n_in])
    return np.concatenate([m, np.zeros((m.shape[0], n_in - cols))], axis=1)


def _floats(b: Builder, x):
    if dtype(x).kind == "f":
        return x
    return x.astype(np.float32) if is_const(x) else b.call("cast", x, dtype="f32")


@handler
def DFT(b: Builder, n: OnnxNode, x, dft_length=None, axis=None):
    x = _floats(b, x)
    r = rank(x)
    if b.opset >= 20:
        a = -2 if axis is None else int(b.const(axis, "the axis").reshape(-1)[0])
    else:
        a = n.get("axis", 1)
    a = norm_axis(a, r)
    if a == r - 1:
        raise ValueError("DFT along the last axis (it holds the real and imaginary parts)")
    inverse, onesided = bool(n.get("inverse", 0)), bool(n.get("onesided", 0))
    re, im = _parts(b, x)
    if dft_length is not None:
        length = int(b.const(dft_length, "dft_length").reshape(-1)[0])
    else:
        length = 2 * (re.shape[a] - 1) if inverse and onesided else re.shape[a]
    if length <= 0:
        raise ValueError(f"DFT of length {length}")
    if onesided and not inverse and im is not None:
        raise Unsupported("a one-sided DFT of a complex signal")
    return _complex(b, *dft(b, re, im, a, length, inverse, onesided))


@handler
def STFT(b: Builder, n: OnnxNode, signal, frame_step, window=None, frame_length=None):
    signal = _floats(b, signal)
    step = int(b.const(frame_step, "frame_step").reshape(-1)[0])
    if frame_length is not None:
        length = int(b.const(frame_length, "frame_length").reshape(-1)[0])
    elif window is not None:
        length = window.shape[0]
    else:
        raise ValueError("STFT needs a window or a frame_length")
    re, im = _parts(b, signal)  # [batch, samples]
    frames = (re.shape[1] - length) // step + 1
    if frames <= 0 or step <= 0:
        raise ValueError(f"STFT frames of {length} every {step} over {re.shape[1]} samples")
    starts = np.arange(frames, dtype=np.int64)[:, None] * step
    idx = starts + np.arange(length, dtype=np.int64)[None, :]
    onesided = bool(n.get("onesided", 1))
    if onesided and im is not None:
        raise Unsupported("a one-sided STFT of a complex signal")
    parts = []
    for v in (re, im):
        if v is not None:
            v = b.call("gather", v, idx, axis=1)  # [batch, frames, length]
            if window is not None:
                w = window if dtype(window) == dtype(v) else (
                    window.astype(dtype(v)) if is_const(window)
                    else b.call("cast", window, dtype=dtype_name(dtype(v))))
                v = b.call("mul", v, b.reshape(w, (1, 1, length)))
        parts.append(v)
    return _complex(b, *dft(b, parts[0], parts[1], 2, length, False, onesided))


def mel_weight_matrix(bins: int, length: int, rate: int, low: float, high: float) -> np.ndarray:
    """[length // 2 + 1, bins] triangular filters between mel-spaced points (as onnx defines
    them: the points rounded down to spectrogram bins, (length + 1) * f // rate)."""
    mel_lo, mel_hi = (2595 * np.log1p(f / 700) / np.log(10) for f in (low, high))
    mels = np.arange(bins + 2) * ((mel_hi - mel_lo) / (bins + 2)) + mel_lo
    hz = 700 * np.expm1(mels / 2595 * np.log(10))
    points = ((length + 1) * hz // rate).astype(np.int64)
    out = np.zeros((length // 2 + 1, bins))
    for i in range(bins):
        left, centre, right = points[i:i + 3]
        if centre == left:
            out[centre, i] = 1
        else:
            j = np.arange(left, centre + 1)
            out[j, i] = (j - left) / (centre - left)
        if right > centre:
            j = np.arange(centre, right)
            out[j, i] = (right - j) / (right - centre)
    return out


@handler
def MelWeightMatrix(b: Builder, n: OnnxNode, bins, length, rate, low, high):
    bins, length, rate = (int(b.const(v, what).reshape(-1)[0]) for v, what in (
        (bins, "num_mel_bins"), (length, "dft_length"), (rate, "sample_rate")))
    low, high = (float(b.const(v, what).reshape(-1)[0]) for v, what in (
        (low, "lower_edge_hertz"), (high, "upper_edge_hertz")))
    b.sized([length // 2 + 1, bins], np.float64)
    to = np_dtype(n.get("output_datatype", 1)) or np.dtype(np.float32)
    return mel_weight_matrix(bins, length, rate, low, high).astype(to)
