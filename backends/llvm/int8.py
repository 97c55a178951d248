"""Quantized kernels: quantize, dequantize, the int8 GEMM behind qlinear and qconv2d, the
direct kernel of grouped/depthwise qconv2d, qmatmul (two activations), qadd and
qmax_pool2d.

    C[M, N] = requantize((X[M, K] - x_zero_point) @ W[N, K].T + bias)     (ir/ops/quant.py)

The GEMM follows gemm.py's structure (work items = blocks of MC rows x NC columns, BLIS
register tiles of MR rows x NV vectors, weights packed once at compile time) with
AVX512-VNNI's `vpdpbusd` as the multiply-add: per 32-bit lane it adds four products of
unsigned bytes (from A) and signed bytes (from B) to an int32 accumulator. Hence the layout
oneDNN and onnxruntime's MLAS use: K in groups of four, B packed as [N/NR][K/4][NR][4]
bytes, so one 64-byte vector holds 4 consecutive k of 16 columns, and A's 4 bytes at (m,
4g) broadcast to every lane as one dword.

Signed activations take the usual compensation: (x + 128) is unsigned, and
    sum_k (x - zp) w = sum_k (x + 128) w - (zp + 128) * sum_k w,
so the kernel always multiplies unsigned bytes (x ^ 0x80 for i8, x itself for u8) and the
epilogue adds comp[n] = bias[n] - zp_eff * colsum(W)[n], computed at compile time. Every
sum is modulo 2**32 (int32 lanes), so the result is the reference's int32 exactly. The
epilogue then applies the float32 multipliers of `quant.multipliers` with the same
operations as the reference (int -> float, one multiply, round half to even, + zero
point, clamp), so integer outputs are bit-identical to it.

Without avx512vnni (target_features="avx2", or another CPU) the same tiles use a portable
four-byte dot product in plain LLVM IR (widen, multiply, add pairwise): exact, slower.

Grouped and depthwise convolutions and qmatmul are too shallow (C/groups channels) or
have no operand to pack at compile time (both are activations) for that GEMM: they widen
their input to (x - zero point) once, then sum vectors of 16 outputs along a row, exactly
-- in float32 where no partial sum can reach 2**24 (integers it holds exactly; its
multiply-add is faster than a 32-bit integer multiply), in int32 otherwise -- and end
with the same requantize. qadd is its definition's float32 operations, per element.
"""

from __future__ import annotations

import contextlib

import numpy as np
from llvmlite import ir as llir

from ir import LaminaError
from ir.ops.quant import RANGES, broadcastable, multipliers

from .builder import F32, I8, I32, I64, PTR, VOID, KBuilder, const, declare, lanes_of, vec_type
from .elementwise import map_kernel
from .gemm import Blocking, packed_panels
from .kernel import Kernel
from .loops import vector_loop
from .registry import lowering

LANES = 16  # int32 lanes of a 512-bit vector; narrower targets split it (generic path)
VNNI = "llvm.x86.avx512.vpdpbusd.512"


# ---- quantize / dequantize ------------------------------------------------------------------
def _params(k: Kernel, values, dtype, what: str):
    """Per-tensor or per-axis parameters as a constant operand broadcasting like numpy."""
    rank = len(k.inputs[0].shape)
    return k.constant(broadcastable(values, rank, k.attrs["axis"], dtype), what)


@contextlib.contextmanager
def _strict(b: KBuilder):
    """IEEE float operations even under fast_math: these kernels promise the reference's
    integers bit for bit (a division must not become a reciprocal multiply)."""
    saved, b.fmf = b.fmf, ()
    try:
        yield b
    finally:
        b.fmf = saved


def _roundeven(b: KBuilder, x):
    return b.intrinsic("roundeven", [x])


def _clamp(b: KBuilder, x, lo: float, hi: float):
    """min(max(x, lo), hi) on floats, as numpy's clip on the finite values it sees."""
    x = b.select(b.fcmp("<", x, const(x.type, lo)), const(x.type, lo), x)
    return b.select(b.fcmp(">", x, const(x.type, hi)), const(x.type, hi), x)


def _to_int8(b: KBuilder, x):
    """An integral float in [-128, 255] to its 8 bits (via i32: u8 values exceed i8)."""
    i32 = _like(x, I32)
    return b.trunc(b.fptosi(x, i32), _like(x, I8))


def _like(x, elem):
    n = lanes_of(x.type)
    return elem if n == 1 else llir.VectorType(elem, n)


@lowering("quantize")
def lower_quantize(k: Kernel) -> None:
    a = k.attrs
    lo, hi = RANGES[a["dtype"]]
    scale = _params(k, a["scale"], np.float32, "scale")
    zp = _params(k, a["zero_point"], np.float32, "zero_point")

    def fn(b, xs):
        x, s, z = xs
        with _strict(b):
            return _to_int8(b, _clamp(b, b.fadd(_roundeven(b, b.fdiv(x, s)), z), lo, hi))

    map_kernel(k, fn, ins=[k.inputs[0], scale, zp], cost=4)


@lowering("dequantize")
def lower_dequantize(k: Kernel) -> None:
    a, src = k.attrs, k.inputs[0].dtype
    scale = _params(k, a["scale"], np.float32, "scale")
    zp = _params(k, a["zero_point"], np.int64, "zero_point")

    def fn(b, xs):
        q, s, z = xs
        wide = _like(q, I64)
        q = b.zext(q, wide) if src == "u8" else b.sext(q, wide)
        with _strict(b):
            return b.fmul(b.sitofp(b.sub(q, z), _like(q, F32)), s)

    map_kernel(k, fn, ins=[k.inputs[0], scale, zp], lanes=k.lanes("f32"))


# ---- qlinear: packing at compile time -------------------------------------------------------
def pack_weights(w: np.ndarray, nr: int) -> np.ndarray:
    """[N, K] int8 -> [ceil(N/NR)][ceil(K/4)][NR][4] int8, zero-padded (VNNI's layout)."""
    n, kk = w.shape
    np_, kp = -(-n // nr) * nr, -(-kk // 4) * 4
    padded = np.zeros((np_, kp), np.int8)
    padded[:n, :kk] = w
    return np.ascontiguousarray(
        padded.reshape(np_ // nr, nr, kp // 4, 4).transpose(0, 2, 1, 3)).reshape(-1)


def compensation(w: np.ndarray, bias, zp_eff: int, n_pad: int) -> np.ndarray:
    """comp[n] = bias[n] - zp_eff * sum_k w[n, k], wrapped to int32 and zero-padded."""
    comp = np.zeros(n_pad, np.int64)
    comp[: w.shape[0]] = -zp_eff * w.astype(np.int64).sum(axis=1)
    if bias is not None:
        comp[: w.shape[0]] += bias.astype(np.int64)
    return comp.astype(np.int32)


def has_vnni(k: Kernel) -> bool:
    return "+avx512vnni" in k.cg.target.features.split(",")


def blocking(k: Kernel) -> Blocking:
    """8 x 2 vectors of int32 accumulators with 32 registers (AVX-512), 4 x 2 otherwise:
    the generic dot product needs registers of its own."""
    return Blocking(8, 2, LANES) if k.cg.target.vector_bytes == 64 else Blocking(4, 2, LANES)


# ---- qlinear: the micro-kernel --------------------------------------------------------------
def dot4(b: KBuilder, acc, a, w, vnni: bool):
    """acc[i] + sum_j u8(a[i].byte j) * s8(w[i].byte j) over <16 x i32> operands."""
    if vnni:
        v = acc.type
        return b.call(declare(b.module, VNNI, v, [v, v, v]), [acc, a, w])
    # products of 16-bit values summed in adjacent pairs: the pattern x86 selects as
    # vpmaddwd (exact, unlike vpmaddubsw's saturating 16-bit sums), then pairs of pairs
    n = 4 * LANES
    bytes_t, half, wide = (llir.VectorType(t, n) for t in (I8, llir.IntType(16), I32))
    a16, w16 = b.zext(b.bitcast(a, bytes_t), half), b.sext(b.bitcast(w, bytes_t), half)
    prod = b.mul(b.sext(a16, wide), b.sext(w16, wide))
    for width in (n // 2, n // 4):
        even = llir.Constant(llir.VectorType(I32, width), list(range(0, 2 * width, 2)))
        odd = llir.Constant(llir.VectorType(I32, width), list(range(1, 2 * width, 2)))
        prod = b.add(b.shuffle_vector(prod, prod, even), b.shuffle_vector(prod, prod, odd))
    return b.add(acc, prod)


UK_ARGS = [PTR, PTR, I64, I64, PTR, I64, PTR, PTR, I64]


def ukernel(k: Kernel, blk: Blocking, mr: int, vnni: bool) -> llir.Function:
    """void uk(a, b, kg, lda, c, ldc, comp, mult, nvalid): one MR x NR tile, all of K.

    a: MR rows of unsigned bytes, row stride lda; b: the packed panel (kg groups of 4);
    c: the tile's origin in the output (row stride ldc); comp, mult: the tile's columns;
    nvalid: valid columns (<= NR), the rest masked."""
    cg, a_ = k.cg, k.attrs
    key = ("int8.uk", blk, mr, vnni, a_["dtype"], a_["relu"], a_["y_zero_point"])
    if key in cg.phase_fns:
        return cg.phase_fns[key]
    fn = llir.Function(cg.module, llir.FunctionType(VOID, UK_ARGS), cg.unique(f"int8.uk{mr}"))
    fn.linkage = "internal"
    for i in (0, 1, 4, 6, 7):
        fn.args[i].add_attribute("noalias")
    ap, bp, kg, lda, c, ldc, comp, mult, nvalid = fn.args
    b = KBuilder(fn.append_basic_block("entry"), ())  # strict: see _strict
    vt = llir.VectorType(I32, LANES)
    acc = [[b.var(vt, const(vt, 0), f"acc{r}_{v}") for v in range(blk.nv)] for r in range(mr)]
    rows = [b.at(ap, b.mul(b.i64(r), lda), I8) for r in range(mr)]
    with b.loop(0, kg, name="g") as g:
        bv = [b.load(b.at(bp, b.mul(b.add(b.mul(g, b.i64(blk.nv)), b.i64(v)), b.i64(4 * LANES)),
                          I8), typ=vt, align=1) for v in range(blk.nv)]
        for r in range(mr):
            x4 = b.load(b.at(rows[r], b.mul(g, b.i64(4)), I8), typ=I32, align=1)
            av = b.splat(x4, LANES)
            for v in range(blk.nv):
                b.store(dot4(b, b.load(acc[r][v], typ=vt), av, bv[v], vnni), acc[r][v])
    full = b.icmp_signed("==", nvalid, b.i64(blk.nr))
    with b.if_else(full, likely=True) as (then, other):
        with then:
            _epilogue(k, b, blk, mr, acc, c, ldc, comp, mult, None)
        with other:
            masks = [b.lane_mask(nvalid, v * LANES, LANES) for v in range(blk.nv)]
            _epilogue(k, b, blk, mr, acc, c, ldc, comp, mult, masks, nvalid)
    b.ret_void()
    cg.phase_fns[key] = fn
    return fn


def requantize(b: KBuilder, acc, mult, attrs: dict):
    """quant.requantize on a vector of int32 accumulators: the same operations in the same
    order (int -> float32, one multiply, round half to even, + zero point, clamp, relu)."""
    y = b.fmul(b.sitofp(acc, _like(acc, F32)), mult)
    dtype, relu = attrs["dtype"], attrs["relu"]
    if dtype == "f32":
        return b.select(b.fcmp("<", y, const(y.type, 0)), const(y.type, 0), y) if relu else y
    lo, hi = RANGES[dtype]
    zp = float(attrs["y_zero_point"])
    q = _clamp(b, b.fadd(_roundeven(b, y), const(y.type, zp)), lo, hi)
    if relu:
        q = b.select(b.fcmp("<", q, const(y.type, zp)), const(y.type, zp), q)
    return _to_int8(b, q)


def _epilogue(k, b, blk, mr, acc, c, ldc, comp, mult, masks, nvalid=None):
    vt, ft = llir.VectorType(I32, LANES), llir.VectorType(F32, LANES)
    for v in range(blk.nv):
        m = masks[v] if masks else None
        cv = _load(b, comp, v * LANES, I32, m)
        mv = _load(b, mult, v * LANES, F32, m)
        assert cv.type == vt and mv.type == ft
        for r in range(mr):
            y = requantize(b, b.add(b.load(acc[r][v], typ=vt), cv), mv, k.attrs)
            at = b.add(b.mul(b.i64(r), ldc), b.i64(v * LANES))
            if m is None:
                b.vstore(y, c, at)
            elif y.type.element == I8:
                _store_bytes(b, y, b.at(c, at, I8), b.sub(nvalid, b.i64(v * LANES)))
            else:
                b.masked_store(y, c, at, m)


def _store_bytes(b: KBuilder, y, dst, count) -> None:
    """Store the first `count` (may be <= 0 or > 16) lanes of a byte vector one by one. Not
    a masked store: LLVM 20 turns trunc + masked.store.v16i8 with one live lane into a
    4-byte store (it drops the truncation), writing past the tile."""
    with b.loop(0, b.min_(count, LANES), name="lane") as i:
        b.vstore(b.extract_element(y, b.trunc(i, I32)), dst, i)


def _load(b, ptr, index: int, el, mask):
    return b.vload(ptr, b.i64(index), el, LANES) if mask is None else \
        b.masked_load(ptr, b.i64(index), el, LANES, mask)


# ---- qlinear: the phases --------------------------------------------------------------------
def _constants(k: Kernel, w: np.ndarray, blk: Blocking):
    """Weights [N, K] packed, compensation and multipliers: the GEMM's compile-time data."""
    a_, n = k.attrs, w.shape[0]
    bias = k.weight_data(2) if len(k.inputs) == 3 else None
    npad = -(-n // blk.nr) * blk.nr
    zp_eff = a_["x_zero_point"] + 128 * (k.inputs[0].dtype == "i8")
    mult = np.zeros(npad, np.float32)
    mult[:n] = multipliers(n, a_["x_scale"], a_["w_scale"], a_["y_scale"], a_["dtype"])
    return (k.constant(pack_weights(w, blk.nr), "packed"),
            k.constant(compensation(w, bias, zp_eff, npad), "comp"), k.constant(mult, "mult"))


def _require_weights(k: Kernel) -> None:
    if not all(k.is_weight(i) for i in range(1, len(k.inputs))):
        raise LaminaError(f"{k.where}: the LLVM backend needs {k.node.op}'s weight and bias "
                          "as graph weights (they are packed at compile time)")


@lowering("qlinear")
def lower_qlinear(k: Kernel) -> None:
    x, out = k.inputs[0], k.outputs[0]
    _require_weights(k)
    if out.size == 0:
        return
    w = k.weight_data(1)
    n, kk = w.shape
    m = out.size // n
    blk = blocking(k)
    packed, comp, mult = _constants(k, w, blk)
    kp = -(-kk // 4) * 4
    signed = x.dtype == "i8"
    direct = not signed and kk % 4 == 0  # read u8 rows in place: nothing to pad or flip
    a_buf, lda = (x, kk) if direct else (k.new_scratch("u8", m * kp), kp)
    if not direct:
        _pack_a(k, x, a_buf, m, kk, kp, signed)
    _gemm(k, a_buf, lda, packed, comp, mult, out, m, n, kp, blk, has_vnni(k))


@lowering("qconv2d")
def lower_qconv2d(k: Kernel) -> None:
    """The input to NHWC unsigned bytes (x ^ 0x80 for i8), im2col from it -- each window tap
    a run of C contiguous bytes, K in (kh, kw, c) order, padding the zero point -- the GEMM
    into [pixels, O] scratch, then a transpose into NCHW. A 1x1 window with stride 1 and no
    padding skips im2col: its NHWC rows, padded to kp, are A itself. Groups > 1 (depthwise
    and grouped convolutions): the direct kernel of `_grouped_conv`."""
    x, out = k.inputs[0], k.outputs[0]
    _require_weights(k)
    if out.size == 0:
        return
    if k.attrs["groups"] != 1:
        _grouped_conv(k)
        return
    w = k.weight_data(1)
    o = w.shape[0]
    w2 = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).reshape(o, -1)  # K as (kh, kw, c)
    blk = blocking(k)
    packed, comp, mult = _constants(k, w2, blk)
    kk = w2.shape[1]
    kp = -(-kk // 4) * 4
    n_img, pixels = out.shape[0], out.shape[2] * out.shape[3]
    m = n_img * pixels
    if _pointwise(k, w.shape):
        cols = k.new_scratch("u8", m * kp)
        _to_nhwc(k, x, cols, kp)
    else:
        nhwc = k.new_scratch("u8", x.size)
        _to_nhwc(k, x, nhwc, x.shape[1])
        cols = k.new_scratch("u8", m * kp)
        _im2col(k, nhwc, cols, x.shape, w.shape, out.shape, kp)
    c = k.new_scratch(out.dtype, m * o)
    _gemm(k, cols, kp, packed, comp, mult, c, m, o, kp, blk, has_vnni(k))
    _to_nchw(k, c, out, n_img, o, pixels)


def _pointwise(k: Kernel, wshape) -> bool:
    """A 1x1 window, stride 1, no padding: im2col's rows would be the NHWC pixels."""
    a_ = k.attrs
    return tuple(wshape[2:]) == (1, 1) and tuple(a_["stride"]) == (1, 1) and \
        not any(a_["pad"])


# ---- qconv2d with groups > 1: a direct kernel ------------------------------------------------
def _grouped_conv(k: Kernel) -> None:
    """Depthwise and grouped convolutions, where a GEMM would be C/groups deep: too shallow
    for vpdpbusd's groups of four. Two phases:

    1. pad: each input plane as (x - x_zero_point) with the padding 0 around it, so the sum
       needs no bounds checks; for a column stride s each padded row is stored as s runs
       (columns j with j % s == 0, then 1, ...), so that the columns one tap reads for
       consecutive outputs are contiguous at any stride;
    2. conv: one work item per output row (n, o, oy), vectorised over the row's width in
       chunks of 16 lanes: per tap (c, ky, kx), 16 padded inputs times the tap's weight,
       summed exactly, then bias (int32), qlinear's requantize with the channel's
       multiplier, and a store masked to the row.
    The sum is exact either way: in int32 (wrapping like the reference's), or -- when no
    sum can reach 2**24: K * max|x - zp| * 128 < 2**24, every depthwise 3x3 or 5x5 -- in
    float32, whose products and partial sums are then integers it holds exactly, in any
    order, and whose multiply-add is faster than a 32-bit integer multiply.
    Lanes past the row's end read the next row or the scratch's slack, never beyond it,
    and are not stored."""
    x, out, a_ = k.inputs[0], k.outputs[0], k.attrs
    w = k.weight_data(1)
    n, c, h, wd = x.shape
    o = w.shape[0]
    sw, pad = a_["stride"][1], a_["pad"]
    hp, wp = h + pad[0] + pad[2], wd + pad[1] + pad[3]
    wq = -(-wp // sw)  # columns per run; a padded row holds sw runs
    lo, hi = RANGES[x.dtype]
    reach = max(a_["x_zero_point"] - lo, hi - a_["x_zero_point"])
    exact = F32 if int(np.prod(w.shape[1:])) * reach * 128 < 2**24 else I32
    xp = k.new_scratch("f32" if exact == F32 else "i32", n * c * hp * sw * wq + 2 * LANES)
    bias = k.weight_data(2).astype(np.int32) if len(k.inputs) == 3 else np.zeros(o, np.int32)
    taps = np.ascontiguousarray(w, np.float32 if exact == F32 else np.int32).reshape(-1)
    consts = (k.constant(taps, "taps"), k.constant(bias, "bias"),
              k.constant(multipliers(o, a_["x_scale"], a_["w_scale"], a_["y_scale"],
                                     a_["dtype"]), "mult"))
    _pad_planes(k, x, xp, hp, wq, exact, a_["x_zero_point"])
    _grouped_rows(k, xp, consts, out, (c, hp, wq), w.shape, exact)


def _pad_planes(k: Kernel, x, xp, hp: int, wq: int, el, zp: int) -> None:
    """xp[n, c, py, (px % s) * wq + px // s] = x[n, c, py - top, px - left] - zp (el: int32
    or float32), 0 outside the image; a vector of 16 run columns at a time, loaded as the
    (16 - 1) * s + 1 bytes they span and shuffled to every s-th."""
    n, c, h, wd = x.shape
    top, left = k.attrs["pad"][0], k.attrs["pad"][1]
    sw = k.attrs["stride"][1]
    signed = x.dtype == "i8"
    wr = sw * wq

    def convert(b, v):
        v = b.sub(b.sext(v, _like(v, I32)) if signed else b.zext(v, _like(v, I32)),
                  const(_like(v, I32), zp))
        return v if el == I32 else b.sitofp(v, _like(v, F32))

    def zeros(b, dst, start, stop):
        vector_loop(b, b.i64(start), b.i64(stop), LANES,
                    lambda i, width: b.vstore(const(vec_type(el, width), 0), xp.ptr,
                                              b.add(dst, i)))

    def strided(b, at, width):
        """x[at], x[at + s], ... (width of them), reading only the bytes between."""
        v = b.vload(x.ptr, at, I8, (width - 1) * sw + 1)
        if width == 1 or sw == 1:
            return v
        pick = llir.Constant(llir.VectorType(I32, width), [j * sw for j in range(width)])
        return b.shuffle_vector(v, v, pick)

    def image_row(b, s_row, d_row):
        for ph in range(sw):  # run ph: padded columns j * s + ph, input column - left
            j_lo = min(wq, max(0, -(-(left - ph) // sw)))
            j_hi = max(j_lo, min(wq, (wd - 1 + left - ph) // sw + 1))
            run = b.add(d_row, b.i64(ph * wq))
            zeros(b, run, 0, j_lo)
            vector_loop(b, b.i64(j_lo), b.i64(j_hi), LANES, lambda j, width, run=run, ph=ph:
                        b.vstore(convert(b, strided(b, b.add(s_row, b.add(
                            b.mul(j, b.i64(sw)), b.i64(ph - left))), width)), xp.ptr,
                            b.add(run, j)))
            zeros(b, run, j_hi, wq)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="prow", unroll=False) as prow:  # one padded row
            plane, iy = b.udiv(prow, b.i64(hp)), b.sub(b.urem(prow, b.i64(hp)), b.i64(top))
            d_row = b.mul(prow, b.i64(wr))
            s_row = b.add(b.mul(plane, b.i64(h * wd)), b.mul(iy, b.i64(wd)))
            with b.if_else(b.icmp_unsigned("<", iy, b.i64(h))) as (then, other):
                with then:
                    image_row(b, s_row, d_row)
                with other:
                    zeros(b, d_row, 0, wr)

    k.phase(n * c * hp, body, bufs=[x, xp], cost=wr)


def _grouped_rows(k: Kernel, xp, consts, out, cshape, wshape, el) -> None:
    taps, bias, mult = consts
    c, hp, wq = cshape
    o, cg, kh, kw = wshape
    n_img, _, oh, ow = out.shape
    (sh, sw), (dh, dw) = k.attrs["stride"], k.attrs["dilation"]
    wr = sw * wq  # a padded row: sw runs of wq columns
    per_group = o // k.attrs["groups"]
    vt, it = llir.VectorType(el, LANES), llir.VectorType(I32, LANES)

    def body(b: KBuilder, lo, hi, worker):
        acc = b.var(vt, name="acc")
        with b.loop(lo, hi, name="row", unroll=False) as row:
            img = b.udiv(row, b.i64(o * oh))
            ch = b.urem(b.udiv(row, b.i64(oh)), b.i64(o))
            oy = b.urem(row, b.i64(oh))
            plane0 = b.add(b.mul(img, b.i64(c)), b.mul(b.udiv(ch, b.i64(per_group)),
                                                       b.i64(cg)))
            bv = b.splat(b.vload(bias.ptr, ch, I32), LANES)
            mv = b.splat(b.vload(mult.ptr, ch, F32), LANES)
            with b.loop(0, ow, LANES, name="ox", unroll=False) as ox:
                b.store(const(vt, 0), acc)
                with b.loop(0, cg, name="c", unroll=False) as ci:
                    base = b.add(b.mul(b.add(plane0, ci), b.i64(hp * wr)), ox)
                    t0 = b.mul(b.add(b.mul(ch, b.i64(cg)), ci), b.i64(kh * kw))
                    with b.loop(0, kh, name="ky") as ky:
                        r = b.add(base, b.mul(b.add(b.mul(oy, b.i64(sh)), b.mul(ky, b.i64(dh))),
                                              b.i64(wr)))
                        t = b.add(t0, b.mul(ky, b.i64(kw)))
                        with b.loop(0, kw, name="kx") as kx:
                            col = b.mul(kx, b.i64(dw))  # column ox * sw + col: run col % sw
                            at = b.add(r, b.add(b.mul(b.urem(col, b.i64(sw)), b.i64(wq)),
                                                b.udiv(col, b.i64(sw))))
                            v = b.vload(xp.ptr, at, el, LANES)
                            wv = b.splat(b.vload(taps.ptr, b.add(t, kx), el), LANES)
                            a = b.load(acc, typ=vt)
                            b.store(b.fmuladd(v, wv, a) if el == F32 else
                                    b.add(a, b.mul(v, wv)), acc)
                total = b.load(acc, typ=vt)
                if el == F32:  # an integer below 2**24 in magnitude: converts exactly
                    total = b.fptosi(total, it)
                with _strict(b):
                    y = requantize(b, b.add(total, bv), mv, k.attrs)
                _store_row(b, y, out, b.add(b.mul(row, b.i64(ow)), ox), b.sub(b.i64(ow), ox))

    k.phase(n_img * o * oh, body, bufs=[xp, taps, bias, mult, out],
            cost=2.0 * out.size * cg * kh * kw)


@lowering("qmax_pool2d")
def lower_qmax_pool2d(k: Kernel) -> None:
    """The grouped convolution's scaffolding with a maximum for the sum: the planes padded
    as x - least value (so that the padding, 0, never wins; ceil_mode's extra rows and
    columns are padding too), then per output row vectors of 16 maxima, + least value,
    stored as bytes."""
    x, out, a_ = k.inputs[0], k.outputs[0], k.attrs
    if out.size == 0:
        return
    n, c, h, wd = x.shape
    (kh, kw), (sh, sw), (dh, dw), pad = a_["kernel"], a_["stride"], a_["dilation"], a_["pad"]
    oh, ow = out.shape[2:]
    hp = max(h + pad[0] + pad[2], (oh - 1) * sh + dh * (kh - 1) + 1)
    wp = max(wd + pad[1] + pad[3], (ow - 1) * sw + dw * (kw - 1) + 1)
    wq = -(-wp // sw)
    least = RANGES[x.dtype][0]
    xp = k.new_scratch("i32", n * c * hp * sw * wq + 2 * LANES)
    _pad_planes(k, x, xp, hp, wq, I32, least)
    wr, vt = sw * wq, llir.VectorType(I32, LANES)

    def body(b: KBuilder, lo, hi, worker):
        acc = b.var(vt, name="acc")
        with b.loop(lo, hi, name="row", unroll=False) as row:  # (plane, oy)
            plane, oy = b.udiv(row, b.i64(oh)), b.urem(row, b.i64(oh))
            with b.loop(0, ow, LANES, name="ox", unroll=False) as ox:
                b.store(const(vt, 0), acc)
                with b.loop(0, kh, name="ky") as ky:
                    r = b.add(b.add(b.mul(plane, b.i64(hp * wr)), ox), b.mul(
                        b.add(b.mul(oy, b.i64(sh)), b.mul(ky, b.i64(dh))), b.i64(wr)))
                    with b.loop(0, kw, name="kx") as kx:
                        col = b.mul(kx, b.i64(dw))
                        at = b.add(r, b.add(b.mul(b.urem(col, b.i64(sw)), b.i64(wq)),
                                            b.udiv(col, b.i64(sw))))
                        v = b.vload(xp.ptr, at, I32, LANES)
                        m = b.load(acc, typ=vt)
                        b.store(b.select(b.icmp_signed(">", v, m), v, m), acc)
                y = b.trunc(b.add(b.load(acc, typ=vt), const(vt, least)),
                            llir.VectorType(I8, LANES))
                _store_row(b, y, out, b.add(b.mul(row, b.i64(ow)), ox), b.sub(b.i64(ow), ox))

    k.phase(n * c * oh, body, bufs=[xp, out], cost=out.size * kh * kw)


TILE = 64  # transposes move 64 x 64 element tiles: whole cache lines on both sides


def _to_nhwc(k: Kernel, x, dst, ld: int) -> None:
    """dst[n, y, x, c] = x[n, c, y, x] as unsigned bytes (^ 0x80 for i8), each pixel's row
    `ld` >= C bytes long, zeros after its C channels. Tiled: a work item is one image's run
    of TILE pixels; per TILE channels the source lines (TILE planes x TILE bytes) stay in L1
    while the destination rows are written in order, so neither side walks memory one byte
    per cache line."""
    n, c, h, wd = x.shape
    hw = h * wd
    flip = const(I8, -128 if x.dtype == "i8" else 0)
    blocks = -(-hw // TILE)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="tile", unroll=False) as item:
            img, p0 = b.udiv(item, b.i64(blocks)), b.mul(b.urem(item, b.i64(blocks)), b.i64(TILE))
            np_ = b.min_(b.sub(b.i64(hw), p0), TILE)
            src = b.at(x.ptr, b.add(b.mul(img, b.i64(c * hw)), p0), I8)
            d = b.at(dst.ptr, b.mul(b.add(b.mul(img, b.i64(hw)), p0), b.i64(ld)), I8)
            with b.loop(0, c, TILE, name="c0", unroll=False) as c0:
                nc = b.min_(b.sub(b.i64(c), c0), TILE)
                with b.loop(0, np_, name="p", unroll=False) as p:
                    s = b.at(src, b.add(b.mul(c0, b.i64(hw)), p), I8)
                    dr = b.at(d, b.add(b.mul(p, b.i64(ld)), c0), I8)
                    with b.loop(0, nc, name="ch") as ch:
                        v = b.xor(b.vload(s, b.mul(ch, b.i64(hw)), I8), flip)
                        b.vstore(v, dr, ch)
            if ld > c:
                with b.loop(0, np_, name="pp", unroll=False) as p, \
                        b.loop(c, ld, name="z") as i:
                    b.vstore(const(I8, 0), d, b.add(b.mul(p, b.i64(ld)), i))

    k.phase(n * blocks, body, bufs=[x, dst], cost=n * hw * ld)


def _im2col(k: Kernel, src, dst, xshape, wshape, oshape, kp: int) -> None:
    """Row (n, oh, ow) of A from the NHWC bytes: per tap (kh, kw) the C channel bytes, or C
    copies of the zero point (as the kernel sees it) outside the image; then zeros to kp.
    Without column dilation a window row inside the image is kw * C contiguous bytes: one
    copy instead of kw short ones (the 7x7 stem's C is 3)."""
    a_ = k.attrs
    _, c, h, wd = xshape
    _, _, kh, kw = wshape
    _, _, oh, ow = oshape
    (sh, sw), (dh, dw), pad = a_["stride"], a_["dilation"], a_["pad"]
    zp = const(I8, a_["x_zero_point"] ^ (-128 if k.inputs[0].dtype == "i8" else 0))

    def taps(b, s_row, d_row, row_in, x0):
        """Window row ky tap by tap: each tap's C bytes, or the zero point outside."""
        with b.loop(0, kw, name="kx") as kx:
            ix = b.add(x0, b.mul(kx, b.i64(dw)))
            inside = b.and_(row_in, b.icmp_unsigned("<", ix, b.i64(wd)))
            dt = b.at(d_row, b.mul(kx, b.i64(c)), I8)
            with b.if_else(inside, likely=True) as (then, other):
                with then:
                    s = b.at(s_row, b.mul(ix, b.i64(c)), I8)
                    with b.loop(0, c, name="c") as ch:
                        b.vstore(b.vload(s, ch, I8), dt, ch)
                with other, b.loop(0, c, name="cz") as ch:
                    b.vstore(zp, dt, ch)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="row") as row:
            img, p = b.udiv(row, b.i64(oh * ow)), b.urem(row, b.i64(oh * ow))
            y0 = b.sub(b.mul(b.udiv(p, b.i64(ow)), b.i64(sh)), b.i64(pad[0]))
            x0 = b.sub(b.mul(b.urem(p, b.i64(ow)), b.i64(sw)), b.i64(pad[1]))
            d = b.at(dst.ptr, b.mul(row, b.i64(kp)), I8)
            with b.loop(0, kh, name="ky") as ky:
                iy = b.add(y0, b.mul(ky, b.i64(dh)))
                row_in = b.icmp_unsigned("<", iy, b.i64(h))
                # the row's pixels; only dereferenced where row_in holds
                s_row = b.at(src.ptr, b.mul(b.mul(b.add(b.mul(img, b.i64(h)), iy), b.i64(wd)),
                                            b.i64(c)), I8)
                d_row = b.at(d, b.mul(ky, b.i64(kw * c)), I8)
                if dw != 1:
                    taps(b, s_row, d_row, row_in, x0)
                else:
                    _run_or_taps(b, s_row, d_row, row_in, x0, wd, kw, c, taps)
            with b.loop(c * kh * kw, kp, name="pad") as i:
                b.vstore(const(I8, 0), d, i)

    k.phase(oshape[0] * oh * ow, body, bufs=[src, dst], cost=oshape[0] * oh * ow * kp)


def _run_or_taps(b, s_row, d_row, row_in, x0, wd: int, kw: int, c: int, taps) -> None:
    """A window row wholly inside the image as one run of kw * C bytes, else tap by tap."""
    whole = b.and_(row_in, b.and_(b.icmp_unsigned("<", x0, b.i64(wd)),
                                  b.icmp_unsigned("<", b.add(x0, b.i64(kw - 1)), b.i64(wd))))
    with b.if_else(whole, likely=True) as (then, other):
        with then:
            s = b.at(s_row, b.mul(x0, b.i64(c)), I8)
            with b.loop(0, kw * c, name="run") as i:
                b.vstore(b.vload(s, i, I8), d_row, i)
        with other:
            taps(b, s_row, d_row, row_in, x0)


def _to_nchw(k: Kernel, src, out, n_img: int, o: int, pixels: int) -> None:
    """out[n, o, p] = src[n * pixels + p, o], tiled as `_to_nhwc`: per TILE x TILE tile the
    source rows stay in L1 while each output plane gets a contiguous run."""
    el = out.elem
    blocks = -(-pixels // TILE)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="tile", unroll=False) as item:
            img, p0 = b.udiv(item, b.i64(blocks)), b.mul(b.urem(item, b.i64(blocks)), b.i64(TILE))
            np_ = b.min_(b.sub(b.i64(pixels), p0), TILE)
            s0 = b.mul(b.add(b.mul(img, b.i64(pixels)), p0), b.i64(o))
            d0 = b.add(b.mul(img, b.i64(o * pixels)), p0)
            with b.loop(0, o, TILE, name="o0", unroll=False) as o0:
                no = b.min_(b.sub(b.i64(o), o0), TILE)
                with b.loop(0, no, name="oc", unroll=False) as oc:
                    ch = b.add(o0, oc)
                    s = b.add(s0, ch)
                    d = b.add(d0, b.mul(ch, b.i64(pixels)))
                    with b.loop(0, np_, name="p") as p:
                        v = b.vload(src.ptr, b.add(s, b.mul(p, b.i64(o))), el)
                        b.vstore(v, out.ptr, b.add(d, p))

    k.phase(n_img * blocks, body, bufs=[src, out], cost=n_img * o * pixels)


def _pack_a(k: Kernel, x, dst, m: int, kk: int, kp: int, signed: bool) -> None:
    """Rows of A as unsigned bytes (x ^ 0x80 for i8), K padded to a multiple of 4."""
    flip = const(I8, -128 if signed else 0)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="row") as row:
            src = b.at(x.ptr, b.mul(row, b.i64(kk)), I8)
            d = b.at(dst.ptr, b.mul(row, b.i64(kp)), I8)
            with b.loop(0, kk, name="k") as i:
                b.vstore(b.xor(b.vload(src, i, I8), flip), d, i)
            with b.loop(kk, kp, name="pad") as i:
                b.vstore(const(I8, 0), d, i)

    k.phase(m, body, bufs=[x, dst], cost=m * kp)


def _gemm(k, a_buf, lda, packed, comp, mult, out, m, n, kp, blk, vnni) -> None:
    out_el = F32 if out.dtype == "f32" else I8

    def tile_args(b: KBuilder, row, col, nvalid):
        bpanel = b.at(packed.ptr, b.mul(b.udiv(col, b.i64(blk.nr)), b.i64(kp * blk.nr)), I8)
        return [b.at(a_buf.ptr, b.mul(row, b.i64(lda)), I8), bpanel, b.i64(kp // 4),
                b.i64(lda), b.at(out.ptr, b.add(b.mul(row, b.i64(n)), col), out_el),
                b.i64(n), b.at(comp.ptr, col, I32), b.at(mult.ptr, col, F32), nvalid]

    part = ukernel(k, blk, m % blk.mr, vnni) if m % blk.mr else None
    packed_panels(k, m, n, blk, ukernel(k, blk, blk.mr, vnni), part, tile_args,
                  [a_buf, packed, comp, mult, out], cost=2.0 * m * n * kp)


# ---- qadd: the residual add of two quantized tensors ----------------------------------------
@lowering("qadd")
def lower_qadd(k: Kernel) -> None:
    """quant.qadd's float32 operations, in its order, per element (numpy broadcasting by
    map_kernel): bit-identical to dequantize, add, quantize."""
    a_ = k.attrs
    lo, hi = RANGES[a_["dtype"]]
    signed = [v.dtype == "i8" for v in k.inputs]

    def dequant(b, q, is_signed, zp, scale):
        wide = _like(q, I32)
        q = b.sext(q, wide) if is_signed else b.zext(q, wide)
        return b.fmul(b.sitofp(b.sub(q, const(wide, zp)), _like(q, F32)),
                      const(_like(q, F32), scale))

    def fn(b, xs):
        with _strict(b):
            s = b.fadd(dequant(b, xs[0], signed[0], a_["a_zero_point"], a_["a_scale"]),
                       dequant(b, xs[1], signed[1], a_["b_zero_point"], a_["b_scale"]))
            y = b.fadd(_roundeven(b, b.fdiv(s, const(s.type, a_["y_scale"]))),
                       const(s.type, float(a_["y_zero_point"])))
            y = _clamp(b, y, lo, hi)
            if a_["relu"]:
                zp = const(y.type, float(a_["y_zero_point"]))
                y = b.select(b.fcmp("<", y, zp), zp, y)
            return _to_int8(b, y)

    map_kernel(k, fn, cost=6, lanes=k.lanes("f32"))


# ---- qmatmul: both operands activations -----------------------------------------------------
@lowering("qmatmul")
def lower_qmatmul(k: Kernel) -> None:
    """Two phases. 1: b - b_zero_point as int32 rows (b is an activation: nothing to pack
    at compile time). 2: one work item per output row (batch, m), vectorised over N in
    chunks of 16 lanes: acc += splat(a[m, k] - a_zero_point) * b'[k, n:n+16] for every k,
    then qlinear's requantize with the one multiplier, stored masked to the row. The sums
    are exact: in int32 (wrapping like the reference's), or in float32 when no sum can
    reach 2**24 (K * max|a - za| * max|b - zb| < 2**24: attention's head sizes), where
    every product and partial sum is an integer float32 holds. The last chunk's dead
    lanes read the next row or the scratch's slack and are not stored."""
    a, b_in = k.inputs
    out, a_ = k.outputs[0], k.attrs
    if out.size == 0:
        return
    mm, kk, nn = a.shape[-2], a.shape[-1], b_in.shape[-1]
    batch = out.shape[:-2]
    n_batch = int(np.prod(batch, dtype=np.int64))
    a_idx, b_idx = (np.ascontiguousarray(np.broadcast_to(
        np.arange(int(np.prod(v.shape[:-2], dtype=np.int64))).reshape(v.shape[:-2]), batch),
        np.int64).reshape(-1) for v in (a, b_in))
    reach = [max(zp - RANGES[v.dtype][0], RANGES[v.dtype][1] - zp)
             for v, zp in ((a, a_["a_zero_point"]), (b_in, a_["b_zero_point"]))]
    el = F32 if kk * reach[0] * reach[1] < 2**24 else I32
    b32 = k.new_scratch("f32" if el == F32 else "i32", b_in.size + NB * LANES)
    _widen_rows(k, b_in, b32, a_["b_zero_point"], el)
    tables = (k.constant(a_idx, "a_batch"), k.constant(b_idx, "b_batch"))
    mult = float(multipliers(1, a_["a_scale"], (a_["b_scale"],), a_["y_scale"],
                             a_["dtype"])[0])
    attrs = {**a_, "relu": False}
    vt, it, ft = (llir.VectorType(t, LANES) for t in (el, I32, F32))
    a_signed, a_zp = a.dtype == "i8", a_["a_zero_point"]

    def body(b: KBuilder, lo, hi, worker):
        accs = [b.var(vt, name=f"acc{j}") for j in range(NB)]  # NB independent chains
        with b.loop(lo, hi, name="row", unroll=False) as row:
            bi = b.udiv(row, b.i64(mm))
            arow = b.add(b.mul(b.vload(tables[0].ptr, bi, I64), b.i64(mm * kk)),
                         b.mul(b.urem(row, b.i64(mm)), b.i64(kk)))
            bmat = b.mul(b.vload(tables[1].ptr, bi, I64), b.i64(kk * nn))
            with b.loop(0, nn, NB * LANES, name="n", unroll=False) as n0:
                for acc in accs:
                    b.store(const(vt, 0), acc)
                with b.loop(0, kk, name="k") as kx:
                    x = b.vload(a.ptr, b.add(arow, kx), I8)
                    x = b.sub(b.sext(x, I32) if a_signed else b.zext(x, I32), b.i32(a_zp))
                    xv = b.splat(x if el == I32 else b.sitofp(x, F32), LANES)
                    at = b.add(bmat, b.add(b.mul(kx, b.i64(nn)), n0))
                    for j, acc in enumerate(accs):
                        bv = b.vload(b32.ptr, b.add(at, b.i64(j * LANES)), el, LANES)
                        s = b.load(acc, typ=vt)
                        b.store(b.fmuladd(xv, bv, s) if el == F32 else
                                b.add(s, b.mul(xv, bv)), acc)
                for j, acc in enumerate(accs):  # chunks past the row store nothing
                    total = b.load(acc, typ=vt)
                    if el == F32:
                        total = b.fptosi(total, it)
                    with _strict(b):
                        y = requantize(b, total, const(ft, mult), attrs)
                    n_j = b.add(n0, b.i64(j * LANES))
                    _store_row(b, y, out, b.add(b.mul(row, b.i64(nn)), n_j),
                               b.sub(b.i64(nn), n_j))

    k.phase(n_batch * mm, body, bufs=[a, b32, *tables, out], cost=2.0 * out.size * kk)


NB = 4  # qmatmul: vectors of columns per pass over K (float adds have 4 cycles' latency)


def _widen_rows(k: Kernel, src, dst, zp: int, el) -> None:
    """dst[i] = src[i] - zp as int32 or float32 (el), a vector at a time."""
    signed = src.dtype == "i8"

    def step(b, i, width):
        v = b.vload(src.ptr, i, I8, width)
        v = b.sub(b.sext(v, _like(v, I32)) if signed else b.zext(v, _like(v, I32)),
                  const(_like(v, I32), zp))
        b.vstore(v if el == I32 else b.sitofp(v, _like(v, F32)), dst.ptr, i)

    chunk = 4096

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="chunk", unroll=False) as c:
            start = b.mul(c, b.i64(chunk))
            vector_loop(b, start, b.min_(b.add(start, b.i64(chunk)), src.size), LANES,
                        lambda i, width: step(b, i, width))

    k.phase(-(-src.size // chunk), body, bufs=[src, dst], cost=chunk)


def _store_row(b: KBuilder, y, out, at, left) -> None:
    """Store the 16 lanes of y at out[at:], or the first `left` of them (a row's end)."""
    with b.if_else(b.icmp_signed(">=", left, b.i64(LANES)), likely=True) as (full, part):
        with full:
            b.vstore(y, out.ptr, at)
        with part:
            if y.type.element == I8:
                _store_bytes(b, y, b.at(out.ptr, at, I8), left)
            else:
                b.masked_store(y, out.ptr, at, b.lane_mask(left, 0, LANES))
