"""cross_entropy and mse_loss.

cross_entropy: one work item per sample position (n, spatial): max over the classes, then
log-sum-exp, then the loss (class index: -(x_t - max - lse); probabilities:
-sum p_c (x_c - max - lse)), written per position; a serial phase then sums or averages.
Class indices are checked first by a serial phase: out-of-range indices make the call raise,
as the reference does. mse_loss: a broadcasting map for reduction='none', else one vector
reduction of (a - b)^2.
"""

from __future__ import annotations

import math

from . import vmath
from .builder import KBuilder, const
from .elementwise import map_kernel
from .kernel import Buf, Kernel
from .loops import prod, vreduce
from .nn import check_indices
from .registry import lowering


@lowering("cross_entropy")
def lower_cross_entropy(k: Kernel) -> None:
    logits, target = k.inputs
    out = k.outputs[0]
    reduction = k.attrs["reduction"]
    n, c = logits.shape[:2]
    s = prod(logits.shape[2:])
    positions = n * s
    probs = target.dtype in ("f32", "f64")
    if not probs:
        check_indices(k, target, 0, c, "class index out of range [{lo}, {hi})")
    per = out if reduction == "none" else k.new_scratch(logits.dtype, max(positions, 1))
    el = logits.elem

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="pos") as p:
            img, sp = b.udiv(p, b.i64(s)), b.urem(p, b.i64(s))
            base = b.add(b.mul(img, b.i64(c * s)), sp)

            def at(ci):
                return b.add(base, b.mul(ci, b.i64(s)))

            mx = b.var(el, const(el, -math.inf), "mx")
            with b.loop(0, c, name="c") as ci:
                b.store(b.intrinsic("maximum", [b.load(mx, typ=el), b.vload(logits.ptr, at(ci),
                                                                             el)]), mx)
            m = b.load(mx, typ=el)
            tot = b.var(el, const(el, 0), "tot")
            with b.loop(0, c, name="c") as ci:
                e = vmath.exp(b, b.fsub(b.vload(logits.ptr, at(ci), el), m))
                b.store(b.fadd(b.load(tot, typ=el), e), tot)
            lse = vmath.log(b, b.load(tot, typ=el))  # (x - max) - lse, as the reference:
            # x - (max + lse) loses lse next to a max of 1e30
            if probs:
                acc = b.var(el, const(el, 0), "acc")
                with b.loop(0, c, name="c") as ci:
                    logp = b.fsub(b.fsub(b.vload(logits.ptr, at(ci), el), m), lse)
                    t = b.vload(target.ptr, at(ci), el)
                    b.store(b.fadd(b.load(acc, typ=el), b.fmul(t, logp)), acc)
                loss = b.fneg(b.load(acc, typ=el))
            else:
                t = b.vload(target.ptr, p, target.elem)
                t = t if target.dtype == "i64" else b.sext(t, b.i64(0).type)
                loss = b.fneg(b.fsub(b.fsub(b.vload(logits.ptr, at(t), el), m), lse))
            b.vstore(loss, per.ptr, p)

    k.phase(positions, body, bufs=[logits, target, per], cost=30 * logits.size)
    if reduction != "none":
        reduce_to_scalar(k, per, positions, out, reduction == "mean")


def reduce_to_scalar(k: Kernel, src: Buf, count: int, out: Buf, mean: bool) -> None:
    """out = sum(src[:count]) (or the mean), in one serial vector reduction."""
    el, lanes = src.elem, k.lanes(src.dtype)

    def body(b: KBuilder, lo, hi, worker):
        total = vreduce(b, b.i64(0), b.i64(count), lanes, el, 0.0,
                        lambda i, w: b.vload(src.ptr, i, el, w), b.fadd)
        if mean:
            total = b.fdiv(total, const(el, count) if count else const(el, math.nan))
        b.vstore(total, out.ptr, b.i64(0))

    k.phase(1, body, bufs=[src, out], parallel=False, cost=count)


@lowering("mse_loss")
def lower_mse_loss(k: Kernel) -> None:
    a, t = k.inputs
    out = k.outputs[0]
    reduction = k.attrs["reduction"]

    def square(b, xs):
        d = b.fsub(xs[0], xs[1])
        return b.fmul(d, d)

    if reduction == "none":
        map_kernel(k, square)
        return
    el, lanes = a.elem, k.lanes(a.dtype)

    def body(b: KBuilder, lo, hi, worker):
        def load(i, w):
            return square(b, [b.vload(a.ptr, i, el, w), b.vload(t.ptr, i, el, w)])

        total = vreduce(b, b.i64(0), b.i64(a.size), lanes, el, 0.0, load, b.fadd)
        if reduction == "mean":
            total = b.fdiv(total, const(el, a.size) if a.size else const(el, math.nan))
        b.vstore(total, out.ptr, b.i64(0))

    k.phase(1, body, parallel=False, cost=a.size)
