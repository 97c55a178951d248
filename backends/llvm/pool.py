"""max_pool2d, avg_pool2d and global_avg_pool.

Window pools with column stride 1 or 2 read the input in place (window.window_direct: the
border reads as -inf for max, 0 for average); others read a copy of the input with that
border (ceil_mode's extra rows and columns included) and run the shared row kernel of
window.py. Either way: vectors of output columns, one max or add per window tap. Max uses
llvm.maximum, so NaN wins as in numpy. Average divides by a per-position count table
computed at compile time with the reference's rule (cells inside the input, or inside
input + explicit padding with count_include_pad; never the ceil_mode margin).
"""

from __future__ import annotations

import math

import numpy as np

from .builder import KBuilder, const, vec_type
from .kernel import Kernel
from .loops import prod, vreduce
from .registry import lowering
from .window import Window, direct_ok, pad_phase, store_vec, window_direct, window_rows


def pool_window(k: Kernel, out_shape=None) -> tuple[Window, tuple[int, int]]:
    """The pool's window over its input; ceil_mode's extra rows/columns join the padding."""
    x = k.inputs[0]
    a = k.attrs
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw), pad = a["kernel"], a["stride"], a["dilation"], a["pad"]
    oh, ow = (out_shape or k.outputs[0].shape)[2:]
    extra_h = max(0, (oh - 1) * sh + dh * (kh - 1) + 1 - (h + pad[0] + pad[2]))
    extra_w = max(0, (ow - 1) * sw + dw * (kw - 1) + 1 - (w + pad[1] + pad[3]))
    full = (pad[0], pad[1], pad[2] + extra_h, pad[3] + extra_w)
    return Window(n, c, h, w, kh, kw, sh, sw, dh, dw, full, oh, ow), (extra_h, extra_w)


@lowering("max_pool2d")
def lower_max_pool(k: Kernel) -> None:
    win, _ = pool_window(k)
    out = k.outputs[0]
    if out.size == 0:
        return
    if direct_ok(k, win, out.dtype):
        def tap_d(b, ctx, acc, val, i, j):
            return val if acc is None else b.intrinsic("maximum", [acc, val])

        def finish_d(b, ctx, acc, at, oh, c0, omask):
            store_vec(b, acc, out.ptr, at, omask)

        return window_direct(k, win, k.inputs[0], -math.inf, lambda b, p: None, tap_d,
                             finish_d, [k.inputs[0], out], cost=out.size * win.kh * win.kw)
    src = pad_phase(k, k.inputs[0], win, -math.inf)

    def tap(b, acc, val, plane, i, j, width):
        return val if acc is None else b.intrinsic("maximum", [acc, val])

    def finish(b, acc, plane, oh, ow, width):
        b.vstore(acc, out.ptr, _at(b, win, plane, oh, ow))

    window_rows(k, win, src, k.lanes(out.dtype), tap, finish, [src, out],
                cost=out.size * win.kh * win.kw, looped=True)  # tap ignores i, j


def _at(b, win, plane, oh, ow):
    return b.add(b.mul(plane, b.i64(win.oh * win.ow)), b.add(b.mul(oh, b.i64(win.ow)), ow))


def _counts(size, k, s, d, lo, hi, out, include_pad):
    """Window cells per output position along one axis that the divisor counts."""
    first, last = (0, size + lo + hi) if include_pad else (lo, lo + size)
    return np.array([sum(first <= o * s + t * d < last for t in range(k)) for o in range(out)])


@lowering("avg_pool2d")
def lower_avg_pool(k: Kernel) -> None:
    win, _ = pool_window(k)
    out = k.outputs[0]
    if out.size == 0:
        return
    a = k.attrs
    pad, cip = a["pad"], a["count_include_pad"]
    ch = _counts(win.h, win.kh, win.sh, win.dh, pad[0], pad[2], win.oh, cip)
    cw = _counts(win.w, win.kw, win.sw, win.dw, pad[1], pad[3], win.ow, cip)
    count = k.constant(np.outer(ch, cw).astype(out.type.np_dtype), "count")
    if direct_ok(k, win, out.dtype):
        def tap_d(b, ctx, acc, val, i, j):
            return val if acc is None else b.fadd(acc, val)

        def finish_d(b, ctx, acc, at, oh, c0, omask):
            where = b.add(b.mul(oh, b.i64(win.ow)), c0)
            lanes = k.lanes(out.dtype)
            div = (b.vload(count.ptr, where, out.elem, lanes) if omask is None else
                   b.masked_load(count.ptr, where, out.elem, lanes, omask, const(
                       vec_type(out.elem, lanes), 1)))
            store_vec(b, b.fdiv(acc, div), out.ptr, at, omask)

        return window_direct(k, win, k.inputs[0], 0.0, lambda b, p: None, tap_d, finish_d,
                             [k.inputs[0], out, count], cost=out.size * win.kh * win.kw)
    src = pad_phase(k, k.inputs[0], win, 0.0)

    def tap(b, acc, val, plane, i, j, width):
        return val if acc is None else b.fadd(acc, val)

    def finish(b, acc, plane, oh, ow, width):
        div = b.vload(count.ptr, b.add(b.mul(oh, b.i64(win.ow)), ow), out.elem, width)
        b.vstore(b.fdiv(acc, div), out.ptr, _at(b, win, plane, oh, ow))

    window_rows(k, win, src, k.lanes(out.dtype), tap, finish, [src, out, count],
                cost=out.size * win.kh * win.kw, looped=True)  # tap ignores i, j


@lowering("global_avg_pool")
def lower_global_avg_pool(k: Kernel) -> None:
    x, out = k.inputs[0], k.outputs[0]
    planes, size = prod(x.shape[:2]), prod(x.shape[2:])
    if out.size == 0:
        return
    lanes = k.lanes(x.dtype)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="plane") as p:
            b.vstore(b.fdiv(plane_sum(b, x, b.mul(p, b.i64(size)), size, lanes),
                            const(x.elem, size)), out.ptr, p)

    k.phase(planes, body, cost=x.size)


def plane_sum(b: KBuilder, x, start, size: int, lanes: int):
    """Sum of x[start : start+size] (see loops.vreduce for the order)."""
    return vreduce(b, b.i64(0), b.i64(size), lanes, x.elem, 0.0,
                   lambda i, w: b.vload(x.ptr, b.add(start, i), x.elem, w), b.fadd)
