"""Quantized kernels: quantize, dequantize, and the int8 GEMM behind qlinear.

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
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np
from llvmlite import ir as llir

from ir import LaminaError
from ir.ops.quant import RANGES, broadcastable, multipliers

from .builder import F32, I8, I32, I64, PTR, VOID, KBuilder, const, declare, lanes_of
from .elementwise import map_kernel
from .gemm import Blocking, blocks
from .kernel import Kernel
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
    into [pixels, O] scratch, then a transpose into NCHW. Groups > 1 (depthwise) has no
    kernel yet."""
    x, out = k.inputs[0], k.outputs[0]
    if k.attrs["groups"] != 1:
        raise LaminaError(f"{k.where}: the LLVM backend has no qconv2d kernel for groups > 1 "
                          "yet; keep such convolutions float")
    _require_weights(k)
    if out.size == 0:
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
    nhwc = k.new_scratch("u8", x.size)
    _to_nhwc(k, x, nhwc)
    cols = k.new_scratch("u8", m * kp)
    _im2col(k, nhwc, cols, x.shape, w.shape, out.shape, kp)
    c = k.new_scratch(out.dtype, m * o)
    _gemm(k, cols, kp, packed, comp, mult, c, m, o, kp, blk, has_vnni(k))
    _to_nchw(k, c, out, n_img, o, pixels)


def _to_nhwc(k: Kernel, x, dst) -> None:
    """dst[n, y, x, c] = x[n, c, y, x] as unsigned bytes (^ 0x80 for i8)."""
    n, c, h, wd = x.shape
    flip = const(I8, -128 if x.dtype == "i8" else 0)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="plane") as item:  # (n, c): one input plane
            img, ch = b.udiv(item, b.i64(c)), b.urem(item, b.i64(c))
            d0 = b.add(b.mul(img, b.i64(h * wd * c)), ch)
            s0 = b.mul(item, b.i64(h * wd))
            with b.loop(0, h * wd, name="p") as p:
                v = b.xor(b.vload(x.ptr, b.add(s0, p), I8), flip)
                b.vstore(v, dst.ptr, b.add(d0, b.mul(p, b.i64(c))))

    k.phase(n * c, body, bufs=[x, dst], cost=x.size)


def _im2col(k: Kernel, src, dst, xshape, wshape, oshape, kp: int) -> None:
    """Row (n, oh, ow) of A from the NHWC bytes: per tap (kh, kw) the C channel bytes, or C
    copies of the zero point (as the kernel sees it) outside the image; then zeros to kp."""
    a_ = k.attrs
    _, c, h, wd = xshape
    _, _, kh, kw = wshape
    _, _, oh, ow = oshape
    (sh, sw), (dh, dw), pad = a_["stride"], a_["dilation"], a_["pad"]
    zp = const(I8, a_["x_zero_point"] ^ (-128 if k.inputs[0].dtype == "i8" else 0))

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="row") as row:
            img, p = b.udiv(row, b.i64(oh * ow)), b.urem(row, b.i64(oh * ow))
            y0 = b.sub(b.mul(b.udiv(p, b.i64(ow)), b.i64(sh)), b.i64(pad[0]))
            x0 = b.sub(b.mul(b.urem(p, b.i64(ow)), b.i64(sw)), b.i64(pad[1]))
            d = b.at(dst.ptr, b.mul(row, b.i64(kp)), I8)
            with b.loop(0, kh * kw, name="tap") as tap:
                iy = b.add(y0, b.mul(b.udiv(tap, b.i64(kw)), b.i64(dh)))
                ix = b.add(x0, b.mul(b.urem(tap, b.i64(kw)), b.i64(dw)))
                inside = b.and_(b.icmp_unsigned("<", iy, b.i64(h)),
                                b.icmp_unsigned("<", ix, b.i64(wd)))
                dt = b.at(d, b.mul(tap, b.i64(c)), I8)
                with b.if_else(inside, likely=True) as (then, other):
                    with then:
                        pix = b.add(b.mul(img, b.i64(h)), iy)
                        s = b.at(src.ptr, b.mul(b.add(b.mul(pix, b.i64(wd)), ix), b.i64(c)),
                                 I8)
                        with b.loop(0, c, name="c") as ch:
                            b.vstore(b.vload(s, ch, I8), dt, ch)
                    with other, b.loop(0, c, name="cz") as ch:
                        b.vstore(zp, dt, ch)
            with b.loop(c * kh * kw, kp, name="pad") as i:
                b.vstore(const(I8, 0), d, i)

    k.phase(oshape[0] * oh * ow, body, bufs=[src, dst], cost=oshape[0] * oh * ow * kp)


def _to_nchw(k: Kernel, src, out, n_img: int, o: int, pixels: int) -> None:
    """out[n, o, p] = src[n * pixels + p, o]."""
    el = out.elem

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="plane") as item:
            img, ch = b.udiv(item, b.i64(o)), b.urem(item, b.i64(o))
            s0 = b.add(b.mul(img, b.i64(pixels * o)), ch)
            d0 = b.mul(item, b.i64(pixels))
            with b.loop(0, pixels, name="p") as p:
                v = b.vload(src.ptr, b.add(s0, b.mul(p, b.i64(o))), el)
                b.vstore(v, out.ptr, b.add(d0, p))

    k.phase(n_img * o, body, bufs=[src, out], cost=n_img * o * pixels)


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
    mc, nc = blocks(SimpleNamespace(m=m, n=n, batch=1), blk, k.cg.num_threads)
    n_ic, n_jc = -(-m // mc), -(-n // nc)
    full = ukernel(k, blk, blk.mr, vnni)
    part = ukernel(k, blk, m % blk.mr, vnni) if m % blk.mr else None
    out_el = F32 if out.dtype == "f32" else I8
    panel_bytes = kp * blk.nr

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="item") as item:
            row0 = b.mul(b.udiv(item, b.i64(n_jc)), b.i64(mc))
            col0 = b.mul(b.urem(item, b.i64(n_jc)), b.i64(nc))
            row_end = b.min_(b.add(row0, b.i64(mc)), m)
            ncols = b.min_(b.sub(b.i64(n), col0), nc)
            with b.loop(0, b.ceil_div(ncols, blk.nr), name="jr", unroll=False) as jr:
                col = b.add(col0, b.mul(jr, b.i64(blk.nr)))
                nvalid = b.min_(b.sub(b.i64(n), col), blk.nr)
                bpanel = b.at(packed.ptr, b.mul(b.udiv(col, b.i64(blk.nr)),
                                                b.i64(panel_bytes)), I8)
                cp, mp = b.at(comp.ptr, col, I32), b.at(mult.ptr, col, F32)
                with b.loop(row0, row_end, blk.mr, name="ir", unroll=False) as row:
                    args = [b.at(a_buf.ptr, b.mul(row, b.i64(lda)), I8), bpanel,
                            b.i64(kp // 4), b.i64(lda),
                            b.at(out.ptr, b.add(b.mul(row, b.i64(n)), col), out_el),
                            b.i64(n), cp, mp, nvalid]
                    if part is None:
                        b.call(full, args)
                    else:
                        _full_or_part(b, row, m, blk, full, part, args)

    k.phase(n_ic * n_jc, body, bufs=[a_buf, packed, comp, mult, out],
            cost=2.0 * m * n * kp)


def _full_or_part(b, row, m, blk, full, part, args) -> None:
    """The tile kernel for MR rows, or the one for the last, shorter row tile."""
    is_full = b.icmp_signed("<=", b.add(row, b.i64(blk.mr)), b.i64(m))
    with b.if_else(is_full) as (then, other):
        with then:
            b.call(full, args)
        with other:
            b.call(part, args)
