"""Sliding-window helpers shared by convolution and pooling.

`pad_phase` copies an [N, C, H, W] tensor into arena scratch with a border of a fill value
(0 for convolution and average pooling, -inf for max pooling, plus the extra rows and
columns ceil_mode reads), so the kernels after it index without bounds checks.

`window_direct` is the loop of depthwise convolution and pooling for column strides 1 and 2:
it reads the input in place, with compile-time masks (and the fill value) at the edges, so
no padded copy is made; it computes exactly what pad_phase + window_rows compute.

`window_rows` is the general loop (any stride) over a padded copy: one work item per output
row of one plane; along the row, vectors of output columns (stride 1: contiguous loads;
stride 2: two loads de-interleaved by a shuffle; larger strides: gathers), then a scalar
remainder. The caller supplies what happens per window tap and per finished vector.

Both unroll the window's taps, which is what makes small windows fast; but window_direct's
code grows with taps x row runs x edge vectors, and a large dilated window (a 25x25 max pool
over 60x80) took seconds to compile. So windows of more than UNROLL_TAPS taps never take
the direct path, and window_rows loops over their taps at run time where the caller's tap
does not depend on which tap it is (`looped=True`: pools): the code is then the same size
for any window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llvmlite import ir as llir

from .builder import I1, I32, KBuilder, const, vec_type
from .kernel import Buf, Kernel
from .loops import vector_loop

# Windows with more taps than this are not unrolled tap by tap in window_direct (its code
# grows with taps x row runs x edge vectors), and loop over their taps in window_rows when
# the caller allows it. 8x8 and smaller keep the unrolled kernels.
UNROLL_TAPS = 64


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

    @property
    def taps(self) -> int:
        return self.kh * self.kw


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
                tap: Callable, finish: Callable, bufs, cost: float,
                looped: bool = False) -> None:
    """Items: (plane, output row). For each vector of output columns starting at `ow`:
    acc = None; acc = tap(b, acc, value, plane, kh, kw, width) for each window tap, then
    finish(b, acc, plane, oh, ow, width) stores it.

    looped: the caller's tap does not use kh and kw, so a window of more than UNROLL_TAPS
    taps may run its rows in a loop (kh, and kw in a loop too, are then i64 values); the
    taps still combine in the same order, so the results are those of the unrolled kernel."""
    el = src.elem
    run_time = looped and win.taps > UNROLL_TAPS

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="item") as item:
            plane = b.udiv(item, b.i64(win.oh))
            oh = b.urem(item, b.i64(win.oh))
            base = b.at(src.ptr, b.mul(plane, b.i64(win.hp * win.wp)), el)

            def load(i, j, ow, width):
                row = b.add(b.mul(oh, b.i64(win.sh)), _times(b, i, win.dh))
                rptr = b.at(base, b.mul(row, b.i64(win.wp)), el)
                col = b.add(b.mul(ow, b.i64(win.sw)), _times(b, j, win.dw))
                return load_taps(b, rptr, col, win.sw, el, width)

            def step(ow, width):
                if run_time:
                    acc = _looped_taps(b, win, lambda i, j: load(i, j, ow, width),
                                       lambda acc, v, i, j: tap(b, acc, v, plane, i, j, width))
                else:
                    acc = None
                    for i in range(win.kh):
                        for j in range(win.kw):
                            acc = tap(b, acc, load(i, j, ow, width), plane, i, j, width)
                finish(b, acc, plane, oh, ow, width)

            if run_time and lanes < win.ow:
                _overlapping_vectors(b, win.ow, lanes, step)
            else:
                vector_loop(b, b.i64(0), b.i64(win.ow), lanes, step)

    k.phase(win.n * win.c * win.oh, body, bufs=bufs, cost=cost)


def _overlapping_vectors(b: KBuilder, n: int, lanes: int, step: Callable) -> None:
    """step(at, lanes) over [0, n), n > lanes: full vectors, then one more ending at n that
    overlaps the last of them instead of a scalar remainder (which, at every tap of a large
    window, cost 2.7x the vectors' time). The overlapped outputs are computed again from the
    same taps in the same order, so they are stored with the values they already hold; the
    caller's items are whole rows, never shared between threads, and a pool's output never
    aliases what it reads."""
    with b.loop(0, n // lanes * lanes, lanes, name="v") as at:
        step(at, lanes)
    if n % lanes:
        step(b.i64(n - lanes), lanes)


def _times(b: KBuilder, index, scale: int):
    """index * scale as an i64: folded here for a tap number, emitted for a loop counter."""
    return b.i64(index * scale) if isinstance(index, int) else b.mul(index, b.i64(scale))


def _looped_taps(b: KBuilder, win: Window, load: Callable, tap: Callable):
    """The taps of one vector of outputs with the window's rows in a run-time loop (and its
    columns too, for a row of more than UNROLL_TAPS), in the unrolled order: tap (0, 0)
    starts the accumulator, as `acc is None` does there. A row of taps stays unrolled: a
    loop around every single tap costs more than the tap (2.5x for an 8x8 max pool)."""

    def row(i, acc, first_j: int):
        if win.kw <= UNROLL_TAPS:
            for j in range(first_j, win.kw):
                acc = tap(acc, load(i, j), i, j)
            return acc
        slot = b.var(acc.type, acc, name="acc.row")
        with b.loop(first_j, win.kw, name="kw", unroll=False) as j:
            b.store(tap(b.get(slot, acc.type), load(i, j), i, j), slot)
        return b.get(slot, acc.type)

    first = row(0, tap(None, load(0, 0), 0, 0), 1)
    acc = b.var(first.type, first, name="acc")
    with b.loop(1, win.kh, name="kh", unroll=False) as i:
        b.store(row(i, b.get(acc, first.type), 0), acc)
    return b.get(acc, first.type)


def direct_ok(k: Kernel, win: Window, dtype: str) -> bool:
    """Whether window_direct handles this window (column stride 1 or 2, vector lanes, at
    most UNROLL_TAPS taps: its code grows with taps x row runs x edge vectors)."""
    return win.sw in (1, 2) and k.lanes(dtype) > 1 and win.taps <= UNROLL_TAPS


def _runs(values) -> list[tuple[int, int, object]]:
    """Group equal consecutive values: [(start, stop, value)]."""
    runs: list[list] = []
    for i, v in enumerate(values):
        if runs and runs[-1][2] == v:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1, v])
    return [tuple(r) for r in runs]


def store_vec(b: KBuilder, value, ptr, at, mask) -> None:
    if mask is None:
        b.vstore(value, ptr, at)
    else:
        b.masked_store(value, ptr, at, mask)


def window_direct(k: Kernel, win: Window, x: Buf, fill: float, prologue: Callable,
                  tap: Callable, finish: Callable, bufs, cost: float) -> None:
    """The window loop of depthwise convolution and pooling without a padded copy of the
    input (column stride 1 or 2: see direct_ok).

    Work items: (plane, block of output rows). Output rows fall into static runs by which
    tap rows lie inside the input; along a row, vectors of output columns are interior (a
    runtime loop of plain loads) or edge vectors, emitted one by one with compile-time
    masks on the input columns they read. Positions outside the input read as `fill`,
    exactly as from a padded copy, and taps combine in the same order: the results are
    bitwise those of pad_phase + window_rows.

    ctx = prologue(b, plane) once per item; acc = tap(b, ctx, acc, value, i, j) per tap
    (acc None first); finish(b, ctx, acc, at, oh, c0, omask) stores the vector of outputs
    at element offset `at` (row oh, first column c0; omask: static lane mask or None)."""
    el = x.elem
    L = k.lanes(x.dtype)
    top, left = win.pad[0], win.pad[1]
    sh, sw, dh, dw = win.sh, win.sw, win.dh, win.dw
    H, W, OH, OW = win.h, win.w, win.oh, win.ow
    span = L * sw  # input elements one vector of outputs reads per tap (stride 2: every other)
    planes = win.n * win.c
    threads = k.cg.num_threads
    chunks = 1 if planes >= 8 * threads or threads == 1 else min(OH, -(-8 * threads // planes))
    rows_per = -(-OH // chunks)
    chunks = -(-OH // rows_per)

    def row_ok(oh):
        return tuple(0 <= oh * sh + i * dh - top < H for i in range(win.kh))

    row_runs = _runs([row_ok(oh) for oh in range(OH)])

    def col_masks(c0):
        """Per tap column j: the input-column validity of the span a vector at c0 reads."""
        return tuple(tuple(0 <= c0 * sw + j * dw - left + t < W for t in range(span))
                     for j in range(win.kw))

    nvec = -(-OW // L)
    interior = [c * L + L <= OW and all(all(m) for m in col_masks(c * L)) for c in range(nvec)]
    inner = [c for c in range(nvec) if interior[c]]
    v_lo, v_hi = (inner[0], inner[-1] + 1) if inner else (0, 0)
    if not all(interior[v_lo:v_hi]):  # not one contiguous run (cannot happen): all static
        v_lo = v_hi = 0
    even = llir.Constant(llir.VectorType(I32, L), list(range(0, 2 * L, 2)))
    filled = const(vec_type(el, L), fill)
    pass_span = const(vec_type(el, span), fill)

    if sh == sw == 1 and OW == W and OW < L and OH * OW <= 4 * L:
        return _window_flat(k, win, x, fill, prologue, tap, finish, bufs, cost)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="item", unroll=False) as item:
            plane = b.udiv(item, b.i64(chunks))
            r0 = b.mul(b.urem(item, b.i64(chunks)), b.i64(rows_per))
            r1 = b.min_(b.add(r0, b.i64(rows_per)), OH)
            ctx = prologue(b, plane)
            xin = b.at(x.ptr, b.mul(plane, b.i64(H * W)), el)
            oplane = b.mul(plane, b.i64(OH * OW))

            def vec(oh, ok, c0, masks, nvalid):
                acc = None
                for i in range(win.kh):
                    if ok[i]:
                        row = b.add(b.mul(oh, b.i64(sh)), b.i64(i * dh - top))
                        rptr = b.at(xin, b.mul(row, b.i64(W)), el)
                    for j in range(win.kw):
                        m = masks[j] if masks is not None else None
                        if not ok[i] or (m is not None and not any(m)):
                            val = filled
                        else:
                            col = b.add(b.mul(c0, b.i64(sw)), b.i64(j * dw - left))
                            if m is None or all(m):
                                v = b.vload(rptr, col, el, span)
                            else:
                                mask = llir.Constant(llir.VectorType(I1, span), list(m))
                                v = b.masked_load(rptr, col, el, span, mask, pass_span)
                            val = v if sw == 1 else b.shuffle_vector(v, v, even)
                        acc = tap(b, ctx, acc, val, i, j)
                omask = None
                if nvalid < L:
                    omask = llir.Constant(llir.VectorType(I1, L), [t < nvalid for t in range(L)])
                at = b.add(oplane, b.add(b.mul(oh, b.i64(OW)), c0))
                finish(b, ctx, acc, at, oh, c0, omask)

            for run_lo, run_hi, ok in row_runs:
                start = b.select(b.icmp_signed(">", r0, b.i64(run_lo)), r0, b.i64(run_lo))
                with b.loop(start, b.min_(r1, run_hi), name="oh", unroll=False) as oh:
                    for c in range(nvec):
                        if c == v_lo and v_hi > v_lo:
                            with b.loop(v_lo * L, v_hi * L, L, name="ow", unroll=False) as c0:
                                vec(oh, ok, c0, None, L)
                        elif not v_lo <= c < v_hi:
                            vec(oh, ok, b.i64(c * L), col_masks(c * L), min(L, OW - c * L))

    k.phase(planes * chunks, body, bufs=bufs, cost=cost)


def _window_flat(k: Kernel, win: Window, x: Buf, fill: float, prologue: Callable,
                 tap: Callable, finish: Callable, bufs, cost: float) -> None:
    """window_direct for small planes, stride 1, as wide as the input (OW == W): vectors run
    over the flattened plane, several output rows per vector. Output q = oh*W + ow reads
    input q + (i*dh - top)*W + (j*dw - left) at tap (i, j): a contiguous load whose lanes
    outside the window's rows or columns (static masks) read as `fill`."""
    el, L = x.elem, k.lanes(x.dtype)
    top, left = win.pad[0], win.pad[1]
    H, W, OH, OW = win.h, win.w, win.oh, win.ow
    size = OH * OW

    def lane_ok(q, i, j):
        oh, ow = divmod(q, OW)
        r, c = oh + i * win.dh - top, ow + j * win.dw - left
        return q < size and 0 <= r < H and 0 <= c < W

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="plane", unroll=False) as plane:
            ctx = prologue(b, plane)
            xin = b.at(x.ptr, b.mul(plane, b.i64(H * W)), el)
            for q0 in range(0, size, L):
                acc = None
                for i in range(win.kh):
                    for j in range(win.kw):
                        m = [lane_ok(q0 + t, i, j) for t in range(L)]
                        off = q0 + (i * win.dh - top) * W + j * win.dw - left
                        if not any(m):
                            val = const(vec_type(el, L), fill)
                        elif all(m):
                            val = b.vload(xin, b.i64(off), el, L)
                        else:
                            val = b.masked_load(xin, b.i64(off), el, L,
                                                llir.Constant(llir.VectorType(I1, L), m),
                                                const(vec_type(el, L), fill))
                        acc = tap(b, ctx, acc, val, i, j)
                n = min(L, size - q0)
                omask = None if n == L else llir.Constant(llir.VectorType(I1, L),
                                                          [t < n for t in range(L)])
                at = b.add(b.mul(plane, b.i64(size)), b.i64(q0))
                finish(b, ctx, acc, at, b.i64(0), b.i64(q0), omask)

    k.phase(win.n * win.c, body, bufs=bufs, cost=cost)
