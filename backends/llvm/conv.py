"""conv2d (and fused_conv2d: act(conv + bias + residual)).

Three strategies, chosen from the shapes:
- depthwise (groups == C == O): direct; each output row of a plane is a vector loop over
  output columns, the KH*KW taps are FMAs with splatted weights, and the epilogue (bias,
  residual, activation) is applied before the store;
- pointwise (1x1, stride 1, no padding): a GEMM whose B is the input itself, [C, H*W];
- general: a GEMM per (image, group), C[Og, OH*OW] = W[Og, Cg*KH*KW] @ im2col(x). The
  input is first copied with a zero border (pad_phase) so that im2col needs no bounds
  checks; the packing of each KC x NC block of im2col happens inside the work item that
  uses it (per-thread scratch), with gathers over precomputed per-column offsets.
Weights (A) are packed at compile time.
"""

from __future__ import annotations

from llvmlite import ir as llir

from .builder import I32, KBuilder, const, vec_type
from .elementwise import map_kernel
from .emit import emit
from .gemm import Gemm, blocking, gemm_phase, pack_a, pack_a_phase, pack_b_rows, scratch_for_b
from .kernel import Buf, Kernel
from .linalg import epilogue_of, fill_bias
from .registry import lowering
from .window import Window, pad_phase, window_rows


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
    o, cg, kh, kw = w.shape
    og, p, kk = o // groups, win.oh * win.ow, cg * kh * kw
    blk = blocking(k.cg.target, x.dtype)
    mpad = -(-og // blk.mr) * blk.mr
    if k.is_weight(1):
        a = k.constant(pack_a(k.weight_data(1).reshape(groups, og, kk), blk.mr), "packed_w")
    else:
        a = k.new_scratch(w.dtype, groups * mpad * kk)
        pack_a_phase(k, w, a, groups, og, kk)
    pointwise = (kh, kw, win.sh, win.sw) == (1, 1, 1, 1) and not win.padded
    src = x if pointwise else pad_phase(k, x, win, 0.0)
    g = Gemm(win.n * groups, og, p, kk, a, out, p,
             a_off=lambda b, bi: b.mul(b.urem(bi, b.i64(groups)), b.i64(mpad * kk)),
             c_off=lambda b, bi: b.mul(bi, b.i64(og * p)),
             bias=bias, bias_off=lambda b, bi: b.mul(b.urem(bi, b.i64(groups)), b.i64(og)),
             resid=resid, epi=epilogue_of(k, "row" if bias is not None else None,
                                          resid is not None))
    plane = cg * win.hp * win.wp
    el = x.elem

    def pack(b: KBuilder, bi, pc, kc, col0, ncols, dst):
        base = b.at(src.ptr, b.mul(bi, b.i64(plane)), el)
        if pointwise:
            pack_b_rows(b, blk, base, p, p, pc, kc, col0, ncols, dst, el)
        else:
            _im2col(b, blk, win, cg, base, pc, kc, col0, ncols, dst, el)

    g.pack_b = pack
    scratch = scratch_for_b(k, x.dtype, p)
    gemm_phase(k, g, x.dtype, scratch)


def _im2col(b, blk, win: Window, cg: int, base, pc, kc, col0, ncols, dst, el) -> None:
    """Pack rows [pc, pc+kc) x columns [col0, col0+ncols) of im2col(padded x) into NR-column
    panels: per column a base offset (oh*sh*Wp + ow*sw), per row an offset for (c, kh, kw);
    columns past OH*OW gather nothing and hold 0."""
    L, p = blk.lanes, win.oh * win.ow
    vi = vec_type(I32, L)
    taps = win.kh * win.kw
    with b.loop(0, b.ceil_div(ncols, blk.nr), name="jp") as jp:
        col = b.add(col0, b.mul(jp, b.i64(blk.nr)))
        panel = b.at(dst, b.mul(jp, b.mul(kc, b.i64(blk.nr))), el)
        bases, valid = [], []
        for v in range(blk.nv):
            q = b.add(b.splat(b.trunc(col, I32), L), _iota(vi, v * L))
            ok = b.icmp_signed("<", q, const(vi, p))
            q = b.select(ok, q, const(vi, 0))
            oh, ow = b.udiv(q, const(vi, win.ow)), b.urem(q, const(vi, win.ow))
            bases.append(b.add(b.mul(oh, const(vi, win.sh * win.wp)),
                               b.mul(ow, const(vi, win.sw))))
            valid.append(ok)
        with b.loop(0, kc, name="kk") as kk:
            krow = b.add(pc, kk)
            ci, tap = b.udiv(krow, b.i64(taps)), b.urem(krow, b.i64(taps))
            i, j = b.udiv(tap, b.i64(win.kw)), b.urem(tap, b.i64(win.kw))
            koff = b.add(b.mul(ci, b.i64(win.hp * win.wp)),
                         b.add(b.mul(i, b.i64(win.dh * win.wp)), b.mul(j, b.i64(win.dw))))
            koff = b.splat(b.trunc(koff, I32), L)
            for v in range(blk.nv):
                val = b.gather(base, b.add(bases[v], koff), el, valid[v])
                b.vstore(val, panel, b.add(b.mul(kk, b.i64(blk.nr)), b.i64(v * L)))


def _iota(vt, first: int):
    return llir.Constant(vt, list(range(first, first + vt.count)))


def depthwise(k, x, w, bias, resid, out, win: Window) -> None:
    """y[n,c] = act(sum_taps w[c,tap] * x[n,c,window] + bias[c] + resid[n,c])."""
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
        if bias is not None:
            c = b.urem(plane, b.i64(win.c))
            acc = b.fadd(acc, b.splat(b.vload(bias.ptr, c, el), width))
        if resid is not None:
            acc = b.fadd(acc, b.vload(resid.ptr, at, el, width))
        if epi.act:
            acc = emit(b, epi.act, [acc], dtype, dict(epi.act_attrs))
        b.vstore(acc, out.ptr, at)

    bufs = [src, w, out] + [t for t in (bias, resid) if t is not None]
    window_rows(k, win, src, k.lanes(dtype), tap, finish, bufs,
                cost=2.0 * out.size * taps)
