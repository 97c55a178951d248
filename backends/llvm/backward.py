"""Operators of backward graphs: one_hot, scatter_add, conv2d_grad_input,
conv2d_grad_weight, max_pool2d_grad and dropout_seeded.

conv2d_grad_input is a GEMM per (image, group), cols[K', P] = W_g^T @ dy_g, followed by
col2im: each input plane accumulates its taps in the reference's order (tap by tap), over
output ranges computed at compile time so the inner loop needs no bounds checks.
conv2d_grad_weight is a GEMM per group, dW_g = dy_g @ im2col(x)_g^T, whose K axis runs over
(image, output position). max_pool2d_grad scans each window for its first maximum (NaN
counts as the maximum, as numpy's argmax) and adds dy there. one_hot and scatter_add check
their indices first (the call raises on one out of range), then write. dropout_seeded draws
numpy's exact random stream (rng.py), so its mask is the reference's.
"""

from __future__ import annotations

import math

from llvmlite import ir as llir

from ir.ops.shape_rules import axis as norm_axis

from .builder import I1, I32, I64, KBuilder, const, vec_type
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
from .kernel import Kernel
from .loops import prod, vector_loop
from .nn import check_indices
from .pool import pool_window
from .registry import lowering
from .window import Window, pad_phase


def _index(b, idx, i, n: int):
    """idx[i] as i64, negative values counted from the end (already range-checked)."""
    t = b.vload(idx.ptr, i, idx.elem)
    t = t if idx.dtype == "i64" else b.sext(t, b.i64(0).type)
    return b.select(b.icmp_signed("<", t, b.i64(0)), b.add(t, b.i64(n)), t)


@lowering("one_hot")
def lower_one_hot(k: Kernel) -> None:
    idx, out = k.inputs[0], k.outputs[0]
    depth = k.attrs["depth"]
    a = norm_axis(k.attrs["axis"], len(idx.shape) + 1)
    pre, post = prod(idx.shape[:a]), prod(idx.shape[a:])
    if out.size == 0:
        return
    check_indices(k, idx, -depth, depth, "one_hot index out of range [{lo}, {hi})")
    el = out.elem

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="item") as item:
            p, d = b.udiv(item, b.i64(depth)), b.urem(item, b.i64(depth))
            with b.loop(0, post, name="q") as q:
                t = _index(b, idx, b.add(b.mul(p, b.i64(post)), q), depth)
                hot = b.icmp_signed("==", t, d)
                b.vstore(b.select(hot, const(el, 1), const(el, 0)), out.ptr,
                         b.add(b.mul(item, b.i64(post)), q))

    k.phase(pre * depth, body, bufs=[idx, out], cost=out.size)


@lowering("scatter_add")
def lower_scatter_add(k: Kernel) -> None:
    upd, idx = k.inputs
    out = k.outputs[0]
    size = k.attrs["size"]
    a = norm_axis(k.attrs["axis"], len(upd.shape) - len(idx.shape) + 1)
    pre, m = prod(out.shape[:a]), idx.size
    q = prod(out.shape[a + 1:])
    if out.size == 0:
        return
    check_indices(k, idx, -size, size, "scatter_add index out of range [{lo}, {hi})")
    el, lanes = upd.elem, k.lanes(upd.dtype)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="p") as p:
            obase = b.mul(p, b.i64(size * q))
            vector_loop(b, b.i64(0), b.i64(size * q), lanes, lambda j, w: b.vstore(
                const(vec_type(el, w), 0), out.ptr, b.add(obase, j)))
            with b.loop(0, m, name="i") as i:  # in index order, as np.add.at
                dst = b.add(obase, b.mul(_index(b, idx, i, size), b.i64(q)))
                src = b.mul(b.add(b.mul(p, b.i64(m)), i), b.i64(q))

                def step(j, w):
                    s = b.fadd(b.vload(out.ptr, b.add(dst, j), el, w),
                               b.vload(upd.ptr, b.add(src, j), el, w))
                    b.vstore(s, out.ptr, b.add(dst, j))

                vector_loop(b, b.i64(0), b.i64(q), lanes, step)

    k.phase(pre, body, bufs=[upd, idx, out], cost=upd.size + out.size)


# ---- conv2d_grad_input ------------------------------------------------------------------------
@lowering("conv2d_grad_input")
def lower_conv2d_grad_input(k: Kernel) -> None:
    dy, w = k.inputs
    dx = k.outputs[0]
    a = k.attrs
    n, c, h, wd = a["shape"]
    o, cg, kh, kw = w.shape
    groups, (oh, ow) = a["groups"], dy.shape[2:]
    og, kk, p = o // groups, cg * kh * kw, oh * ow
    if dx.size == 0:
        return
    blk = blocking(k.cg.target, dy.dtype)
    mpad = -(-kk // blk.mr) * blk.mr
    cols = k.new_scratch(dy.dtype, n * groups * kk * p)
    if og * p:
        if k.is_weight(1):
            packed = k.weight_constant("packed_wt", packed_weight, 1, (groups, og, kk),
                                       (0, 2, 1), "a", blk.mr)
        else:
            packed = k.new_scratch(w.dtype, groups * mpad * og)
            pack_a_phase(k, w, packed, groups, kk, og, index=lambda b, bi, row, x: b.add(
                b.mul(b.add(b.mul(bi, b.i64(og)), x), b.i64(kk)), row))
        g = Gemm(n * groups, kk, p, og, packed, cols, p,
                 a_off=lambda b, bi: b.mul(b.urem(bi, b.i64(groups)), b.i64(mpad * og)),
                 c_off=lambda b, bi: b.mul(bi, b.i64(kk * p)))

        def pack(b, bi, pc, kc, col0, ncols, dst):
            src = b.at(dy.ptr, b.mul(bi, b.i64(og * p)), dy.elem)
            pack_b_rows(b, blk, src, p, p, pc, kc, col0, ncols, dst, dy.elem)

        g.pack_b = pack
        gemm_phase(k, g, dy.dtype, scratch_for_b(k, dy.dtype, p))
    _col2im(k, cols, dx, (n, c, h, wd), (kh, kw), (oh, ow), groups, og * p == 0)


def _col2im(k, cols, dx, shape, kernel, out_hw, groups, empty: bool) -> None:
    n, c, h, wd = shape
    kh, kw = kernel
    oh, ow = out_hw
    (sh, sw), (dh, dw), pad = k.attrs["stride"], k.attrs["dilation"], k.attrs["pad"]
    cg = c // groups
    el, lanes = dx.elem, k.lanes(dx.dtype)

    def valid(size, out, s, lo, d, t):
        """Output positions o with 0 <= o*s - lo + t*d < size."""
        first = max(0, -(-(lo - t * d) // s))
        last = min(out - 1, (size - 1 + lo - t * d) // s)
        return first, last + 1

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="plane") as plane:
            img, ci = b.udiv(plane, b.i64(c)), b.urem(plane, b.i64(c))
            g, cl = b.udiv(ci, b.i64(cg)), b.urem(ci, b.i64(cg))
            bi = b.add(b.mul(img, b.i64(groups)), g)
            d0 = b.at(dx.ptr, b.mul(plane, b.i64(h * wd)), el)
            vector_loop(b, b.i64(0), b.i64(h * wd), lanes,
                        lambda j, w: b.vstore(const(vec_type(el, w), 0), d0, j))
            for i in range(0 if empty else kh):  # no columns: the gradient is zero
                y0, y1 = valid(h, oh, sh, pad[0], dh, i)
                for j in range(kw):
                    x0, x1 = valid(wd, ow, sw, pad[1], dw, j)
                    if y0 >= y1 or x0 >= x1:
                        continue
                    krow = b.add(b.mul(cl, b.i64(kh * kw)), b.i64(i * kw + j))
                    src = b.at(cols.ptr, b.mul(b.add(b.mul(bi, b.i64(cg * kh * kw)), krow),
                                               b.i64(oh * ow)), el)
                    _accumulate(b, d0, src, (y0, y1), (x0, x1), (sh, sw),
                                (i * dh - pad[0], j * dw - pad[1]), wd, ow, el, lanes)

    k.phase(n * c, body, bufs=[cols, dx], cost=dx.size * kh * kw)


def _accumulate(b, dst, src, rows, cols_, stride, offset, wd, ow, el, lanes):
    """dst[y*sh + oy, x*sw + ox] += src[y, x] over the given output ranges."""
    (sh, sw), (oy, ox) = stride, offset
    with b.loop(rows[0], rows[1], name="oy", unroll=False) as y:
        drow = b.add(b.mul(b.add(b.mul(y, b.i64(sh)), b.i64(oy)), b.i64(wd)), b.i64(ox))
        srow = b.mul(y, b.i64(ow))

        def step(x, w):
            at = b.add(drow, b.mul(x, b.i64(sw)))
            s = b.fadd(b.vload(dst, at, el, w), b.vload(src, b.add(srow, x), el, w))
            b.vstore(s, dst, at)

        vector_loop(b, b.i64(cols_[0]), b.i64(cols_[1]), lanes if sw == 1 else 1, step)


# ---- conv2d_grad_weight -----------------------------------------------------------------------
@lowering("conv2d_grad_weight")
def lower_conv2d_grad_weight(k: Kernel) -> None:
    x, dy = k.inputs
    dw = k.outputs[0]
    a = k.attrs
    n, c, h, wd = x.shape
    o, (oh, ow) = dy.shape[1], dy.shape[2:]
    kh, kw = a["kernel"]
    groups = a["groups"]
    cg, og, p = c // groups, o // groups, oh * ow
    kk, ncol = n * p, cg * kh * kw
    if dw.size == 0:
        return
    if kk == 0:
        return map_kernel(k, lambda b, xs: const(dw.elem, 0), ins=[], out=dw)
    (sh, sw), (dh, ddw) = a["stride"], a["dilation"]
    win = Window(n, c, h, wd, kh, kw, sh, sw, dh, ddw, tuple(a["pad"]), oh, ow)
    src = pad_phase(k, x, win, 0.0)
    blk = blocking(k.cg.target, x.dtype)
    mpad = -(-og // blk.mr) * blk.mr
    packed = k.new_scratch(dy.dtype, groups * mpad * kk)
    pack_a_phase(k, dy, packed, groups, og, kk, index=lambda b, bi, row, t: b.add(
        b.mul(b.add(b.mul(b.udiv(t, b.i64(p)), b.i64(o)), b.add(b.mul(bi, b.i64(og)), row)),
              b.i64(p)), b.urem(t, b.i64(p))))
    g = Gemm(groups, og, ncol, kk, packed, dw, ncol,
             a_off=lambda b, bi: b.mul(bi, b.i64(mpad * kk)),
             c_off=lambda b, bi: b.mul(bi, b.i64(og * ncol)))
    el, L = x.elem, blk.lanes
    vi = vec_type(I32, L)
    hw = win.hp * win.wp

    def pack(b, bi, pc, kc, col0, ncols, dst):
        """Rows: (image, output position); columns: (channel, kh, kw) of group bi."""
        with b.loop(0, b.ceil_div(ncols, blk.nr), name="jp") as jp:
            col = b.add(col0, b.mul(jp, b.i64(blk.nr)))
            panel = b.at(dst, b.mul(jp, b.mul(kc, b.i64(blk.nr))), el)
            coffs, oks = [], []
            for v in range(blk.nv):
                q = b.add(b.splat(b.trunc(col, I32), L),
                          llir.Constant(vi, list(range(v * L, v * L + L))))
                ok = b.icmp_signed("<", q, const(vi, ncol))
                q = b.select(ok, q, const(vi, 0))
                ch, tap = b.udiv(q, const(vi, kh * kw)), b.urem(q, const(vi, kh * kw))
                i, j = b.udiv(tap, const(vi, kw)), b.urem(tap, const(vi, kw))
                coffs.append(b.add(b.mul(ch, const(vi, hw)), b.add(
                    b.mul(i, const(vi, dh * win.wp)), b.mul(j, const(vi, ddw)))))
                oks.append(ok)
            with b.loop(0, kc, name="kk") as t:
                row = b.add(pc, t)
                img, pos = b.udiv(row, b.i64(p)), b.urem(row, b.i64(p))
                y, xx = b.udiv(pos, b.i64(ow)), b.urem(pos, b.i64(ow))
                base = b.add(b.mul(b.add(b.mul(img, b.i64(c)), b.mul(bi, b.i64(cg))),
                                   b.i64(hw)),
                             b.add(b.mul(y, b.i64(sh * win.wp)), b.mul(xx, b.i64(sw))))
                rbase = b.at(src.ptr, base, el)
                for v in range(blk.nv):
                    val = b.gather(rbase, coffs[v], el, oks[v])
                    b.vstore(val, panel, b.add(b.mul(t, b.i64(blk.nr)), b.i64(v * L)))

    g.pack_b = pack
    gemm_phase(k, g, x.dtype, scratch_for_b(k, x.dtype, ncol))


# ---- max_pool2d_grad --------------------------------------------------------------------------
@lowering("max_pool2d_grad")
def lower_max_pool2d_grad(k: Kernel) -> None:
    x, dy = k.inputs
    dx = k.outputs[0]
    if dx.size == 0:
        return
    win, _ = pool_window(k, out_shape=dy.shape)
    src = pad_phase(k, x, win, -math.inf)
    el, lanes = x.elem, k.lanes(x.dtype)
    top, left = win.pad[0], win.pad[1]

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="plane") as plane:
            d0 = b.at(dx.ptr, b.mul(plane, b.i64(win.h * win.w)), el)
            s0 = b.at(src.ptr, b.mul(plane, b.i64(win.hp * win.wp)), el)
            g0 = b.at(dy.ptr, b.mul(plane, b.i64(win.oh * win.ow)), el)
            vector_loop(b, b.i64(0), b.i64(win.h * win.w), lanes,
                        lambda j, w: b.vstore(const(vec_type(el, w), 0), d0, j))
            with b.loop(0, win.oh, name="oh") as y, b.loop(0, win.ow, name="ow") as xx:
                best = b.var(el, const(el, -math.inf), "best")
                at = b.var(I64, b.i64(-1), "at")
                for i in range(win.kh):
                    for j in range(win.kw):
                        r = b.add(b.mul(y, b.i64(win.sh)), b.i64(i * win.dh))
                        cc = b.add(b.mul(xx, b.i64(win.sw)), b.i64(j * win.dw))
                        v = b.vload(s0, b.add(b.mul(r, b.i64(win.wp)), cc), el)
                        cur = b.load(best, typ=el)
                        first = b.icmp_signed("<", b.load(at, typ=I64), b.i64(0))
                        nan_wins = b.and_(b.fcmp("uno", v, v), b.fcmp("ord", cur, cur))
                        take = b.or_(b.or_(first, b.fcmp(">", v, cur)), nan_wins)
                        with b.if_then(take):
                            b.store(v, best)
                            pos = b.add(b.mul(b.sub(r, b.i64(top)), b.i64(win.w)),
                                        b.sub(cc, b.i64(left)))
                            inside = _inside(b, r, cc, top, left, win)
                            b.store(b.select(inside, pos, b.i64(-2)), at)
                pos = b.load(at, typ=I64)
                with b.if_then(b.icmp_signed(">=", pos, b.i64(0))):
                    g = b.vload(g0, b.add(b.mul(y, b.i64(win.ow)), xx), el)
                    b.vstore(b.fadd(b.vload(d0, pos, el), g), d0, pos)

    k.phase(win.n * win.c, body, bufs=[src, dy, dx], cost=dy.size * win.kh * win.kw)


def _inside(b, r, c, top, left, win) -> llir.Value:
    ok = llir.Constant(I1, 1)
    for v, lo, n in ((r, top, win.h), (c, left, win.w)):
        ok = b.and_(ok, b.icmp_signed(">=", v, b.i64(lo)))
        ok = b.and_(ok, b.icmp_signed("<", v, b.i64(lo + n)))
    return ok
