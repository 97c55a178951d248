"""GEMM with a fused epilogue: the engine behind linear, matmul and conv2d.

    C[M, N] = act(A[M, K] @ B[K, N] + bias + residual)       (per batch entry)

Layout, BLIS style. A is packed in panels of MR rows, [ceil(M/MR)][K][MR]; B in panels of
NR = NV vectors of columns, [ceil(N/NR)][K][NR]; both zero-padded. Weights are packed once at
compile time (numpy, `pack_a` / `pack_b`); runtime operands are packed by generated code.

Micro-kernel (`ukernel`): an MR x NR tile of C lives in MR*NV vector registers (8 x 2 zmm
with AVX-512: 16 accumulators; 6 x 2 with AVX2/SSE, which have 16 registers). Per k it loads
NV vectors of B, broadcasts MR scalars of A and issues MR*NV llvm.fmuladd (FMA). The
epilogue (bias per row or column, residual, activation) runs on the registers before the
single store; partial column tiles use masked loads and stores, partial row tiles a kernel
compiled for fewer rows, so no byte outside C is touched.

Loops: a work item is (batch entry, block of MC rows, block of NC columns) - independent
outputs, so threads share items and results do not depend on the thread count. Inside an
item K runs in blocks of KC: the KC x NC block of B (packed into per-thread scratch when B
is a runtime operand) stays in L2, and each KC x NR micro-panel of B stays in L1 while the
A micro-panels stream past it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from llvmlite import ir as llir

from .builder import I1, I64, ITEMSIZE, PTR, VOID, KBuilder, const, scalar_type, vec_type
from .codegen import weight_recipe
from .emit import emit
from .kernel import Buf, Kernel

KC = 256


@dataclass(frozen=True)
class Blocking:
    mr: int  # rows of the register tile
    nv: int  # vectors of columns of the register tile
    lanes: int

    @property
    def nr(self) -> int:
        return self.nv * self.lanes


def blocking(target, dtype: str) -> Blocking:
    lanes = target.lanes(ITEMSIZE[dtype])
    if target.vector_bytes == 64:  # 32 zmm registers: 16 accumulators + B + broadcast
        return Blocking(8, 2, lanes)
    return Blocking(6, 2, lanes)  # 16 registers: 12 accumulators


@dataclass(frozen=True)
class Epilogue:
    """What happens to a finished tile before it is stored, in this order."""

    bias: str | None = None  # "row": one value per row (conv channel); "col": per column
    residual: bool = False  # add a tensor laid out like C
    act: str | None = None  # an elementwise operator applied last
    act_attrs: tuple = ()  # its attributes, as sorted (name, value) pairs

    def apply(self, b: KBuilder, x, dtype: str, bias=None, residual=None):
        """The epilogue on loaded values: + bias, + residual, then the activation (the order
        ir/ops/fused.py defines); every kernel with an epilogue finishes through here."""
        if bias is not None:
            x = b.fadd(x, bias)
        if residual is not None:
            x = b.fadd(x, residual)
        return emit(b, self.act, [x], dtype, dict(self.act_attrs)) if self.act else x


# ---- packing layout -------------------------------------------------------------------------
# Panels are stored K-block by K-block: block kb (rows [kb*KC, kb*KC + kc) of the K axis)
# holds every panel's kc x width slice contiguously, so the blocks a work item reads are
# contiguous (panels a whole K apart would alias in the caches once K*width*4 hits 32 KB).
# The slice of panel p in the block starting at pc is at  pc * padded + p * kc * width.
def pack_panels(x: np.ndarray, width: int) -> np.ndarray:
    """[..., K, W] -> K-blocked panels of `width` columns (zero-padded), flattened per lead:
    block pc holds [panel j][k][c] = x[..., pc + k, j * width + c].

    Each block is written in place through a view of the result (one copy of the weights,
    not three: this runs on every compile, cache hits included)."""
    *lead, k, w = x.shape
    panels, full = -(-w // width), w // width
    wp = panels * width
    if k == 0:
        return np.zeros((*lead, 0, wp), x.dtype)
    out = np.zeros((*lead, k * wp), x.dtype)
    for pc in range(0, k, KC):
        kc = min(KC, k - pc)
        # splitting the last axis of a slice is always a view, so writes land in `out`
        dst = out[..., pc * wp:(pc + kc) * wp].reshape(*lead, panels, kc, width)
        src = x[..., pc:pc + kc, :]
        if full:
            dst[..., :full, :, :] = src[..., :full * width].reshape(
                *lead, kc, full, width).swapaxes(-2, -3)
        if w > full * width:
            dst[..., full, :, :w - full * width] = src[..., full * width:]
    return out


def pack_a(a: np.ndarray, mr: int) -> np.ndarray:
    """[..., M, K] -> MR-row panels (of A's transpose: each k holds MR row values)."""
    return pack_panels(np.swapaxes(a, -1, -2), mr)


def pack_b(b: np.ndarray, nr: int) -> np.ndarray:
    """[..., K, N] -> NR-column panels."""
    return pack_panels(b, nr)


@weight_recipe
def packed_weight(node, i: int, shape: tuple, axes: tuple | None, side: str,
                  width: int) -> np.ndarray:
    """Weight input i of `node` viewed as `shape`, its axes permuted by `axes`, packed as the
    GEMM's A ("a": MR-row panels) or B ("b": NR-column panels) operand."""
    data = node.graph.weights[node.inputs[i].name].reshape(shape)
    if axes is not None:
        data = data.transpose(axes)
    return pack_a(data, width) if side == "a" else pack_b(data, width)


def panel_at(b: KBuilder, pc, kc, panel, padded: int, width: int):
    """Element offset of `panel`'s slice in the K block starting at pc (see above)."""
    return b.add(b.mul(pc, b.i64(padded)), b.mul(panel, b.mul(kc, b.i64(width))))


# ---- the micro-kernel -----------------------------------------------------------------------
UK_ARGS = [PTR, PTR, I64, PTR, I64, PTR, PTR, I64, I1, I1]


def ukernel(k: Kernel, blk: Blocking, dtype: str, mr: int, epi: Epilogue) -> llir.Function:
    """void uk(a, b, kc, c, ldc, bias, resid, nvalid, accumulate, last): one register tile.

    a, b: micro-panels at the current k block; c (and resid) point at the tile's origin with
    row stride ldc; bias at the tile's first row or column; nvalid: valid columns (<= NR);
    accumulate: add C's previous value (later K blocks); last: apply the epilogue."""
    cg = k.cg
    key = ("gemm.uk", blk, dtype, mr, epi, cg.fp_mode)
    if key in cg.phase_fns:
        return cg.phase_fns[key]
    fn = llir.Function(cg.module, llir.FunctionType(VOID, UK_ARGS), cg.unique(f"gemm.uk{mr}"))
    fn.linkage = "internal"
    for i in (0, 1, 3, 5, 6):
        fn.args[i].add_attribute("noalias")
    a, bp, kc, c, ldc, bias, resid, nvalid, accumulate, last = fn.args
    b = KBuilder(fn.append_basic_block("entry"), cg.fmf)
    el, vt, L = scalar_type(dtype), vec_type(dtype, blk.lanes), blk.lanes
    acc = [[b.var(vt, const(vt, 0), f"acc{r}_{v}") for v in range(blk.nv)] for r in range(mr)]
    with b.loop(0, kc, name="k") as kk:
        brow = b.mul(kk, b.i64(blk.nr))
        bv = [b.vload(bp, b.add(brow, b.i64(v * L)), el, L) for v in range(blk.nv)]
        arow = b.mul(kk, b.i64(blk.mr))
        for r in range(mr):
            av = b.splat(b.vload(a, b.add(arow, b.i64(r)), el), L)
            for v in range(blk.nv):
                b.store(b.fmuladd(av, bv[v], b.load(acc[r][v], typ=vt)), acc[r][v])
    full = b.icmp_signed("==", nvalid, b.i64(blk.nr))
    with b.if_else(full, likely=True) as (then, other):
        with then:
            _finish(b, blk, dtype, mr, epi, acc, c, ldc, bias, resid, accumulate, last, None)
        with other:
            masks = [_mask(b, nvalid, v * L, L) for v in range(blk.nv)]
            _finish(b, blk, dtype, mr, epi, acc, c, ldc, bias, resid, accumulate, last, masks)
    b.ret_void()
    cg.phase_fns[key] = fn
    return fn


def _mask(b, nvalid, first: int, lanes: int):
    return b.lane_mask(nvalid, first, lanes)


def _load(b, ptr, index, el, lanes, mask):
    """A vector load, masked when `mask` is given (masked-off lanes read as 0)."""
    if mask is None:
        return b.vload(ptr, index, el, lanes)
    return b.masked_load(ptr, index, el, lanes, mask)


def _store(b, value, ptr, index, mask):
    if mask is None:
        b.vstore(value, ptr, index)
    else:
        b.masked_store(value, ptr, index, mask)


def _finish(b, blk, dtype, mr, epi, acc, c, ldc, bias, resid, accumulate, last, masks):
    el, vt, L = scalar_type(dtype), vec_type(dtype, blk.lanes), blk.lanes
    m = masks or [None] * blk.nv

    def at(r, v):
        return b.add(b.mul(b.i64(r), ldc), b.i64(v * L))

    with b.if_then(accumulate):
        for r in range(mr):
            for v in range(blk.nv):
                prev = _load(b, c, at(r, v), el, L, m[v])
                b.store(b.fadd(b.load(acc[r][v], typ=vt), prev), acc[r][v])
    with b.if_then(last):
        col_bias = [_load(b, bias, b.i64(v * L), el, L, m[v]) for v in range(blk.nv)] \
            if epi.bias == "col" else None
        for r in range(mr):
            row_bias = b.splat(b.vload(bias, b.i64(r), el), L) if epi.bias == "row" else None
            for v in range(blk.nv):
                bias_v = {"row": row_bias, "col": col_bias and col_bias[v]}.get(epi.bias)
                res = _load(b, resid, at(r, v), el, L, m[v]) if epi.residual else None
                b.store(epi.apply(b, b.load(acc[r][v], typ=vt), dtype, bias_v, res), acc[r][v])
    for r in range(mr):
        for v in range(blk.nv):
            _store(b, b.load(acc[r][v], typ=vt), c, at(r, v), m[v])


# ---- the compute phase ----------------------------------------------------------------------
Offset = Callable[[KBuilder, llir.Value], llir.Value]  # batch index -> element offset


def _zero(b, bi):
    return b.i64(0)


@dataclass
class Gemm:
    """One (batched) GEMM to emit. Offsets map a batch index to element offsets."""

    batch: int
    m: int
    n: int
    k: int
    a: Buf  # A packed in MR-row panels (at compile time or by an earlier phase)
    c: Buf
    ldc: int
    a_off: Offset = _zero
    c_off: Offset = _zero
    b_packed: Buf | None = None  # B packed in full-K NR-column panels...
    b_off: Offset = _zero
    pack_b: Callable | None = None  # ...or packer(b, bi, pc, kc, col0, ncols, dst) per block
    bias: Buf | None = None
    bias_off: Offset = _zero
    resid: Buf | None = None
    epi: Epilogue = Epilogue()


def blocks(g: Gemm, blk: Blocking, threads: int) -> tuple[int, int]:
    """(MC, NC): about 256 x 256, smaller until there are 4 work items per thread (so that
    uneven items still balance), but not below one register tile. Splitting columns makes
    each item read its rows of A again, splitting rows re-reads B: the dimension whose other
    operand is smaller is split first (a 7x7 layer's 9 MB of weights are read once)."""
    mc = min(-(-g.m // blk.mr) * blk.mr, 32 * blk.mr)
    nc = min(-(-g.n // blk.nr) * blk.nr, 8 * blk.nr)
    want = 4 * threads if threads > 1 else 1

    def items():
        return g.batch * -(-g.m // mc) * -(-g.n // nc)

    for axis in (("m", "n") if g.n < g.m else ("n", "m")):
        while items() < want and (mc > blk.mr if axis == "m" else nc > blk.nr):
            if axis == "m":
                mc = max(blk.mr, mc // 2 // blk.mr * blk.mr)
            else:
                nc = max(blk.nr, nc // 2 // blk.nr * blk.nr)
    return mc, nc


def prepack_b(k: Kernel, g: Gemm, blk: Blocking, dtype: str) -> None:
    """Pack all of a runtime B once, in its own phase (items: batch entry x column panel),
    instead of once per row block: rows are split when A is the bigger operand."""
    npad = -(-g.n // blk.nr) * blk.nr
    panels = npad // blk.nr
    dst = k.new_scratch(dtype, g.batch * g.k * npad)
    pack, el = g.pack_b, scalar_type(dtype)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="panel") as item:
            bi, p = b.udiv(item, b.i64(panels)), b.urem(item, b.i64(panels))
            col0 = b.mul(p, b.i64(blk.nr))
            ncols = _min(b, b.sub(b.i64(g.n), col0), blk.nr)
            base = b.at(dst.ptr, b.mul(bi, b.i64(g.k * npad)), el)
            with b.loop(0, g.k, KC, name="pc", unroll=False) as pc:
                kc = _min(b, b.sub(b.i64(g.k), pc), KC)
                pack(b, bi, pc, kc, col0, ncols, b.at(base, panel_at(b, pc, kc, p, npad,
                                                                        blk.nr), el))

    k.phase(g.batch * panels, body, bufs=[*k.inputs, *k.scratch, *k.extra],
            cost=g.batch * g.k * npad)
    g.pack_b, g.b_packed = None, dst
    g.b_off = lambda b, bi: b.mul(bi, b.i64(g.k * npad))


def gemm_phase(k: Kernel, g: Gemm, dtype: str, scratch: Buf | None = None) -> None:
    """Emit the compute phase of `g` (after any phases that pack its operands)."""
    blk = blocking(k.cg.target, dtype)
    mc, nc = blocks(g, blk, k.cg.num_threads)
    n_ic, n_jc = -(-g.m // mc), -(-g.n // nc)
    if g.pack_b and n_ic > 1:
        prepack_b(k, g, blk, dtype)
        scratch = None
    full = ukernel(k, blk, dtype, blk.mr, g.epi)
    part = ukernel(k, blk, dtype, g.m % blk.mr, g.epi) if g.m % blk.mr else None
    el = scalar_type(dtype)
    null = llir.Constant(PTR, None)
    mpad, npad = -(-g.m // blk.mr) * blk.mr, -(-g.n // blk.nr) * blk.nr

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="item") as item:
            bi = b.udiv(item, b.i64(n_ic * n_jc))
            rest = b.urem(item, b.i64(n_ic * n_jc))
            row0 = b.mul(b.udiv(rest, b.i64(n_jc)), b.i64(mc))
            col0 = b.mul(b.urem(rest, b.i64(n_jc)), b.i64(nc))
            row_end = _min(b, b.add(row0, b.i64(mc)), g.m)
            ncols = _min(b, b.sub(b.i64(g.n), col0), nc)
            a0 = b.at(g.a.ptr, g.a_off(b, bi), el)
            c0 = b.at(g.c.ptr, g.c_off(b, bi), el)
            r0 = b.at(g.resid.ptr, g.c_off(b, bi), el) if g.resid else null
            bias0 = b.at(g.bias.ptr, g.bias_off(b, bi), el) if g.bias else null
            mine = k.worker_ptr(b, scratch, worker) if g.pack_b else None
            with b.loop(0, g.k, KC, name="pc", unroll=False) as pc:
                kc = _min(b, b.sub(b.i64(g.k), pc), KC)
                acc_flag = b.icmp_signed(">", pc, b.i64(0))
                last = b.icmp_signed("==", b.add(pc, kc), b.i64(g.k))
                if g.pack_b:
                    g.pack_b(b, bi, pc, kc, col0, ncols, mine)
                with b.loop(0, b.udiv(b.add(ncols, b.i64(blk.nr - 1)), b.i64(blk.nr)),
                            name="jr", unroll=False) as jr:
                    col = b.add(col0, b.mul(jr, b.i64(blk.nr)))
                    nvalid = _min(b, b.sub(b.i64(g.n), col), blk.nr)
                    if g.pack_b:
                        bpanel = b.at(mine, b.mul(jr, b.mul(kc, b.i64(blk.nr))), el)
                    else:
                        panel = b.udiv(col, b.i64(blk.nr))
                        off = panel_at(b, pc, kc, panel, npad, blk.nr)
                        bpanel = b.at(g.b_packed.ptr, b.add(g.b_off(b, bi), off), el)
                    bias_t = bias0 if g.epi.bias != "col" else b.at(bias0, col, el)
                    with b.loop(row0, row_end, blk.mr, name="ir", unroll=False) as row:
                        ap = b.udiv(row, b.i64(blk.mr))
                        apanel = b.at(a0, panel_at(b, pc, kc, ap, mpad, blk.mr), el)
                        tile = b.add(b.mul(row, b.i64(g.ldc)), col)
                        ct = b.at(c0, tile, el)
                        rt = b.at(r0, tile, el) if g.resid else null
                        bt = b.at(bias_t, row, el) if g.epi.bias == "row" else bias_t
                        args = [apanel, bpanel, kc, ct, b.i64(g.ldc), bt, rt, nvalid,
                                acc_flag, last]
                        if part is None:
                            b.call(full, args)
                        else:
                            is_full = b.icmp_signed("<=", b.add(row, b.i64(blk.mr)),
                                                    b.i64(g.m))
                            with b.if_else(is_full) as (then, other):
                                with then:
                                    b.call(full, args)
                                with other:
                                    b.call(part, args)

    bufs = [g.a, g.c] + [x for x in (g.b_packed, g.bias, g.resid, scratch) if x is not None]
    bufs += [x for x in k.inputs + k.scratch + k.extra if x not in bufs]
    k.phase(g.batch * n_ic * n_jc, body, bufs=bufs, cost=2.0 * g.batch * g.m * g.n * g.k)


def scratch_for_b(k: Kernel, dtype: str, n: int) -> Buf:
    """Per-worker scratch for one packed KC x NC block of B."""
    blk = blocking(k.cg.target, dtype)
    return k.new_scratch(dtype, KC * 8 * blk.nr, per_worker=True)


def _min(b: KBuilder, x, n: int):
    c = b.i64(n)
    return b.select(b.icmp_signed("<", x, c), x, c)


# ---- runtime packing ------------------------------------------------------------------------
def pack_a_phase(k: Kernel, src: Buf, dst: Buf, batch: int, m: int, kk: int,
                 index: Callable | None = None) -> None:
    """Pack A [batch][M][K] into K-blocked MR-row panels (zero rows past M). `index(b, bi,
    row, k)` gives the source element offset; default: row-major [batch][M][K]."""
    blk = blocking(k.cg.target, src.dtype)
    panels = -(-m // blk.mr)
    mpad = panels * blk.mr
    el = src.elem

    def row_major(b, bi, row, kx):
        return b.add(b.mul(b.add(b.mul(bi, b.i64(m)), row), b.i64(kk)), kx)

    index = index or row_major

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="panel") as item:
            bi = b.udiv(item, b.i64(panels))
            p = b.urem(item, b.i64(panels))
            d0 = b.at(dst.ptr, b.mul(bi, b.i64(mpad * kk)), el)
            with b.loop(0, blk.mr, name="r", unroll=False) as r:
                row = b.add(b.mul(p, b.i64(blk.mr)), r)
                inside = b.icmp_signed("<", row, b.i64(m))
                safe = b.select(inside, row, b.i64(0))
                with b.loop(0, kk, name="k") as kx:
                    pc = b.and_(kx, b.i64(~(KC - 1)))  # the K block holding kx
                    kc = _min(b, b.sub(b.i64(kk), pc), KC)
                    at = b.add(panel_at(b, pc, kc, p, mpad, blk.mr),
                               b.add(b.mul(b.sub(kx, pc), b.i64(blk.mr)), r))
                    x = b.select(inside, b.vload(src.ptr, index(b, bi, safe, kx), el),
                                 const(el, 0))
                    b.vstore(x, d0, at)

    k.phase(batch * panels, body, bufs=[src, dst], cost=batch * m * kk)


def pack_b_rows(b: KBuilder, blk: Blocking, src, ldb, n: int, pc, kc, col0, ncols, dst,
                el) -> None:
    """Pack block [pc, pc+kc) x [col0, col0+ncols) of a B whose rows are contiguous into
    NR-column panels at dst; columns past N are zero (masked loads). `ldb` is the row stride,
    or a function (b, row) -> element offset of the row."""
    L = blk.lanes
    row_at = ldb if callable(ldb) else (lambda b, r: b.mul(r, b.i64(ldb)))
    with b.loop(0, b.udiv(b.add(ncols, b.i64(blk.nr - 1)), b.i64(blk.nr)), name="jp") as jp:
        col = b.add(col0, b.mul(jp, b.i64(blk.nr)))
        nvalid = _min(b, b.sub(b.i64(n), col), blk.nr)
        panel = b.at(dst, b.mul(jp, b.mul(kc, b.i64(blk.nr))), el)
        full = b.icmp_signed("==", nvalid, b.i64(blk.nr))
        with b.loop(0, kc, name="kk") as kk:
            srow = b.add(row_at(b, b.add(pc, kk)), col)
            with b.if_else(full, likely=True) as (then, other):
                for branch, masked in ((then, False), (other, True)):
                    with branch:
                        for v in range(blk.nv):
                            mask = _mask(b, nvalid, v * L, L) if masked else None
                            x = _load(b, src, b.add(srow, b.i64(v * L)), el, L, mask)
                            b.vstore(x, panel, b.add(b.mul(kk, b.i64(blk.nr)), b.i64(v * L)))


__all__ = [
    "Blocking",
    "Epilogue",
    "Gemm",
    "blocking",
    "gemm_phase",
    "pack_a",
    "pack_a_phase",
    "pack_b",
    "pack_b_rows",
    "pack_panels",
    "panel_at",
    "scratch_for_b",
]


def packed_panels(k: Kernel, m: int, n: int, blk: Blocking, full, part, tile_args,
                  bufs, cost: float) -> None:
    """The macro-kernel phase of a GEMM whose B is packed in NR-column panels (the int8 and
    bfloat16 kernels): work items are (mc x nc) blocks; for each MR-row tile of each panel,
    `tile_args(b, row, col, nvalid)` gives the micro-kernel's arguments, and `full` (MR
    rows) or `part` (the last, shorter tile; None when MR divides m) runs them."""
    mc, nc = blocks(SimpleNamespace(m=m, n=n, batch=1), blk, k.cg.num_threads)
    n_jc = -(-n // nc)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="item") as item:
            row0 = b.mul(b.udiv(item, b.i64(n_jc)), b.i64(mc))
            col0 = b.mul(b.urem(item, b.i64(n_jc)), b.i64(nc))
            row_end = b.min_(b.add(row0, b.i64(mc)), m)
            ncols = b.min_(b.sub(b.i64(n), col0), nc)
            with b.loop(0, b.ceil_div(ncols, blk.nr), name="jr", unroll=False) as jr:
                col = b.add(col0, b.mul(jr, b.i64(blk.nr)))
                nvalid = b.min_(b.sub(b.i64(n), col), blk.nr)
                with b.loop(row0, row_end, blk.mr, name="ir", unroll=False) as row:
                    args = tile_args(b, row, col, nvalid)
                    if part is None:
                        b.call(full, args)
                    else:
                        _full_or_part(b, row, m, blk, full, part, args)

    k.phase(-(-m // mc) * n_jc, body, bufs=bufs, cost=cost)


def _full_or_part(b: KBuilder, row, m: int, blk: Blocking, full, part, args) -> None:
    """The tile kernel for MR rows, or the one for the last, shorter row tile."""
    is_full = b.icmp_signed("<=", b.add(row, b.i64(blk.mr)), b.i64(m))
    with b.if_else(is_full) as (then, other):
        with then:
            b.call(full, args)
        with other:
            b.call(part, args)
