"""Sliding-window helpers shared by convolution and pooling.

`pad_phase` copies an [N, C, H, W] tensor into arena scratch with a border of a fill value
(0 for convolution and average pooling, -inf for max pooling, plus the extra rows and
columns ceil_mode reads), so the kernels after it index without bounds checks.

`window_rows` is the loop of depthwise convolution and pooling: one work item per output
row of one plane; along the row, vectors of output columns (stride 1: contiguous loads;
stride 2: two loads de-interleaved by a shuffle; larger strides: gathers), then a scalar
remainder. The caller supplies what happens per window tap and per finished vector.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir as llir

from .builder import I32, KBuilder, const, vec_type
from .kernel import Buf, Kernel
from .loops import vector_loop


@dataclass(frozen=True)
class Window:
    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pad: tuple[int, int, int, int]  # top, left, bottom, right (plus any ceil_mode extra)
    oh: int
    ow: int

    @property
    def hp(self) -> int:
        return self.h + self.pad[0] + self.pad[2]

    @property
    def wp(self) -> int:
        return self.w + self.pad[1] + self.pad[3]

    @property
    def padded(self) -> bool:
        return any(self.pad)


def pad_phase(k: Kernel, x: Buf, win: Window, fill: float) -> Buf:
    """Scratch [N*C][Hp][Wp] holding x with a `fill` border; x itself when no padding."""
    if not win.padded:
        return x
    out = k.new_scratch(x.dtype, win.n * win.c * win.hp * win.wp)
    el = x.elem
    lanes = k.lanes(x.dtype)
    top, left = win.pad[0], win.pad[1]

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="plane") as plane:
            src = b.at(x.ptr, b.mul(plane, b.i64(win.h * win.w)), el)
            dst = b.at(out.ptr, b.mul(plane, b.i64(win.hp * win.wp)), el)
            with b.loop(0, win.hp, name="row") as row:
                drow = b.at(dst, b.mul(row, b.i64(win.wp)), el)
                ih = b.sub(row, b.i64(top))
                inside = b.and_(b.icmp_signed(">=", ih, b.i64(0)),
                                b.icmp_signed("<", ih, b.i64(win.h)))
                with b.if_else(inside) as (then, other):
                    with then:
                        _fill(b, drow, 0, left, fill, el, lanes)
                        srow = b.at(src, b.mul(ih, b.i64(win.w)), el)
                        vector_loop(b, b.i64(0), b.i64(win.w), lanes, lambda i, n: b.vstore(
                            b.vload(srow, i, el, n), drow, b.add(i, b.i64(left))))
                        _fill(b, drow, left + win.w, win.wp, fill, el, lanes)
                    with other:
                        _fill(b, drow, 0, win.wp, fill, el, lanes)

    k.phase(win.n * win.c, body, bufs=[x, out], cost=win.n * win.c * win.hp * win.wp)
    return out


def _fill(b, ptr, start: int, stop: int, value, el, lanes):
    if stop > start:
        vector_loop(b, b.i64(start), b.i64(stop), lanes,
                    lambda i, n: b.vstore(const(vec_type(el, n), value), ptr, i))


def load_taps(b: KBuilder, row_ptr, col, sw: int, el, width: int):
    """`width` elements row_ptr[col + j*sw], j = 0.. (padded rows: always in bounds)."""
    if width == 1 or sw == 1:
        return b.vload(row_ptr, col, el, width)
    if sw == 2:  # two loads, even lanes kept; the very last element is not needed (nor read)
        lo = b.vload(row_ptr, col, el, width)
        hi = b.masked_load(row_ptr, b.add(col, b.i64(width)), el, width,
                           b.lane_mask(b.i64(width - 1), 0, width))
        even = llir.Constant(llir.VectorType(I32, width), list(range(0, 2 * width, 2)))
        return b.shuffle_vector(lo, hi, even)
    idx = b.add(b.splat(b.trunc(col, I32), width),
                llir.Constant(llir.VectorType(I32, width), [j * sw for j in range(width)]))
    return b.gather(row_ptr, idx, el)


def window_rows(k: Kernel, win: Window, src: Buf, lanes: int,
                tap: Callable, finish: Callable, bufs, cost: float) -> None:
    """Items: (plane, output row). For each vector of output columns starting at `ow`:
    acc = None; acc = tap(b, acc, value, plane, kh, kw, width) for each window tap, then
    finish(b, acc, plane, oh, ow, width) stores it."""
    el = src.elem

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="item") as item:
            plane = b.udiv(item, b.i64(win.oh))
            oh = b.urem(item, b.i64(win.oh))
            base = b.at(src.ptr, b.mul(plane, b.i64(win.hp * win.wp)), el)

            def step(ow, width):
                acc = None
                for i in range(win.kh):
                    row = b.add(b.mul(oh, b.i64(win.sh)), b.i64(i * win.dh))
                    rptr = b.at(base, b.mul(row, b.i64(win.wp)), el)
                    for j in range(win.kw):
                        col = b.add(b.mul(ow, b.i64(win.sw)), b.i64(j * win.dw))
                        acc = tap(b, acc, load_taps(b, rptr, col, win.sw, el, width),
                                  plane, i, j, width)
                finish(b, acc, plane, oh, ow, width)

            vector_loop(b, b.i64(0), b.i64(win.ow), lanes, step)

    k.phase(win.n * win.c * win.oh, body, bufs=bufs, cost=cost)
