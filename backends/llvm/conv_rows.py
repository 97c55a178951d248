"""Convolution with output pixels as the GEMM's rows, read straight from the input.

    out^T[pixels, O] = im2col(x)^T @ W^T        per image, groups == 1

The register tile is MR pixels of one output row x NR output channels (8 x 32 with
AVX-512). Its A operand is never packed (no im2col): at k = (c, i, j) the tile's MR inputs
are MR consecutive elements of the input (padded and phase-split by conv.split_phases when
the window needs it) at a compile-time offset table[k] from the tile's origin, each
broadcast straight from there. B is the weights, transposed and packed into NR-channel
panels at compile time. An output row is cut into tiles of nearly equal width (14 = 7 + 7),
so no tile computes a pixel that does not exist; a 1x1 convolution's plane is one long row.
(conv.conv_gemm, pixels as columns, computes Wq - OW extra columns per row and rounds
columns up to NR: a quarter of a 7x7 layer's work is thrown away.)

The finished tile is transposed in registers (a shuffle network) and stored as MR-pixel runs
of each channel's plane of the NCHW output, bias, residual and activation applied on the
way. K runs in KC blocks, outermost in an item as in BLIS: the item's inputs for one block
stay in L2 while its weight panels pass, each KC x NR micro-panel staying in L1 while the
item's pixel tiles stream past it; the partial sums of all but the last block wait in
per-worker scratch in the tiles' own layout. The first tile of each (block, panel) also
prefetches the next weight micro-panel line by line as it reads its own (at batch 1 the
weights stream from DRAM, and the hardware prefetchers stop at every 4 KB page: ResNet-50
3-4% faster). Every output is the same chain of FMAs in k
order, blocks added as gemm.ukernel adds them, so results equal conv_gemm's bit for bit.

Work items are (group of pixel tiles, group of channel panels), the tiles of all images
numbered in one sequence, so that a batch of small planes shares each weight micro-panel
(read from L3 once per item) among several images. The groups shrink, as gemm.blocks
does, until every thread has several; no result depends on the split.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from llvmlite import ir as llir

from .builder import (
    I1,
    I32,
    I64,
    ITEMSIZE,
    PTR,
    VOID,
    KBuilder,
    const,
    elem_of,
    scalar_type,
    vec_type,
)
from .gemm import KC, Blocking, Epilogue, packed_weight, panel_at
from .kernel import Buf, Kernel
from .linalg import epilogue_of

TASKS_PER_THREAD = 4  # the driver's (driver.TASKS_PER_THREAD)
PIXELS_PER_ITEM = 256  # an item's input rows (KC x pixels) stay in L2 across its panels
PANELS_PER_ITEM = 8

# a, table, b, kc, part, out, ldo, bias, resid, nvalid, accumulate, last, prefetch
UK_ARGS = [PTR, PTR, PTR, I64, PTR, PTR, I64, PTR, PTR, I64, I1, I1, PTR]


def row_tiles(width: int, mr: int) -> tuple[int, int, int]:
    """(tiles, width of a tile, how many are one wider): a row of `width` pixels cut into
    ceil(width / mr) runs of nearly equal width, the wider ones first."""
    nt = -(-width // mr)
    return nt, width // nt, width % nt


def item_split(tiles: int, panels: int, blk: Blocking, threads: int):
    """(tiles per item, panels per item): about PIXELS_PER_ITEM x PANELS_PER_ITEM * NR.
    With threads, the groups are made more (count doubled, the larger operand's axis first:
    weights on small planes, the input on large ones, so each thread reads its own share of
    it once) until there are TASKS_PER_THREAD items per thread, and then the tile groups
    rounded up so the items divide into the driver's tasks evenly (13 items in 8 tasks
    leave one thread two items behind)."""
    n_t = -(-tiles // max(1, PIXELS_PER_ITEM // blk.mr))
    n_p = -(-panels // PANELS_PER_ITEM)
    if threads > 1:
        want = TASKS_PER_THREAD * threads
        first = "p" if tiles * blk.mr < panels * blk.nr else "t"
        for axis in (first, "t" if first == "p" else "p"):
            while n_t * n_p < want and (n_p < panels if axis == "p" else n_t < tiles):
                if axis == "p":
                    n_p = min(panels, 2 * n_p)
                else:
                    n_t = min(tiles, 2 * n_t)
        step = want // math.gcd(want, n_p)
        n_t = min(tiles, -(-n_t // step) * step)
    return -(-tiles // n_t), -(-panels // n_p)


def conv_rows(k: Kernel, src: Buf, table: np.ndarray, plane: int, rows: int, width: int,
              row_stride: int, bias: Buf | None, resid: Buf | None, out: Buf,
              blk: Blocking) -> None:
    """out[n, o, y, x] = act(sum_k W[o, k] * src[n * plane + table[k] + y * row_stride + x]
    + bias[o] + resid[n, o, y, x]) for the `rows` x `width` output pixels of each image
    (a 1x1 convolution: one row of H*W pixels). W (input 1 of the node) is a weight."""
    n, o = out.shape[0], out.shape[1]
    kk = len(table)
    ohw = rows * width
    el, dtype = src.elem, src.dtype
    nt, base, extra = row_tiles(width, blk.mr)
    tiles = rows * nt  # per image; the images' tiles are numbered one after another
    panels = -(-o // blk.nr)
    npad = panels * blk.nr
    tg, pg = item_split(n * tiles, panels, blk, k.cg.num_threads)
    n_tg, n_pg = -(-(n * tiles) // tg), -(-panels // pg)
    tbl = k.constant(np.asarray(table, np.int64), "rows")
    bp = k.weight_constant("packed_wt", packed_weight, 1, (o, kk), (1, 0), "b", blk.nr)
    part = k.new_scratch(dtype, tg * pg * blk.mr * blk.nr, per_worker=True) if kk > KC else None
    epi = epilogue_of(k, "row" if bias is not None else None, resid is not None)
    narrow = ukernel(k, blk, dtype, base, epi)
    wide = ukernel(k, blk, dtype, base + 1, epi) if extra else None
    null = llir.Constant(PTR, None)

    def body(b: KBuilder, lo, hi, worker):
        mine = k.worker_ptr(b, part, worker) if part is not None else null
        with b.loop(lo, hi, name="item") as item:
            t0 = b.mul(b.udiv(item, b.i64(n_pg)), b.i64(tg))
            t1 = b.min_(b.add(t0, b.i64(tg)), n * tiles)
            p0 = b.mul(b.urem(item, b.i64(n_pg)), b.i64(pg))
            p1 = b.min_(b.add(p0, b.i64(pg)), panels)
            with b.loop(0, kk, KC, name="pc", unroll=False) as pc:
                kc = b.min_(b.sub(b.i64(kk), pc), KC)
                accumulate = b.icmp_signed(">", pc, b.i64(0))
                last = b.icmp_signed("==", b.add(pc, kc), b.i64(kk))
                tp = b.at(tbl.ptr, pc, I64)
                with b.loop(p0, p1, name="jr", unroll=False) as jr:
                    col = b.mul(jr, b.i64(blk.nr))
                    nvalid = b.min_(b.sub(b.i64(o), col), blk.nr)
                    bias_t = b.at(bias.ptr, col, el) if bias is not None else null
                    bpanel = b.at(bp.ptr, panel_at(b, pc, kc, jr, npad, blk.nr), el)
                    sums = b.mul(b.sub(jr, p0), b.i64(tg))
                    # the panel after this one in memory (not inbounds: past the last)
                    nxt = b.gep(bpanel, [b.mul(kc, b.i64(blk.nr))], source_etype=el)
                    with b.loop(t0, t1, name="tile", unroll=False) as t:
                        img, q = b.udiv(t, b.i64(tiles)), b.urem(t, b.i64(tiles))
                        y, j = b.udiv(q, b.i64(nt)), b.urem(q, b.i64(nt))
                        x0 = b.add(b.mul(j, b.i64(base)), b.min_(j, extra))
                        a_t = b.at(src.ptr, b.add(b.mul(img, b.i64(plane)), b.add(
                            b.mul(y, b.i64(row_stride)), x0)), el)
                        at = b.add(b.add(b.mul(img, b.i64(o * ohw)), b.mul(col, b.i64(ohw))),
                                   b.add(b.mul(y, b.i64(width)), x0))
                        o_t = b.at(out.ptr, at, el)
                        r_t = b.at(resid.ptr, at, el) if resid is not None else null
                        slot = b.mul(b.add(sums, b.sub(t, t0)), b.i64(blk.mr * blk.nr))
                        p_t = b.at(mine, slot, el) if part is not None else null
                        # the item's first tile pulls the next weight micro-panel into the
                        # caches while it computes (weights stream from DRAM at batch 1)
                        ahead = b.select(b.icmp_signed("==", t, t0), nxt, bpanel)
                        args = [a_t, tp, bpanel, kc, p_t, o_t, b.i64(ohw), bias_t, r_t, nvalid,
                                accumulate, last, ahead]
                        if wide is None:
                            b.call(narrow, args)
                        else:
                            with b.if_else(b.icmp_signed("<", j, b.i64(extra))) as (then, other):
                                with then:
                                    b.call(wide, args)
                                with other:
                                    b.call(narrow, args)

    k.phase(n_tg * n_pg, body, cost=2.0 * n * o * ohw * kk)


# ---- the micro-kernel -----------------------------------------------------------------------
def ukernel(k: Kernel, blk: Blocking, dtype: str, mr: int, epi: Epilogue) -> llir.Function:
    """void uk(a, table, b, kc, part, out, ldo, bias, resid, nvalid, accumulate, last,
    ahead): one tile of mr pixels x NR channels over one K block. a: the tile's first input
    at k = 0 (input of pixel r at k: a[table[k] + r]); b: the weight micro-panel; part:
    partial sums (mr x NR, row-major); out, resid: the tile's first pixel of its first
    channel, channels ldo apart; bias: the first channel's; nvalid: channels that exist
    (<= NR); accumulate: add part; last: finish into out, else leave the sums in part;
    ahead: a panel to prefetch, line for line with b (b itself when none; a prefetch never
    faults, so reading past the last panel's end is harmless)."""
    cg = k.cg
    key = ("conv_rows.uk", blk, dtype, mr, epi, cg.fp_mode)
    if key in cg.phase_fns:
        return cg.phase_fns[key]
    fn = llir.Function(cg.module, llir.FunctionType(VOID, UK_ARGS), cg.unique(f"conv_rows.uk{mr}"))
    fn.linkage = "internal"
    for i in (0, 1, 2, 4, 5, 7, 8):
        fn.args[i].add_attribute("noalias")
    a, table, bp, kc, part, out, ldo, bias, resid, nvalid, accumulate, last, ahead = fn.args
    b = KBuilder(fn.append_basic_block("entry"), cg.fmf)
    el, vt, L = scalar_type(dtype), vec_type(dtype, blk.lanes), blk.lanes
    acc = [[b.var(vt, const(vt, 0), f"acc{r}_{v}") for v in range(blk.nv)] for r in range(mr)]
    with b.loop(0, kc, name="k") as kx:
        ar = b.at(a, b.vload(table, kx, I64), el)
        brow = b.mul(kx, b.i64(blk.nr))
        bv = [b.vload(bp, b.add(brow, b.i64(v * L)), el, L) for v in range(blk.nv)]
        for line in range(0, blk.nr * ITEMSIZE[dtype], 64):  # llvm.prefetch: read, keep, data
            at = b.add(brow, b.i64(line // ITEMSIZE[dtype]))
            b.intrinsic("prefetch", [b.gep(ahead, [at], source_etype=el), b.i32(0), b.i32(3),
                                     b.i32(1)],
                        ret=VOID, overload=[PTR])
        for r in range(mr):
            av = b.splat(b.vload(ar, r, el), L)
            for v in range(blk.nv):
                b.store(b.fmuladd(av, bv[v], b.load(acc[r][v], typ=vt)), acc[r][v])

    def at(r, v):
        return r * blk.nr + v * L

    with b.if_then(accumulate):
        for r in range(mr):
            for v in range(blk.nv):
                prev = b.vload(part, at(r, v), el, L)
                b.store(b.fadd(b.load(acc[r][v], typ=vt), prev), acc[r][v])
    with b.if_else(last) as (then, other):
        with then:
            rows = [[b.load(acc[r][v], typ=vt) for v in range(blk.nv)] for r in range(mr)]
            full = b.icmp_signed("==", nvalid, b.i64(blk.nr))
            with b.if_else(full, likely=True) as (all_, some):
                with all_:
                    _store_columns(b, blk, dtype, epi, rows, out, ldo, bias, resid, None)
                with some:
                    _store_columns(b, blk, dtype, epi, rows, out, ldo, bias, resid, nvalid)
        with other:
            for r in range(mr):
                for v in range(blk.nv):
                    b.vstore(b.load(acc[r][v], typ=vt), part, at(r, v))
    b.ret_void()
    cg.phase_fns[key] = fn
    return fn


def _store_columns(b, blk, dtype, epi, rows, out, ldo, bias, resid, nvalid) -> None:
    """Channel ch of the tile (the pixels' lane ch) -> out[ch * ldo : ... + mr], through the
    epilogue; channels at or past `nvalid` (when given) are not stored. What the epilogue
    does per channel (bias; the activation too without a residual) is done before the
    transpose, on whole vectors of channels: the same operations in the same order."""
    el, mr, L = scalar_type(dtype), len(rows), blk.lanes
    before = replace(epi, residual=False, act=None if epi.residual else epi.act)
    after = replace(epi, bias=None, act=epi.act if epi.residual else None)
    for v in range(blk.nv):
        bv = None
        if epi.bias and nvalid is None:
            bv = b.vload(bias, v * L, el, L)
        elif epi.bias:
            bv = b.masked_load(bias, v * L, el, L, b.lane_mask(nvalid, v * L, L))
        block = [before.apply(b, row[v], dtype, bv) for row in rows]
        for lane, col in enumerate(transpose(b, block, L)):
            ch = v * L + lane

            def put(col=col, ch=ch):
                at = b.mul(b.i64(ch), ldo)
                res = b.vload(resid, at, el, mr) if epi.residual else None
                b.vstore(after.apply(b, col, dtype, None, res), out, at)

            if nvalid is None or ch == 0:
                put()
            else:
                with b.if_then(b.icmp_signed("<", b.i64(ch), nvalid)):
                    put()


def transpose(b: KBuilder, rows: list, lanes: int) -> list:
    """m vectors of `lanes` lanes -> `lanes` values of m lanes, value l holding every row's
    lane l (scalars when m == 1). A perfect-shuffle network (log2 m rounds of two-source
    interleaves, one permute instruction each with AVX-512) when m, rounded up to a power of
    two, fits in a vector; else element by element."""
    m = len(rows)
    if m == 1:
        return [rows[0] if lanes == 1 else b.extract_element(rows[0], b.i32(lane))
                for lane in range(lanes)]
    plan = shuffle_plan(m, lanes)
    if plan is None:
        return [_column(b, rows, lane) for lane in range(lanes)]
    rounds, picks = plan
    vecs = list(rows) + [const(rows[0].type, 0)] * ((1 << (m - 1).bit_length()) - m)
    for pairs in rounds:
        vecs = [b.shuffle_vector(vecs[i], vecs[j], _mask(mask)) for i, j, mask in pairs]
    return [b.shuffle_vector(vecs[i], vecs[i], _mask(lanes_)) for i, lanes_ in picks]


def _mask(idx) -> llir.Constant:
    return llir.Constant(llir.VectorType(I32, len(idx)), list(idx))


def _column(b, rows, lane):
    vector = isinstance(rows[0].type, llir.VectorType)
    v = llir.Constant(llir.VectorType(elem_of(rows[0].type), len(rows)), llir.Undefined)
    for r, row in enumerate(rows):
        v = b.insert_element(v, b.extract_element(row, b.i32(lane)) if vector else row,
                             b.i32(r))
    return v


def shuffle_plan(m: int, lanes: int):
    """The network `transpose` emits, worked out on labels (row, lane): per round, for each
    new vector (first source, second source, mask); then per column (vector, its lanes).
    None when it cannot work (m rounded up exceeds the lanes, or one-lane vectors)."""
    m2 = 1 << (m - 1).bit_length()
    if lanes < 2 or m2 > lanes:
        return None
    half = lanes // 2
    masks = ([x for i in range(half) for x in (i, lanes + i)],
             [x for i in range(half, lanes) for x in (i, lanes + i)])
    labels = [[(r, c) for c in range(lanes)] for r in range(m2)]
    rounds = []
    for _ in range(m2.bit_length() - 1):
        pairs, new = [], []
        for j in range(m2 // 2):
            both = labels[j] + labels[j + m2 // 2]
            for mask in masks:
                pairs.append((j, j + m2 // 2, mask))
                new.append([both[i] for i in mask])
        rounds.append(pairs)
        labels = new
    picks = []
    for c in range(lanes):
        for vi, lab in enumerate(labels):
            if (0, c) in lab and all((r, c) in lab for r in range(m)):
                picks.append((vi, [lab.index((r, c)) for r in range(m)]))
                break
        else:
            return None
    return rounds, picks
