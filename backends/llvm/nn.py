"""batch_norm, layer_norm, softmax, log_softmax and gather.

batch_norm: one work item per (image, channel) plane: scale = w / sqrt(var + eps) is
computed once, then a vector loop (x - mean) * scale + b, the reference's operation order.
In training mode a first phase computes per-channel batch mean and (biased) variance, both
about a shift (the channel's first element) so inputs with a large common offset lose nothing.
layer_norm: one item per row; mean and variance (about the row's first element, likewise) are
vector reductions, then one vector pass.
softmax/log_softmax over an axis with inner extent 1: vector reductions along the row (max,
then sum of exp); otherwise vectors run across the inner extent and loops over the axis.
gather: a serial check phase refuses out-of-range indices at run time (the call raises),
then rows are copied with vector loops.
"""

from __future__ import annotations

from ir.ops.shape_rules import axis as norm_axis

from . import vmath
from .builder import KBuilder, const, vec_type
from .kernel import Buf, Kernel
from .loops import prod, vector_loop, vreduce
from .registry import lowering
from .shape import copy_phase


def _fmax(b):
    return lambda x, y: b.intrinsic("maximum", [x, y])


# ---- batch_norm ---------------------------------------------------------------------------------
@lowering("batch_norm")
def lower_batch_norm(k: Kernel) -> None:
    x, w, bias, mean, var = k.inputs
    out = k.outputs[0]
    n, c = x.shape[:2]
    size = prod(x.shape[2:])
    if out.size == 0:
        return
    shift = None
    if k.attrs["training"]:
        shift, mean, var = _batch_stats(k, x)
    el, lanes, eps = x.elem, k.lanes(x.dtype), k.attrs["eps"]

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="plane") as p:
            ch = b.urem(p, b.i64(c))
            sd = b.intrinsic("sqrt", [b.fadd(b.vload(var.ptr, ch, el), const(el, eps))])
            scale = b.fdiv(b.vload(w.ptr, ch, el), sd)
            m, s0 = b.vload(mean.ptr, ch, el), b.vload(bias.ptr, ch, el)
            x0 = b.vload(shift.ptr, ch, el) if shift is not None else None
            start = b.mul(p, b.i64(size))

            def step(i, width):
                xv = b.vload(x.ptr, b.add(start, i), el, width)
                if x0 is not None:  # batch statistics are about the shift
                    xv = b.fsub(xv, b.splat(x0, width))
                y = b.fmul(b.fsub(xv, b.splat(m, width)), b.splat(scale, width))
                b.vstore(b.fadd(y, b.splat(s0, width)), out.ptr, b.add(start, i))

            vector_loop(b, b.i64(0), b.i64(size), lanes, step)

    bufs = [x, w, bias, mean, var, out, *([shift] if shift is not None else [])]
    k.phase(n * c, body, bufs=bufs, cost=2 * out.size)


def _batch_stats(k: Kernel, x: Buf) -> tuple[Buf, Buf, Buf]:
    """Per channel: a shift (the channel's first element), the mean of x - shift and the
    biased variance, in two passes over (N, spatial). Centring about the shift keeps values
    with a large common offset exact (see ir.ops.nn.centered)."""
    n, c = x.shape[:2]
    size = prod(x.shape[2:])
    shift = k.new_scratch(x.dtype, c)
    mean, var = k.new_scratch(x.dtype, c), k.new_scratch(x.dtype, c)
    el, lanes, count = x.elem, k.lanes(x.dtype), n * size

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="ch") as ch:
            x0 = b.vload(x.ptr, b.mul(ch, b.i64(size)), el)
            b.vstore(x0, shift.ptr, ch)

            def average(f):
                acc = b.var(el, const(el, 0), "tot")
                with b.loop(0, n, name="img") as img:
                    start = b.mul(b.add(b.mul(img, b.i64(c)), ch), b.i64(size))
                    s = vreduce(b, b.i64(0), b.i64(size), lanes, el, 0.0,
                                lambda i, w: f(b.vload(x.ptr, b.add(start, i), el, w), w),
                                b.fadd)
                    b.store(b.fadd(b.load(acc, typ=el), s), acc)
                return b.fdiv(b.load(acc, typ=el), const(el, count))

            m = average(lambda v, w: b.fsub(v, b.splat(x0, w)))
            b.vstore(m, mean.ptr, ch)

            def square(v, w):
                d = b.fsub(b.fsub(v, b.splat(x0, w)), b.splat(m, w))
                return b.fmul(d, d)

            b.vstore(average(square), var.ptr, ch)

    k.phase(c, body, bufs=[x, shift, mean, var], cost=3 * x.size)
    return shift, mean, var


# ---- layer_norm ---------------------------------------------------------------------------------
@lowering("layer_norm")
def lower_layer_norm(k: Kernel) -> None:
    x, out = k.inputs[0], k.outputs[0]
    w = k.inputs[1] if len(k.inputs) > 1 else None
    bias = k.inputs[2] if len(k.inputs) > 2 else None
    a = norm_axis(k.attrs["axis"], len(x.shape), "layer_norm axis")
    rows, d = prod(x.shape[:a]), prod(x.shape[a:])
    el, lanes, eps = x.elem, k.lanes(x.dtype), k.attrs["eps"]
    if out.size == 0:
        return

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="row") as r:
            start = b.mul(r, b.i64(d))

            x0 = b.vload(x.ptr, start, el)

            def load(i, width):  # centred about the row's first element: see _batch_stats
                return b.fsub(b.vload(x.ptr, b.add(start, i), el, width), b.splat(x0, width))

            mean = b.fdiv(vreduce(b, b.i64(0), b.i64(d), lanes, el, 0.0, load, b.fadd),
                          const(el, d))

            def dev2(i, width):
                t = b.fsub(load(i, width), b.splat(mean, width))
                return b.fmul(t, t)

            var = b.fdiv(vreduce(b, b.i64(0), b.i64(d), lanes, el, 0.0, dev2, b.fadd),
                         const(el, d))
            sd = b.intrinsic("sqrt", [b.fadd(var, const(el, eps))])

            def step(i, width):
                y = b.fdiv(b.fsub(load(i, width), b.splat(mean, width)), b.splat(sd, width))
                if w is not None:
                    y = b.fmul(y, b.vload(w.ptr, i, el, width))
                if bias is not None:
                    y = b.fadd(y, b.vload(bias.ptr, i, el, width))
                b.vstore(y, out.ptr, b.add(start, i))

            vector_loop(b, b.i64(0), b.i64(d), lanes, step)

    k.phase(rows, body, cost=4 * x.size)


# ---- softmax, log_softmax ----------------------------------------------------------------------
@lowering("softmax", "log_softmax")
def lower_softmax(k: Kernel) -> None:
    x, out = k.inputs[0], k.outputs[0]
    a = norm_axis(k.attrs["axis"], len(x.shape))
    outer, n, inner = prod(x.shape[:a]), x.shape[a], prod(x.shape[a + 1:])
    if out.size == 0:
        return
    log = k.node.op == "log_softmax"
    if inner == 1:
        _softmax_rows(k, x, out, outer, n, log)
    else:
        _softmax_columns(k, x, out, outer, n, inner, log)


def _softmax_rows(k, x, out, rows, n, log):
    el, lanes = x.elem, k.lanes(x.dtype)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="row") as r:
            start = b.mul(r, b.i64(n))

            def load(i, width):
                return b.vload(x.ptr, b.add(start, i), el, width)

            mx = vreduce(b, b.i64(0), b.i64(n), lanes, el, -float("inf"), load, _fmax(b))

            def e(i, width):
                ex = vmath.exp(b, b.fsub(load(i, width), b.splat(mx, width)))
                if not log:  # keep exp(x - max) in the output for the last pass
                    b.vstore(ex, out.ptr, b.add(start, i))
                return ex

            total = vreduce(b, b.i64(0), b.i64(n), lanes, el, 0.0, e, b.fadd)
            lse = vmath.log(b, total) if log else None

            def step(i, width):
                if log:  # (x - max) - log(sum), as the reference: x - (max + log(sum))
                    # loses log(sum) entirely next to a max of 1e30
                    y = b.fsub(b.fsub(load(i, width), b.splat(mx, width)), b.splat(lse, width))
                else:
                    y = b.fdiv(b.vload(out.ptr, b.add(start, i), el, width),
                               b.splat(total, width))
                b.vstore(y, out.ptr, b.add(start, i))

            vector_loop(b, b.i64(0), b.i64(n), lanes, step)

    k.phase(rows, body, cost=25 * x.size)


def _softmax_columns(k, x, out, outer, n, inner, log):
    """Axis with inner extent > 1: vectors across the inner extent, loops along the axis."""
    el, lanes = x.elem, k.lanes(x.dtype)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="o") as o:
            base = b.mul(o, b.i64(n * inner))

            def step(j, width):
                vt = vec_type(el, width)

                def at(i):
                    return b.add(base, b.add(b.mul(i, b.i64(inner)), j))

                mx = b.var(vt, const(vt, -float("inf")), "mx")
                with b.loop(0, n, name="a") as i:
                    b.store(_fmax(b)(b.load(mx, typ=vt), b.vload(x.ptr, at(i), el, width)), mx)
                m = b.load(mx, typ=vt)
                tot = b.var(vt, const(vt, 0), "tot")
                with b.loop(0, n, name="a") as i:
                    ex = vmath.exp(b, b.fsub(b.vload(x.ptr, at(i), el, width), m))
                    if not log:
                        b.vstore(ex, out.ptr, at(i))
                    b.store(b.fadd(b.load(tot, typ=vt), ex), tot)
                total = b.load(tot, typ=vt)
                lse = vmath.log(b, total) if log else None
                with b.loop(0, n, name="a") as i:
                    if log:  # (x - max) - log(sum), as in _softmax_rows
                        y = b.fsub(b.fsub(b.vload(x.ptr, at(i), el, width), m), lse)
                    else:
                        y = b.fdiv(b.vload(out.ptr, at(i), el, width), total)
                    b.vstore(y, out.ptr, at(i))

            vector_loop(b, b.i64(0), b.i64(inner), lanes, step)

    k.phase(outer, body, cost=25 * x.size)


# ---- detach (a copy; the gradient stops in autodiff, not here) --------------------------------
@lowering("detach")
def lower_detach(k: Kernel) -> None:
    x, out = k.inputs[0], k.outputs[0]
    copy_phase(k, [x.size], x, [1], 0, out, [1], 0)


# ---- gather --------------------------------------------------------------------------------------
@lowering("gather")
def lower_gather(k: Kernel) -> None:
    data, idx = k.inputs
    out = k.outputs[0]
    a = norm_axis(k.attrs["axis"], len(data.shape))
    outer, n, inner = prod(data.shape[:a]), data.shape[a], prod(data.shape[a + 1:])
    m = idx.size
    if out.size == 0:
        return
    check_indices(k, idx, -n, n, "gather index out of range [{lo}, {hi})")
    el, lanes = data.elem, k.lanes(data.dtype)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="item") as item:
            o, i = b.udiv(item, b.i64(m)), b.urem(item, b.i64(m))
            t = b.sext(b.vload(idx.ptr, i, idx.elem), b.i64(0).type) \
                if idx.dtype == "i32" else b.vload(idx.ptr, i, idx.elem)
            t = b.select(b.icmp_signed("<", t, b.i64(0)), b.add(t, b.i64(n)), t)
            src = b.add(b.mul(o, b.i64(n * inner)), b.mul(t, b.i64(inner)))
            dst = b.mul(item, b.i64(inner))
            vector_loop(b, b.i64(0), b.i64(inner), lanes, lambda j, w: b.vstore(
                b.vload(data.ptr, b.add(src, j), el, w), out.ptr, b.add(dst, j)))

    k.phase(outer * m, body, bufs=[data, idx, out], cost=out.size)


def check_indices(k: Kernel, idx: Buf, lo: int, hi: int, message: str) -> None:
    """A serial phase that fails (the call raises LaminaError) if any index is outside
    [lo, hi); later phases may then index without bounds checks."""
    from .builder import I32

    def body(b: KBuilder, start, stop, worker):
        bad = b.var(I32, const(I32, 0), "bad")
        with b.loop(0, idx.size, name="i") as i:
            t = b.vload(idx.ptr, i, idx.elem)
            t = b.sext(t, b.i64(0).type) if idx.dtype == "i32" else t
            out = b.or_(b.icmp_signed("<", t, b.i64(lo)), b.icmp_signed(">=", t, b.i64(hi)))
            with b.if_then(out):
                b.store(const(I32, 1), bad)
        return b.load(bad, typ=I32)

    k.phase(1, body, bufs=[idx], parallel=False, error=message.format(lo=lo, hi=hi))
