"""reduce_sum, reduce_mean, reduce_max, reduce_min over any set of axes.

The input's axes are collapsed into alternating runs of kept and reduced axes. When the
innermost run is reduced, each output element is a vector reduction over that contiguous
run (lane-wise partials, a fixed shuffle tree), nested inside loops over the outer reduced
runs. When the innermost run is kept, vectors of consecutive outputs accumulate element-
wise over all reduced positions. Max and min use llvm.maximum/minimum: NaN propagates as in
numpy. Work items are output elements (or output vectors): independent, so threads do not
change the summation order.
"""

from __future__ import annotations

import math

from ir.ops.shape_rules import axes as norm_axes

from .builder import KBuilder, const, vec_type
from .kernel import Kernel
from .loops import contiguous_strides, nest, prod, vector_loop, vreduce
from .registry import lowering

IDENTITY = {"reduce_sum": 0.0, "reduce_mean": 0.0, "reduce_max": -math.inf,
            "reduce_min": math.inf}


def combiner(op: str, b: KBuilder):
    if op in ("reduce_max", "reduce_min"):
        name = "maximum" if op == "reduce_max" else "minimum"
        return lambda x, y: b.intrinsic(name, [x, y])
    return b.fadd


def runs(shape, reduced: set[int]):
    """[(size, stride, is_reduced)] with neighbouring axes of one kind merged."""
    out = []
    for d, (n, s) in enumerate(zip(shape, contiguous_strides(shape))):
        if n == 1:
            continue
        red = d in reduced
        if out and out[-1][2] == red:
            out[-1] = (out[-1][0] * n, s, red)
        else:
            out.append((n, s, red))
    return out


@lowering("reduce_sum", "reduce_mean", "reduce_max", "reduce_min")
def lower_reduce(k: Kernel) -> None:
    x, out = k.inputs[0], k.outputs[0]
    op = k.node.op
    axes = k.attrs["axes"]
    reduced = set(norm_axes(axes, len(x.shape)) if axes else range(len(x.shape)))
    count = prod([x.shape[d] for d in reduced])
    rs = runs(x.shape, reduced)
    kept = [(n, s) for n, s, r in rs if not r]
    red = [(n, s) for n, s, r in rs if r]
    el, lanes = x.elem, k.lanes(x.dtype)
    combine_of = lambda b: combiner(op, b)
    if out.size == 0:
        return

    def finish(b, v):
        return b.fdiv(v, const(v.type, count)) if op == "reduce_mean" else v

    if rs and rs[-1][2]:  # innermost run reduced: a vector reduction per output element
        inner = red.pop()[0]

        def body(b: KBuilder, lo, hi, worker):
            combine = combine_of(b)
            with b.loop(lo, hi, name="o") as o:
                base = _offset(b, o, kept)
                acc = b.var(el, const(el, IDENTITY[op]), "acc")

                def run(offs):
                    v = vreduce(b, b.i64(0), b.i64(inner), lanes, el, IDENTITY[op],
                                lambda i, w: b.vload(x.ptr, b.add(offs[0], i), el, w), combine)
                    b.store(combine(b.load(acc, typ=el), v), acc)

                nest(b, [n for n, _ in red], [[s for _, s in red]], [base], run)
                b.vstore(finish(b, b.load(acc, typ=el)), out.ptr, o)

        k.phase(out.size, body, cost=x.size)
        return

    inner = kept.pop()[0] if kept else 1  # innermost run kept: vectors of outputs

    def body(b: KBuilder, lo, hi, worker):
        combine = combine_of(b)
        with b.loop(lo, hi, name="o") as o:
            base = _offset(b, o, kept)
            obase = b.mul(o, b.i64(inner))

            def step(j, width):
                vt = vec_type(el, width)
                acc = b.var(vt, const(vt, IDENTITY[op]), "acc")

                def add(offs):
                    v = b.vload(x.ptr, b.add(offs[0], j), el, width)
                    b.store(combine(b.load(acc, typ=vt), v), acc)

                nest(b, [n for n, _ in red], [[s for _, s in red]], [base], add)
                b.vstore(finish(b, b.load(acc, typ=vt)), out.ptr, b.add(obase, j))

            vector_loop(b, b.i64(0), b.i64(inner), lanes, step)

    k.phase(max(1, out.size // inner), body, cost=x.size)


def _offset(b: KBuilder, o, kept):
    """Input offset of the output index `o` over the kept runs (outermost first)."""
    off, rem = b.i64(0), o
    for i, (n, s) in enumerate(reversed(kept)):
        last = i == len(kept) - 1
        idx = rem if last else b.urem(rem, b.i64(n))
        if not last:
            rem = b.udiv(rem, b.i64(n))
        off = b.add(off, b.mul(idx, b.i64(s)))
    return off
