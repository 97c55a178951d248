"""linear and matmul through the GEMM engine (gemm.py).

linear: C[M, N] = x[M, K] @ W[N, K].T + bias, M = all leading axes of x. W, a weight, is
packed into NR-column panels at compile time; x is packed into MR-row panels by a phase.
matmul: numpy semantics (batch axes broadcast, 1-D operands promoted then squeezed); each
operand is packed per batch entry of its own, and broadcasting only changes offsets.
"""

from __future__ import annotations

import numpy as np

from .builder import KBuilder, const
from .elementwise import map_kernel
from .gemm import (
    Epilogue,
    Gemm,
    blocking,
    gemm_phase,
    pack_a_phase,
    pack_b_rows,
    packed_weight,
    scratch_for_b,
)
from .kernel import Buf, Kernel
from .loops import broadcast_strides, offsets, prod
from .registry import lowering


def epilogue_of(k: Kernel, bias: str | None, residual: bool = False) -> Epilogue:
    """The fused activation of a node (fused ops carry act/alpha attributes)."""
    act = k.attrs.get("act")
    if act in (None, "", "none"):
        return Epilogue(bias, residual)
    attrs = {"alpha": k.attrs["alpha"]} if act in ("leaky_relu", "elu") else {}
    return Epilogue(bias, residual, act, tuple(sorted(attrs.items())))


def packed_a(k: Kernel, x: Buf, batch: int, m: int, kk: int) -> Buf:
    """x's rows in MR-row panels: at compile time for a weight, else by a packing phase."""
    blk = blocking(k.cg.target, x.dtype)
    idx = k.inputs.index(x)
    if k.is_weight(idx):
        return k.weight_constant("packed_a", packed_weight, idx, (batch, m, kk), None, "a",
                                 blk.mr)
    dst = k.new_scratch(x.dtype, batch * -(-m // blk.mr) * blk.mr * kk)
    pack_a_phase(k, x, dst, batch, m, kk)
    return dst


def fill_bias(k: Kernel, out: Buf, bias: Buf | None) -> None:
    """K == 0: the product is empty, the result is the bias (or zeros)."""
    if bias is None:
        map_kernel(k, lambda b, xs: const(out.elem, 0), ins=[], out=out)
    else:
        map_kernel(k, lambda b, xs: xs[0], ins=[bias], out=out)


@lowering("linear")
def lower_linear(k: Kernel) -> None:
    x, w = k.inputs[:2]
    bias = k.inputs[2] if len(k.inputs) > 2 else None
    linear(k, x, w, bias, k.outputs[0], resid=None)


def linear(k: Kernel, x: Buf, w: Buf, bias: Buf | None, out: Buf, resid: Buf | None) -> None:
    n, kk = w.shape
    m = prod(x.shape[:-1])
    if out.size == 0:
        return
    if kk == 0:
        return fill_bias(k, out, bias)
    blk = blocking(k.cg.target, x.dtype)
    a = packed_a(k, x, 1, m, kk)
    g = Gemm(1, m, n, kk, a, out, n, bias=bias, resid=resid,
             epi=epilogue_of(k, "col" if bias is not None else None, resid is not None))
    if k.is_weight(k.inputs.index(w)):
        g.b_packed = k.weight_constant("packed_w", packed_weight, k.inputs.index(w), (n, kk),
                                       (1, 0), "b", blk.nr)
        gemm_phase(k, g, x.dtype)
    else:
        scratch = scratch_for_b(k, x.dtype, n)
        g.pack_b = _transposed_packer(k, w, blk)
        gemm_phase(k, g, x.dtype, scratch)


def _transposed_packer(k: Kernel, w: Buf, blk):
    """Pack B = W.T from a runtime W [N, K] (rare: weights are normally constants)."""
    _n, kk = w.shape
    el = w.elem

    def pack(b: KBuilder, bi, pc, kc, col0, ncols, dst):
        with b.loop(0, ncols, name="j") as j:
            col = b.add(col0, j)
            panel = b.at(dst, b.mul(b.udiv(j, b.i64(blk.nr)), b.mul(kc, b.i64(blk.nr))), el)
            lane = b.urem(j, b.i64(blk.nr))
            with b.loop(0, kc, name="kk") as t:
                x = b.vload(w.ptr, b.add(b.mul(col, b.i64(kk)), b.add(pc, t)), el)
                b.vstore(x, panel, b.add(b.mul(t, b.i64(blk.nr)), lane))
        # zero the padding columns of the last panel
        tail = b.urem(ncols, b.i64(blk.nr))
        with b.if_then(b.icmp_signed("!=", tail, b.i64(0))):
            last = b.at(dst, b.mul(b.udiv(ncols, b.i64(blk.nr)), b.mul(kc, b.i64(blk.nr))), el)
            with b.loop(0, kc, name="kz") as t, b.loop(tail, blk.nr, name="z") as z:
                b.vstore(const(el, 0), last, b.add(b.mul(t, b.i64(blk.nr)), z))

    return pack


@lowering("matmul")
def lower_matmul(k: Kernel) -> None:
    a, bm = k.inputs
    out = k.outputs[0]
    a_shape = (1, *a.shape) if len(a.shape) == 1 else a.shape
    b_shape = (*bm.shape, 1) if len(bm.shape) == 1 else bm.shape
    m, kk = a_shape[-2:]
    n = b_shape[-1]
    batch_shape = tuple(np.broadcast_shapes(a_shape[:-2], b_shape[:-2]))
    batch = prod(batch_shape)
    if out.size == 0:
        return
    if kk == 0:
        return fill_bias(k, out, None)
    blk = blocking(k.cg.target, a.dtype)
    a_batch, b_batch = prod(a_shape[:-2]), prod(b_shape[:-2])
    sa = broadcast_strides(a_shape[:-2], batch_shape)
    sb = broadcast_strides(b_shape[:-2], batch_shape)
    panels_a = -(-m // blk.mr) * blk.mr * kk

    def a_off(b, bi):
        return b.mul(offsets(b, bi, batch_shape, [sa])[0], b.i64(panels_a))

    def b_index(b, bi):
        return offsets(b, bi, batch_shape, [sb])[0]

    packed = packed_a(k, a, a_batch, m, kk)
    g = Gemm(batch, m, n, kk, packed, out, n, a_off=a_off,
             c_off=lambda b, bi: b.mul(bi, b.i64(m * n)))
    if k.is_weight(1):
        g.b_packed = k.weight_constant("packed_b", packed_weight, 1, (b_batch, kk, n), None,
                                       "b", blk.nr)
        per = -(-n // blk.nr) * blk.nr * kk
        g.b_off = lambda b, bi: b.mul(b_index(b, bi), b.i64(per))
        gemm_phase(k, g, a.dtype)
        return
    scratch = scratch_for_b(k, a.dtype, n)

    def pack(b, bi, pc, kc, col0, ncols, dst):
        src = b.at(bm.ptr, b.mul(b_index(b, bi), b.i64(kk * n)), bm.elem)
        pack_b_rows(b, blk, src, n, n, pc, kc, col0, ncols, dst, bm.elem)

    g.pack_b = pack
    gemm_phase(k, g, a.dtype, scratch)
