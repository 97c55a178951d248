"""conv2d (and fused_conv2d: act(conv + bias + residual)).

Five strategies, chosen from the shapes:
- by rows (conv_rows.py; dense, constant weights, where rows_pay says it beats the GEMM
  below): output pixels as the GEMM's rows, MR of one output row per register tile, read
  straight from the input (or its padded, phase-split copy) through a compile-time table
  of offsets, so no im2col and no computed-then-dropped columns; tiles are transposed in
  registers into the NCHW output;
- depthwise (groups == C == O): direct, reading the input in place (window.window_direct:
  no padded copy; edge vectors use compile-time masks); the KH*KW taps are FMAs with
  weights splatted once per plane, and the epilogue (bias, residual, activation) is applied
  before the store. Column strides above 2 use a padded copy and window_rows;
- pointwise (1x1, stride 1, no padding): a GEMM whose B is the input itself, [C, H*W];
- batched pointwise on small planes (merge_images: 6x6, 3x3, ...): ONE GEMM over all
  images side by side, C[O, N*HW], so the NR-wide column tiles are filled; B is packed by
  gathers, and the epilogue is applied while scattering back to [N, O, HW];
- general: a GEMM per (image, group), C[Og, OH*OW] = W[Og, Cg*KH*KW] @ im2col(x). The
  input is first copied with a zero border (pad_phase) so that im2col needs no bounds
  checks; the packing of each KC x NC block of im2col happens inside the work item that
  uses it (per-thread scratch), with gathers over precomputed per-column offsets.
Weights (A) are packed at compile time.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir as llir

from .builder import I64, KBuilder, const, vec_type
from .conv_rows import conv_rows
from .elementwise import map_kernel
from .gemm import (
    Gemm,
    blocking,
    gemm_phase,
    pack_a_phase,
    pack_b_rows,
    packed_weight,
    scratch_for_b,
)
from .kernel import Buf, Kernel
from .linalg import epilogue_of, fill_bias
from .loops import vector_loop
from .registry import lowering
from .window import Window, direct_ok, load_taps, pad_phase, store_vec, window_direct, window_rows


@lowering("conv2d")
def lower_conv2d(k: Kernel) -> None:
    x, w = k.inputs[:2]
    bias = k.inputs[2] if len(k.inputs) > 2 else None
    conv(k, x, w, bias, None, k.outputs[0])


def window_of(x: Buf, out: Buf, kernel, attrs) -> Window:
    n, c, h, w = x.shape
    (sh, sw), (dh, dw) = attrs["stride"], attrs["dilation"]
    return Window(n, c, h, w, kernel[0], kernel[1], sh, sw, dh, dw, tuple(attrs["pad"]),
                  out.shape[2], out.shape[3])


def conv(k: Kernel, x: Buf, w: Buf, bias: Buf | None, resid: Buf | None, out: Buf) -> None:
    o, cg, kh, kw = w.shape
    groups = k.attrs["groups"]
    win = window_of(x, out, (kh, kw), k.attrs)
    if out.size == 0:
        return
    if cg * kh * kw == 0:
        return fill_bias(k, out, None) if bias is None else _bias_planes(k, out, bias)
    if groups == win.c == o and cg == 1:
        return depthwise(k, x, w, bias, resid, out, win)
    conv_gemm(k, x, w, bias, resid, out, win, groups)


def _bias_planes(k, out, bias):
    """An empty reduction: every output pixel is its channel's bias."""
    view = Buf(bias.name, bias.type.with_shape((bias.shape[0], 1, 1)), bias.where)
    map_kernel(k, lambda b, xs: xs[0], ins=[view], out=out)


def conv_gemm(k, x, w, bias, resid, out, win: Window, groups: int) -> None:
    """C[Og, OH*Wq] = W_g @ B per (image, group), B's rows read contiguously from the
    phase-split padded input (see split_phases); then the Wq - OW extra columns per output
    row are dropped while the epilogue is applied (or, when Wq == OW, the GEMM's own
    epilogue writes the output directly)."""
    o, cg, kh, kw = w.shape
    og, kk = o // groups, cg * kh * kw
    blk = blocking(k.cg.target, x.dtype)
    mpad = -(-og // blk.mr) * blk.mr
    if (kh, kw) == (1, 1) and not win.padded and (win.sh, win.sw) != (1, 1):
        x, win = subsample(k, x, win)  # a strided 1x1 is a 1x1 over the sampled pixels
    pointwise = (kh, kw, win.sh, win.sw) == (1, 1, 1, 1) and not win.padded
    if groups == 1 and k.is_weight(1) and rows_pay(win, kk, o, pointwise, blk.nr):
        return by_rows(k, x, bias, resid, out, win, blk, kk, pointwise)
    if (pointwise and groups == 1 and k.is_weight(1)
            and transpose_pays(win.n, win.h * win.w, o, blk)):
        return pointwise_transposed(k, x, bias, resid, out, win, blk, o, kk)
    if k.is_weight(1):
        a = k.weight_constant("packed_w", packed_weight, 1, (groups, og, kk), None, "a", blk.mr)
    else:
        a = k.new_scratch(w.dtype, groups * mpad * kk)
        pack_a_phase(k, w, a, groups, og, kk)
    if pointwise and groups == 1 and merge_images(win.n, win.h * win.w, blk.nr):
        return pointwise_merged(k, x, a, bias, resid, out, win, blk, o, kk)
    if pointwise:
        src, hq, wq, table = x, win.h, win.w, None
        plane = cg * win.h * win.w
    else:
        src, hq, wq = split_phases(k, x, win)
        plane = cg * win.sh * win.sw * hq * wq
        table = k.constant(_row_offsets(win, cg, hq, wq), "rows")
    ncol = win.oh * wq
    direct = wq == win.ow
    epi = epilogue_of(k, "row" if bias is not None else None, resid is not None)
    cbuf = out if direct else k.new_scratch(x.dtype, win.n * o * ncol)
    g = Gemm(win.n * groups, og, ncol, kk, a, cbuf, ncol,
             a_off=lambda b, bi: b.mul(b.urem(bi, b.i64(groups)), b.i64(mpad * kk)),
             c_off=lambda b, bi: b.mul(bi, b.i64(og * ncol)))
    if direct:
        g.bias, g.resid, g.epi = bias, resid, epi
        g.bias_off = lambda b, bi: b.mul(b.urem(bi, b.i64(groups)), b.i64(og))
    el = x.elem

    def row_at(b, krow):
        return b.vload(table.ptr, krow, table.elem) if table else b.mul(krow, b.i64(ncol))

    def pack(b: KBuilder, bi, pc, kc, col0, ncols, dst):
        base = b.at(src.ptr, b.mul(bi, b.i64(plane)), el)
        pack_b_rows(b, blk, base, row_at, ncol, pc, kc, col0, ncols, dst, el)

    g.pack_b = pack
    gemm_phase(k, g, x.dtype, scratch_for_b(k, x.dtype, ncol))
    if not direct:
        _compact(k, cbuf, out, bias, resid, epi, win, wq)


def rows_pay(win: Window, kk: int, o: int, pointwise: bool, nr: int) -> bool:
    """Whether conv_rows (pixels as the GEMM's rows, no im2col) beats the GEMM over columns
    for a dense convolution with constant weights. Each has an overhead per tile: conv_rows
    a transposing store, worth about 14 of its K steps; the GEMM packs B, worth about 14 of
    its M rows (output channels), and computes the columns it rounds up to NR (and, over
    the phase-split input, Wq - OW columns per row) for nothing. Measured with 1x1 layers on
    56x56 planes: K = 64, O = 256 is 15% faster as a GEMM; K = 256, O = 64 8% slower."""
    ncol = win.h * win.w if pointwise else win.oh * -(-win.wp // win.sw)
    waste = (-(-ncol // nr) * nr) / (win.oh * win.ow)
    return 1 + 14 / kk < waste * (1 + 14 / o)


def by_rows(k, x, bias, resid, out, win: Window, blk, kk: int, pointwise: bool) -> None:
    """conv_rows over x itself (a 1x1: one row of H*W pixels per image; stride 1 without
    padding: rows W apart) or over its padded, phase-split copy (split_phases)."""
    cg = win.c
    if pointwise:
        hw = win.h * win.w
        table = np.arange(kk, dtype=np.int64) * hw
        return conv_rows(k, x, table, cg * hw, 1, hw, 0, bias, resid, out, blk)
    if (win.sh, win.sw) == (1, 1) and not win.padded:
        src, hq, wq = x, win.h, win.w
    else:
        src, hq, wq = split_phases(k, x, win)
    table = _row_offsets(win, cg, hq, wq)
    conv_rows(k, src, table, cg * win.sh * win.sw * hq * wq, win.oh, win.ow, wq, bias, resid,
              out, blk)


def subsample(k: Kernel, x: Buf, win: Window) -> tuple[Buf, Window]:
    """Scratch [N, C, OH, OW] = x[:, :, ::sh, ::sw] (the only pixels a 1x1 window with
    stride reads, instead of every stride phase), and the 1x1 stride-1 window over it."""
    sh, sw, oh, ow = win.sh, win.sw, win.oh, win.ow
    planes = win.n * win.c
    out = k.new_scratch(x.dtype, planes * oh * ow)
    el, lanes = x.elem, k.lanes(x.dtype)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="plane") as p:
            src = b.at(x.ptr, b.mul(p, b.i64(win.h * win.w)), el)
            dst = b.at(out.ptr, b.mul(p, b.i64(oh * ow)), el)
            with b.loop(0, oh, name="row", unroll=False) as r:
                srow = b.at(src, b.mul(r, b.i64(sh * win.w)), el)
                drow = b.at(dst, b.mul(r, b.i64(ow)), el)
                vector_loop(b, b.i64(0), b.i64(ow), lanes, lambda j, n: b.vstore(
                    load_taps(b, srow, b.mul(j, b.i64(sw)), sw, el, n), drow, j))

    k.phase(planes, body, bufs=[x, out], cost=planes * oh * ow)
    return out, Window(win.n, win.c, oh, ow, 1, 1, 1, 1, 1, 1, (0, 0, 0, 0), oh, ow)


def _row_offsets(win: Window, cg: int, hq: int, wq: int) -> np.ndarray:
    """Offset of im2col row (c, i, j) in a phase-split plane group: the phase holding
    input row i*dh and column j*dw, then the shift inside it."""
    s = win.sh * win.sw
    c, i, j = np.meshgrid(np.arange(cg), np.arange(win.kh), np.arange(win.kw), indexing="ij")
    ri, rj = i * win.dh, j * win.dw
    phase = (ri % win.sh) * win.sw + rj % win.sw
    off = ((c * s + phase) * hq + ri // win.sh) * wq + rj // win.sw
    return off.reshape(-1).astype(np.int64)


def split_phases(k: Kernel, x: Buf, win: Window):
    """Scratch [N*C][sh][sw][Hq][Wq]: phase (a, b) holds padded-input rows a, a+sh, ... and
    columns b, b+sw, ...: with it every im2col row is a contiguous run (stride 1: the padded
    input itself). Returns (buffer, Hq, Wq); a few elements of slack follow the last plane
    because the GEMM's extra columns read a little past a plane's end."""
    sh, sw = win.sh, win.sw
    hq, wq = -(-win.hp // sh), -(-win.wp // sw)
    planes = win.n * win.c
    out = k.new_scratch(x.dtype, planes * sh * sw * hq * wq + win.kw * win.dw + 16)
    el, lanes = x.elem, k.lanes(x.dtype)
    top, left = win.pad[0], win.pad[1]

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="plane") as p:
            src = b.at(x.ptr, b.mul(p, b.i64(win.h * win.w)), el)
            for pa in range(sh):
                for pb in range(sw):
                    j0 = min(wq, max(0, -(-(left - pb) // sw)))
                    j1 = max(j0, min(wq, (win.w - 1 + left - pb) // sw + 1))
                    dst = b.at(out.ptr, b.mul(b.add(b.mul(p, b.i64(sh * sw)),
                                                    b.i64(pa * sw + pb)), b.i64(hq * wq)), el)
                    with b.loop(0, hq, name="row", unroll=False) as i:
                        r = b.sub(b.add(b.mul(i, b.i64(sh)), b.i64(pa)), b.i64(top))
                        inside = b.and_(b.icmp_signed(">=", r, b.i64(0)),
                                        b.icmp_signed("<", r, b.i64(win.h)))
                        drow = b.at(dst, b.mul(i, b.i64(wq)), el)
                        with b.if_else(inside) as (then, other):
                            with then:
                                srow = b.at(src, b.mul(r, b.i64(win.w)), el)
                                _zeros(b, drow, 0, j0, el, lanes)
                                first = j0 * sw + pb - left

                                def copy(j, width, srow=srow, drow=drow, shift=first - j0 * sw):
                                    col = b.add(b.mul(j, b.i64(sw)), b.i64(shift))
                                    b.vstore(load_taps(b, srow, col, sw, el, width), drow, j)

                                vector_loop(b, b.i64(j0), b.i64(j1), lanes, copy)
                                _zeros(b, drow, j1, wq, el, lanes)
                            with other:
                                _zeros(b, drow, 0, wq, el, lanes)

    k.phase(planes, body, bufs=[x, out], cost=planes * win.hp * win.wp)
    return out, hq, wq


def _zeros(b, ptr, start: int, stop: int, el, lanes: int) -> None:
    if stop > start:
        vector_loop(b, b.i64(start), b.i64(stop), lanes,
                    lambda i, n: b.vstore(const(vec_type(el, n), 0), ptr, i))


def _compact(k, cbuf, out, bias, resid, epi, win: Window, wq: int) -> None:
    """out[n, o, y, :OW] = act(C[n, o, y*Wq : y*Wq + OW] + bias[o] + resid[n, o, y, :])."""
    el, lanes, dtype = out.elem, k.lanes(out.dtype), out.dtype
    o = out.shape[1]

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="row") as r:
            chan = b.urem(b.udiv(r, b.i64(win.oh)), b.i64(o))
            y = b.urem(r, b.i64(win.oh))
            src = b.add(b.mul(b.udiv(r, b.i64(win.oh)), b.i64(win.oh * wq)),
                        b.mul(y, b.i64(wq)))
            dst = b.mul(r, b.i64(win.ow))
            bv = b.vload(bias.ptr, chan, el) if bias is not None else None

            def step(j, width):
                v = b.vload(cbuf.ptr, b.add(src, j), el, width)
                res = b.vload(resid.ptr, b.add(dst, j), el, width) if resid is not None else None
                v = epi.apply(b, v, dtype, b.splat(bv, width) if bv is not None else None, res)
                b.vstore(v, out.ptr, b.add(dst, j))

            vector_loop(b, b.i64(0), b.i64(win.ow), lanes, step)

    bufs = [cbuf, out] + [t for t in (bias, resid) if t is not None]
    k.phase(out.size // win.ow, body, bufs=bufs, cost=out.size)


def depthwise(k, x, w, bias, resid, out, win: Window) -> None:
    """y[n,c] = act(sum_taps w[c,tap] * x[n,c,window] + bias[c] + resid[n,c])."""
    if direct_ok(k, win, x.dtype):
        return depthwise_direct(k, x, w, bias, resid, out, win)
    src = pad_phase(k, x, win, 0.0)
    el, dtype = x.elem, x.dtype
    taps = win.kh * win.kw
    epi = epilogue_of(k, None)
    plane_out = win.oh * win.ow

    def tap(b, acc, val, plane, i, j, width):
        c = b.urem(plane, b.i64(win.c))
        wv = b.splat(b.vload(w.ptr, b.add(b.mul(c, b.i64(taps)), b.i64(i * win.kw + j)), el),
                     width)
        return b.fmul(val, wv) if acc is None else b.fmuladd(val, wv, acc)

    def finish(b, acc, plane, oh, ow, width):
        at = b.add(b.mul(plane, b.i64(plane_out)), b.add(b.mul(oh, b.i64(win.ow)), ow))
        bv = None if bias is None else b.splat(
            b.vload(bias.ptr, b.urem(plane, b.i64(win.c)), el), width)
        res = None if resid is None else b.vload(resid.ptr, at, el, width)
        b.vstore(epi.apply(b, acc, dtype, bv, res), out.ptr, at)

    bufs = [src, w, out] + [t for t in (bias, resid) if t is not None]
    window_rows(k, win, src, k.lanes(dtype), tap, finish, bufs,
                cost=2.0 * out.size * taps)


def depthwise_direct(k, x, w, bias, resid, out, win: Window) -> None:
    """Depthwise convolution without a padded copy (window.window_direct): the plane's
    weights are splatted once per work item, the epilogue runs before the store."""
    el, dtype = x.elem, x.dtype
    L = k.lanes(dtype)
    taps = win.kh * win.kw
    epi = epilogue_of(k, None)

    def prologue(b, plane):
        ch = b.urem(plane, b.i64(win.c))
        wv = [b.splat(b.vload(w.ptr, b.add(b.mul(ch, b.i64(taps)), b.i64(t)), el), L)
              for t in range(taps)]
        bv = b.splat(b.vload(bias.ptr, ch, el), L) if bias is not None else None
        return wv, bv

    def tap(b, ctx, acc, val, i, j):
        wt = ctx[0][i * win.kw + j]
        return b.fmul(val, wt) if acc is None else b.fmuladd(val, wt, acc)

    def finish(b, ctx, acc, at, oh, c0, omask):
        res = None if resid is None else (b.vload(resid.ptr, at, el, L) if omask is None else
                                          b.masked_load(resid.ptr, at, el, L, omask))
        store_vec(b, epi.apply(b, acc, dtype, ctx[1], res), out.ptr, at, omask)

    bufs = [x, w, out] + [t for t in (bias, resid) if t is not None]
    window_direct(k, win, x, 0.0, prologue, tap, finish, bufs, cost=2.0 * out.size * taps)


def merge_images(n: int, hw: int, nr: int) -> bool:
    """Whether a batched 1x1 convolution should put all images side by side in the GEMM's
    columns: when one image's columns fill its last NR-wide tile poorly (small planes)."""
    return n > 1 and hw % nr != 0 and (-(-hw // nr) * nr) > 1.1 * hw


def pointwise_merged(k, x, a, bias, resid, out, win: Window, blk, o: int, c: int) -> None:
    """1x1 convolution of a batch as ONE GEMM, C[O, N*HW] = W @ [x_0 | x_1 | ...], so that
    small planes (6x6, 3x3) still fill the micro-kernel's column tiles. B's panels are
    packed by gathers (column n*HW + p is x[n, :, p]); the epilogue is applied while the
    result is scattered back to [N, O, HW]."""
    hw = win.h * win.w
    ncol = win.n * hw
    el, L = x.elem, blk.lanes
    cbuf = k.new_scratch(x.dtype, o * ncol)
    g = Gemm(1, o, ncol, c, a, cbuf, ncol)

    def pack(b: KBuilder, bi, pc, kc, col0, ncols, dst):
        iota = [llir.Constant(llir.VectorType(I64, L), list(range(v * L, v * L + L)))
                for v in range(blk.nv)]
        with b.loop(0, b.udiv(b.add(ncols, b.i64(blk.nr - 1)), b.i64(blk.nr)),
                    name="jp") as jp:
            col = b.add(col0, b.mul(jp, b.i64(blk.nr)))
            panel = b.at(dst, b.mul(jp, b.mul(kc, b.i64(blk.nr))), el)
            idx, masks = [], []
            for v in range(blk.nv):
                cols = b.add(b.splat(col, L), iota[v])
                masks.append(b.icmp_signed("<", cols, b.splat(b.i64(ncol), L)))
                img = b.udiv(cols, b.splat(b.i64(hw), L))
                pix = b.urem(cols, b.splat(b.i64(hw), L))
                idx.append(b.add(b.mul(img, b.splat(b.i64(c * hw), L)), pix))
            with b.loop(0, kc, name="kk") as kx:
                rowp = b.at(x.ptr, b.mul(b.add(pc, kx), b.i64(hw)), el)
                for v in range(blk.nv):
                    val = b.gather(rowp, idx[v], el, masks[v])
                    b.vstore(val, panel, b.add(b.mul(kx, b.i64(blk.nr)), b.i64(v * L)))

    g.pack_b = pack
    gemm_phase(k, g, x.dtype, scratch_for_b(k, x.dtype, ncol))
    epi = epilogue_of(k, "row" if bias is not None else None, resid is not None)
    lanes, dtype = k.lanes(out.dtype), out.dtype

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="row") as r:  # r = n * O + o
            img, chan = b.udiv(r, b.i64(o)), b.urem(r, b.i64(o))
            src = b.add(b.mul(chan, b.i64(ncol)), b.mul(img, b.i64(hw)))
            dst = b.mul(r, b.i64(hw))
            bv = b.vload(bias.ptr, chan, el) if bias is not None else None

            def step(j, width):
                v = b.vload(cbuf.ptr, b.add(src, j), el, width)
                res = b.vload(resid.ptr, b.add(dst, j), el, width) if resid is not None else None
                v = epi.apply(b, v, dtype, b.splat(bv, width) if bv is not None else None, res)
                b.vstore(v, out.ptr, b.add(dst, j))

            vector_loop(b, b.i64(0), b.i64(hw), lanes, step)

    bufs = [cbuf, out] + [t for t in (bias, resid) if t is not None]
    k.phase(win.n * o, body, bufs=bufs, cost=out.size)


def _fill(n: int, tile: int) -> float:
    return n / (-(-n // tile) * tile)


def transpose_pays(n: int, hw: int, o: int, blk) -> bool:
    """Whether a 1x1 convolution of one image fills the register tiles better transposed,
    C^T[HW, O] = x^T @ W^T (pixels as rows, MR at a time; channels as columns): small
    planes (3x3, 6x6) leave most of an NR-wide column tile empty. Batches merge images
    instead (merge_images)."""
    return n == 1 and _fill(hw, blk.mr) * _fill(o, blk.nr) > 1.1 * _fill(hw, blk.nr) * _fill(
        o, blk.mr)


def pointwise_transposed(k, x, bias, resid, out, win: Window, blk, o: int, c: int) -> None:
    """C^T[HW, O] = x^T[HW, C] @ W^T[C, O] per image: A = x^T packed by a phase (rows are
    pixels), B = W^T packed at compile time; the epilogue is applied while transposing C^T
    back to [O, HW]. Each output is the same K-ordered chain of FMAs as in the untransposed
    GEMM, so results are bitwise the same."""
    hw = win.h * win.w
    el = x.elem
    mpad = -(-hw // blk.mr) * blk.mr
    a = k.new_scratch(x.dtype, win.n * mpad * c)
    pack_a_phase(k, x, a, win.n, hw, c,
                 index=lambda b, bi, row, kx: b.add(b.mul(b.add(b.mul(bi, b.i64(c)), kx),
                                                          b.i64(hw)), row))
    bp = k.weight_constant("packed_wt", packed_weight, 1, (o, c), (1, 0), "b", blk.nr)
    ct = k.new_scratch(x.dtype, win.n * hw * o)
    g = Gemm(win.n, hw, o, c, a, ct, o, b_packed=bp,
             a_off=lambda b, bi: b.mul(bi, b.i64(mpad * c)),
             c_off=lambda b, bi: b.mul(bi, b.i64(hw * o)))
    gemm_phase(k, g, x.dtype)
    epi = epilogue_of(k, "row" if bias is not None else None, resid is not None)
    lanes, dtype = k.lanes(out.dtype), out.dtype
    stride = llir.Constant(llir.VectorType(I64, lanes), [t * o for t in range(lanes)]) \
        if lanes > 1 else None

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="row") as r:  # r = n * O + o: output row of HW pixels
            img, chan = b.udiv(r, b.i64(o)), b.urem(r, b.i64(o))
            src = b.at(ct.ptr, b.add(b.mul(img, b.i64(hw * o)), chan), el)
            dst = b.mul(r, b.i64(hw))
            bv = b.vload(bias.ptr, chan, el) if bias is not None else None

            def step(j, width):
                if width == 1:
                    v = b.vload(src, b.mul(j, b.i64(o)), el)
                else:
                    idx = b.add(b.splat(b.mul(j, b.i64(o)), width), stride)
                    v = b.gather(src, idx, el)
                res = b.vload(resid.ptr, b.add(dst, j), el, width) if resid is not None else None
                v = epi.apply(b, v, dtype, b.splat(bv, width) if bv is not None else None, res)
                b.vstore(v, out.ptr, b.add(dst, j))

            vector_loop(b, b.i64(0), b.i64(hw), lanes, step)

    bufs = [ct, out] + [t for t in (bias, resid) if t is not None]
    k.phase(win.n * o, body, bufs=bufs, cost=out.size)
