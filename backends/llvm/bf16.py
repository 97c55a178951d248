"""The bfloat16 GEMM behind bf16_linear and bf16_conv2d (ir/ops/bf16.py):

    C[M, N] = bf16(X[M, K]) @ W[N, K].T + bias        (W in bfloat16, two per i32 word)

int8.py's structure with AVX512-BF16 in place of VNNI: work items are blocks of MC rows x
NC columns, register tiles MR rows x NV vectors of 16 float32 accumulators, and
`vdpbf16ps` as the multiply-add: per 32-bit lane it multiplies two bfloat16 pairs and adds
both products to a float32 accumulator (the odd k's product first, then the even one's,
each add rounded to float32). Hence the layout: K in pairs, the weight words (already
pairs) packed at compile time as [N/NR][K/2][NR], and A's word at (m, pair g) broadcast to
every lane.

A phase first converts each row of X to bfloat16 words (`vcvtne2ps2bf16`: 32 floats to
one vector of 16 words, round to nearest even), zero-padded to a multiple of 32 values, so
the micro-kernel reads whole words and the padding adds exact zeros. Tiles are accumulated
over all of K and finished in registers: + bias, one store (masked for the last columns).

bf16_conv2d (groups 1) is the same GEMM over im2col rows: the input is converted once into
NHWC words (a pixel's channels 2j and 2j + 1 in word j), each window tap of a row is a run
of those words (none to copy for a pointwise convolution), the weight is re-paired at
compile time in the same (ky, kx, channel pair) order, and a tiled transpose turns the
[pixels, O] result into NCHW.

Without avx512bf16 (target_features="-avx512bf16", another CPU) the same phases use
portable LLVM IR: the conversion as integer arithmetic with the instruction's edge cases
(ties to even, NaN quieted, subnormals to zero) and the dot product as widening shifts
(a bfloat16 is the high half of a float32) and float32 multiply and add in the same order.
Every product is exact in float32, so both paths give the same bits, except where a
product or sum is a float32 subnormal: the instruction flushes those to zero.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir as llir

from ir import LaminaError

from .builder import F32, I32, I64, PTR, VOID, KBuilder, const, declare
from .codegen import weight_recipe
from .gemm import Blocking, packed_panels
from .kernel import Kernel
from .registry import lowering

LANES = 16  # float32 lanes of a 512-bit vector; narrower targets split it (portable path)
CHUNK = 2 * LANES  # values converted at once: one vector of words
DPBF16 = "llvm.x86.avx512bf16.dpbf16ps.512"
CVT = "llvm.x86.avx512bf16.cvtne2ps2bf16.512"


class _BFloat(llir.Type):
    """LLVM's `bfloat`, which llvmlite lacks: only the intrinsics' signatures use it."""

    def _to_string(self) -> str:
        return "bfloat"

    def __eq__(self, other) -> bool:
        return isinstance(other, _BFloat)

    def __hash__(self) -> int:
        return hash("bfloat")


I16 = llir.IntType(16)
WORDS = llir.VectorType(I32, LANES)  # 16 words: 32 bfloat16 values
FLOATS = llir.VectorType(F32, LANES)
BF16X32 = llir.VectorType(_BFloat(), CHUNK)


def has_bf16(k: Kernel) -> bool:
    return "+avx512bf16" in k.cg.target.features.split(",")


def blocking(k: Kernel) -> Blocking:
    """8 x 2 vectors of accumulators with 32 registers (AVX-512), 4 x 2 otherwise: the
    portable dot product needs registers for the widened operands."""
    return Blocking(8, 2, LANES) if k.cg.target.vector_bytes == 64 else Blocking(4, 2, LANES)


# ---- packing the weight at compile time --------------------------------------------------------
@weight_recipe
def packed_words(node, nr: int) -> np.ndarray:
    """bf16_linear's weight words [N, K/2] as panels."""
    return _panels(np.asarray(node.graph.weights[node.inputs[1].name], np.int32), nr)


def _panels(w: np.ndarray, nr: int) -> np.ndarray:
    """Words [N, KW] -> [ceil(N/NR)][KW][NR], zero-padded columns."""
    n, kw = w.shape
    npad = -(-n // nr) * nr
    padded = np.zeros((npad, kw), np.int32)
    padded[:n] = w
    return np.ascontiguousarray(padded.reshape(npad // nr, nr, kw).transpose(0, 2, 1)).ravel()


# ---- float32 -> bfloat16 words ---------------------------------------------------------------
def to_words(b: KBuilder, lo, hi, native: bool):
    """32 floats (lo: the first 16, hi: the next 16) -> 16 words of two bfloat16 values,
    value 2j in the low half of word j (ir.ops.bf16.to_bf16 per value)."""
    if native:
        fn = declare(b.module, CVT, BF16X32, [FLOATS, FLOATS])
        # the second operand fills words 0..7 (values 0..15), the first words 8..15
        return b.bitcast(b.call(fn, [hi, lo]), WORDS)
    halves = [b.trunc(_round_bits(b, v), llir.VectorType(I16, LANES)) for v in (lo, hi)]
    both = b.shuffle_vector(halves[0], halves[1],
                            llir.Constant(llir.VectorType(I32, CHUNK), list(range(CHUNK))))
    return b.bitcast(both, WORDS)


def _round_bits(b: KBuilder, v):
    """float32 lanes -> their bfloat16 bits in the low 16 bits of each i32 lane: round to
    nearest even; NaN quieted; a subnormal becomes a zero of its sign (vcvtne2ps2bf16)."""
    bits = b.bitcast(v, WORDS)

    def c(x):
        return const(WORDS, x)

    top = b.lshr(bits, c(16))
    rounded = b.lshr(b.add(b.add(bits, c(0x7FFF)), b.and_(top, c(1))), c(16))
    subnormal = b.icmp_unsigned("==", b.and_(bits, c(0x7F800000)), c(0))
    out = b.select(subnormal, b.and_(top, c(0x8000)), rounded)
    nan = b.icmp_unsigned(">", b.and_(bits, c(0x7FFFFFFF)), c(0x7F800000))
    return b.select(nan, b.or_(top, c(0x40)), out)


def _convert_row(b: KBuilder, src, d, kk: int, native: bool) -> None:
    """kk floats at src -> words at d: whole chunks of 32 values, then the last chunk
    through masked loads (missing values read as 0.0, an exact bfloat16 zero)."""
    full, rest = divmod(kk, CHUNK)
    with b.loop(0, full, name="chunk") as ch:
        at = b.mul(ch, b.i64(CHUNK))
        v0 = b.vload(src, at, F32, LANES)
        v1 = b.vload(src, b.add(at, b.i64(LANES)), F32, LANES)
        b.vstore(to_words(b, v0, v1, native), d, b.mul(ch, b.i64(LANES)))
    if rest:
        left = b.i64(rest)
        v0, v1 = (b.masked_load(src, b.i64(full * CHUNK + f), F32, LANES,
                                b.lane_mask(left, f, LANES)) for f in (0, LANES))
        b.vstore(to_words(b, v0, v1, native), d, b.i64(full * LANES))


def _pack_a(k: Kernel, x, dst, m: int, kk: int, lda: int, native: bool) -> None:
    """Row r of X [M, K] -> lda words at dst + r * lda."""

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="row") as row:
            _convert_row(b, b.at(x.ptr, b.mul(row, b.i64(kk)), F32),
                         b.at(dst.ptr, b.mul(row, b.i64(lda)), I32), kk, native)

    k.phase(m, body, bufs=[x, dst], cost=m * lda * 2)


# ---- the micro-kernel ---------------------------------------------------------------------------
def dot2(b: KBuilder, acc, a, w, native: bool):
    """acc + a.odd * w.odd + a.even * w.even per lane (<16 x i32> words of two bfloat16)."""
    if native:
        fn = declare(b.module, DPBF16, FLOATS, [FLOATS, BF16X32, BF16X32])
        return b.call(fn, [acc, b.bitcast(a, BF16X32), b.bitcast(w, BF16X32)])
    high = const(WORDS, -65536)  # 0xFFFF0000

    def odd(v):
        return b.bitcast(b.and_(v, high), FLOATS)

    def even(v):
        return b.bitcast(b.shl(v, const(WORDS, 16)), FLOATS)

    # exact products, each add rounded: the instruction's order (odd first)
    acc = b.fadd(acc, b.fmul(odd(a), odd(w)))
    return b.fadd(acc, b.fmul(even(a), even(w)))


UK_ARGS = [PTR, PTR, I64, I64, PTR, I64, PTR, I64]


def ukernel(k: Kernel, blk: Blocking, mr: int, native: bool, bias: bool) -> llir.Function:
    """void uk(a, b, kw, lda, c, ldc, bias, nvalid): one MR x NR tile over all of K.

    a: MR rows of words (row stride lda); b: the packed panel (kw words per column); c:
    the tile's origin in the output (row stride ldc); bias: the tile's first column (unused
    without a bias); nvalid: valid columns (<= NR), the rest masked."""
    cg = k.cg
    key = ("bf16.uk", blk, mr, native, bias, cg.fp_mode)
    if key in cg.phase_fns:
        return cg.phase_fns[key]
    fn = llir.Function(cg.module, llir.FunctionType(VOID, UK_ARGS), cg.unique(f"bf16.uk{mr}"))
    fn.linkage = "internal"
    for i in (0, 1, 4, 6):
        fn.args[i].add_attribute("noalias")
    ap, bp, kw, lda, c, ldc, bias_p, nvalid = fn.args
    # strict: fast-math's reassociation would change the sums the two paths agree on
    b = KBuilder(fn.append_basic_block("entry"), ())
    acc = [[b.var(FLOATS, const(FLOATS, 0), f"acc{r}_{v}") for v in range(blk.nv)]
           for r in range(mr)]
    rows = [b.at(ap, b.mul(b.i64(r), lda), I32) for r in range(mr)]
    with b.loop(0, kw, name="g") as g:
        base = b.mul(g, b.i64(blk.nr))
        bv = [b.vload(bp, b.add(base, b.i64(v * LANES)), I32, LANES) for v in range(blk.nv)]
        for r in range(mr):
            av = b.splat(b.vload(rows[r], g, I32), LANES)
            for v in range(blk.nv):
                b.store(dot2(b, b.load(acc[r][v], typ=FLOATS), av, bv[v], native), acc[r][v])
    full = b.icmp_signed("==", nvalid, b.i64(blk.nr))
    with b.if_else(full, likely=True) as (then, other):
        with then:
            _epilogue(b, blk, mr, acc, c, ldc, bias_p if bias else None, None)
        with other:
            masks = [b.lane_mask(nvalid, v * LANES, LANES) for v in range(blk.nv)]
            _epilogue(b, blk, mr, acc, c, ldc, bias_p if bias else None, masks)
    b.ret_void()
    cg.phase_fns[key] = fn
    return fn


def _epilogue(b, blk, mr, acc, c, ldc, bias, masks) -> None:
    for v in range(blk.nv):
        m = masks[v] if masks else None
        bv = None
        if bias is not None:
            bv = b.vload(bias, b.i64(v * LANES), F32, LANES) if m is None else \
                b.masked_load(bias, b.i64(v * LANES), F32, LANES, m)
        for r in range(mr):
            y = b.load(acc[r][v], typ=FLOATS)
            y = b.fadd(y, bv) if bv is not None else y
            at = b.add(b.mul(b.i64(r), ldc), b.i64(v * LANES))
            if m is None:
                b.vstore(y, c, at)
            else:
                b.masked_store(y, c, at, m)


# ---- the phases -----------------------------------------------------------------------------
@lowering("bf16_linear")
def lower_bf16_linear(k: Kernel) -> None:
    x, out = k.inputs[0], k.outputs[0]
    _require_weight(k)
    if out.size == 0:
        return
    n, kw = k.inputs[1].shape
    kk, m = x.shape[-1], out.size // n
    blk, native = blocking(k), has_bf16(k)
    packed = k.weight_constant("packed", packed_words, blk.nr)
    lda = -(-kk // CHUNK) * LANES  # words per converted row: whole chunks of 32 values
    a_buf = k.new_scratch("i32", m * lda)
    _pack_a(k, x, a_buf, m, kk, lda, native)
    bias = k.inputs[2] if len(k.inputs) == 3 else None
    _gemm(k, a_buf, lda, packed, bias, out, m, n, kw, blk, native)


@lowering("bf16_conv2d")
def lower_bf16_conv2d(k: Kernel) -> None:
    """The input converted once to bfloat16 words in NHWC order (a word: a pixel's channels
    2j and 2j + 1, a zero channel after an odd C), im2col copying each window tap as a run
    of those words (K in (ky, kx, channel pair) order; the weight is packed in the same
    order), the GEMM into [pixels, O] scratch with the bias, then a transpose into NCHW."""
    x, out = k.inputs[0], k.outputs[0]
    _require_weight(k)
    if out.size == 0:
        return
    n_img, c, h, wd = x.shape
    o = k.inputs[1].shape[0]
    kh, kw = k.attrs["kernel"]
    cw = -(-c // 2)
    kwords = kh * kw * cw
    pixels = out.shape[2] * out.shape[3]
    m = n_img * pixels
    blk, native = blocking(k), has_bf16(k)
    packed = k.weight_constant("packed", packed_conv_words, blk.nr, c, kh, kw)
    nhwc = k.new_scratch("i32", n_img * h * wd * cw)
    _to_nhwc_words(k, x, nhwc, native)
    a = k.attrs
    if (kh, kw) == (1, 1) and a["stride"] == (1, 1) and not any(a["pad"]):
        a_buf = nhwc  # a pointwise convolution: the NHWC words are A already
    else:
        a_buf = k.new_scratch("i32", m * kwords)
        _im2col_words(k, nhwc, a_buf, x.shape, out.shape, cw)
    c_buf = k.new_scratch("f32", m * o)
    bias = k.inputs[2] if len(k.inputs) == 3 else None
    _gemm(k, a_buf, kwords, packed, bias, c_buf, m, o, kwords, blk, native)
    _to_nchw(k, c_buf, out, n_img, o, pixels)


@weight_recipe
def packed_conv_words(node, nr: int, c: int, kh: int, kw: int) -> np.ndarray:
    """bf16_conv2d's words [O, ceil(C*KH*KW/2)] (pairs along (c, kh, kw)) re-paired along
    channels in (kh, kw, c) order, C padded to even, then packed as panels. Bit patterns
    move as uint16 halves (x86 is little-endian: a word's low half comes first)."""
    w = np.ascontiguousarray(node.graph.weights[node.inputs[1].name], np.int32)
    o = w.shape[0]
    halves = w.view(np.uint16).reshape(o, -1)[:, :c * kh * kw].reshape(o, c, kh, kw)
    taps = np.zeros((o, kh, kw, c + c % 2), np.uint16)
    taps[..., :c] = halves.transpose(0, 2, 3, 1)
    return _panels(taps.reshape(o, -1).view(np.int32), nr)


def _require_weight(k: Kernel) -> None:
    if not k.is_weight(1):
        raise LaminaError(f"{k.where}: the LLVM backend needs {k.node.op}'s weight as a graph "
                          "weight (it is packed at compile time)")


def _pair_words(b: KBuilder, lo, hi, native: bool):
    """Two vectors of 16 floats -> 16 words, word i = bf16(lo[i]) | bf16(hi[i]) << 16."""
    if native:
        fn = declare(b.module, CVT, BF16X32, [FLOATS, FLOATS])
        halves = b.bitcast(b.call(fn, [hi, lo]), llir.VectorType(I16, CHUNK))
        zip_ = [j for i in range(LANES) for j in (i, i + LANES)]
        both = b.shuffle_vector(halves, halves, llir.Constant(llir.VectorType(I32, CHUNK), zip_))
        return b.bitcast(both, WORDS)
    return b.or_(_round_bits(b, lo), b.shl(_round_bits(b, hi), const(WORDS, 16)))


def _to_nhwc_words(k: Kernel, x, dst, native: bool) -> None:
    """dst[n, y, x, j] = the word of channels 2j, 2j + 1 of pixel (y, x): 16 pixels of a row
    at a time (contiguous loads from two planes), each word stored at its pixel."""
    n_img, c, h, wd = x.shape
    cw = -(-c // 2)
    full, rest = divmod(wd, LANES)
    zeros = const(FLOATS, 0.0)

    def block(b: KBuilder, src_row, dst_row, x0, count):
        mask = None if count is None else b.lane_mask(count, 0, LANES)
        for_lanes = LANES if count is None else b.min_(count, LANES)
        with b.loop(0, cw, name="j") as j:
            def plane(ch):
                at = b.add(b.mul(ch, b.i64(h * wd)), x0)
                return b.vload(src_row, at, F32, LANES) if mask is None else \
                    b.masked_load(src_row, at, F32, LANES, mask)
            lo_c = b.mul(j, b.i64(2))
            hi_c = b.add(lo_c, b.i64(1))
            lo = plane(lo_c)
            if c % 2:  # the last pair's high channel does not exist: a zero
                has_hi = b.icmp_signed("<", hi_c, b.i64(c))
                hi = b.select(has_hi, plane(b.select(has_hi, hi_c, lo_c)), zeros)
            else:
                hi = plane(hi_c)
            words = _pair_words(b, lo, hi, native)
            d = b.at(dst_row, b.add(b.mul(x0, b.i64(cw)), j), I32)
            with b.loop(0, for_lanes, name="lane") as i:
                b.vstore(b.extract_element(words, b.trunc(i, I32)), d, b.mul(i, b.i64(cw)))

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="row") as r:  # (n, y)
            img, y = b.udiv(r, b.i64(h)), b.urem(r, b.i64(h))
            src_row = b.at(x.ptr, b.add(b.mul(img, b.i64(c * h * wd)), b.mul(y, b.i64(wd))),
                           F32)
            dst_row = b.at(dst.ptr, b.mul(r, b.i64(wd * cw)), I32)
            with b.loop(0, full, name="xb") as xb:
                block(b, src_row, dst_row, b.mul(xb, b.i64(LANES)), None)
            if rest:
                block(b, src_row, dst_row, b.i64(full * LANES), b.i64(rest))

    k.phase(n_img * h, body, bufs=[x, dst], cost=x.size * 2)


def _copy_words(b: KBuilder, src, dst, count: int) -> None:
    """count words from src (or zeros, src None) to dst: whole vectors, then a masked one."""
    full, rest = divmod(count, LANES)
    zero = const(WORDS, 0)
    with b.loop(0, full, name="w") as i:
        at = b.mul(i, b.i64(LANES))
        b.vstore(zero if src is None else b.vload(src, at, I32, LANES), dst, at)
    if rest:
        mask = b.lane_mask(b.i64(rest), 0, LANES)
        at = b.i64(full * LANES)
        v = zero if src is None else b.masked_load(src, at, I32, LANES, mask)
        b.masked_store(v, dst, at, mask)


def _im2col_words(k: Kernel, src, dst, xshape, oshape, cw: int) -> None:
    """Row (n, oy, ox) of A: per tap (ky, kx) the cw words of input pixel (oy*sh - top +
    ky*dh, ox*sw - left + kx*dw), or zeros outside the image."""
    a_ = k.attrs
    _, _, h, wd = xshape
    (kh, kw), (sh, sw), (dh, dw), pad = a_["kernel"], a_["stride"], a_["dilation"], a_["pad"]
    _, _, oh, ow = oshape
    kwords = kh * kw * cw

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="row") as r:
            img, p = b.udiv(r, b.i64(oh * ow)), b.urem(r, b.i64(oh * ow))
            y0 = b.sub(b.mul(b.udiv(p, b.i64(ow)), b.i64(sh)), b.i64(pad[0]))
            x0 = b.sub(b.mul(b.urem(p, b.i64(ow)), b.i64(sw)), b.i64(pad[1]))
            d = b.at(dst.ptr, b.mul(r, b.i64(kwords)), I32)
            with b.loop(0, kh * kw, name="tap") as tap:
                iy = b.add(y0, b.mul(b.udiv(tap, b.i64(kw)), b.i64(dh)))
                ix = b.add(x0, b.mul(b.urem(tap, b.i64(kw)), b.i64(dw)))
                inside = b.and_(b.icmp_unsigned("<", iy, b.i64(h)),
                                b.icmp_unsigned("<", ix, b.i64(wd)))
                dt = b.at(d, b.mul(tap, b.i64(cw)), I32)
                with b.if_else(inside, likely=True) as (then, other):
                    with then:
                        pix = b.add(b.mul(b.add(b.mul(img, b.i64(h)), iy), b.i64(wd)), ix)
                        _copy_words(b, b.at(src.ptr, b.mul(pix, b.i64(cw)), I32), dt, cw)
                    with other:
                        _copy_words(b, None, dt, cw)

    k.phase(oshape[0] * oh * ow, body, bufs=[src, dst], cost=oshape[0] * oh * ow * kwords)


def _to_nchw(k: Kernel, src, out, n_img: int, o: int, pixels: int) -> None:
    """out[n, o, p] = src[n * pixels + p, o], in tiles of 16 channels x 16 pixels (each
    tile reads 16 lines of src and writes 16 lines of out)."""
    t = LANES
    to, tp = -(-o // t), -(-pixels // t)

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="tile") as item:  # (n, channel tile, pixel tile)
            img, rest = b.udiv(item, b.i64(to * tp)), b.urem(item, b.i64(to * tp))
            o0 = b.mul(b.udiv(rest, b.i64(tp)), b.i64(t))
            p0 = b.mul(b.urem(rest, b.i64(tp)), b.i64(t))
            s0 = b.at(src.ptr, b.mul(b.add(b.mul(img, b.i64(pixels)), p0), b.i64(o)), F32)
            d0 = b.at(out.ptr, b.add(b.mul(img, b.i64(o * pixels)), p0), F32)
            with b.loop(o0, b.min_(b.add(o0, b.i64(t)), o), name="ch") as ch:
                d = b.at(d0, b.mul(ch, b.i64(pixels)), F32)
                with b.loop(0, b.min_(b.sub(b.i64(pixels), p0), t), name="p") as p:
                    b.vstore(b.vload(s0, b.add(b.mul(p, b.i64(o)), ch), F32), d, p)

    k.phase(n_img * to * tp, body, bufs=[src, out], cost=n_img * o * pixels)


def _gemm(k, a_buf, lda, packed, bias, out, m, n, kw, blk, native) -> None:
    has_bias = bias is not None
    null = llir.Constant(PTR, None)

    def tile_args(b: KBuilder, row, col, nvalid):
        bpanel = b.at(packed.ptr, b.mul(b.udiv(col, b.i64(blk.nr)), b.i64(kw * blk.nr)), I32)
        return [b.at(a_buf.ptr, b.mul(row, b.i64(lda)), I32), bpanel, b.i64(kw), b.i64(lda),
                b.at(out.ptr, b.add(b.mul(row, b.i64(n)), col), F32), b.i64(n),
                b.at(bias.ptr, col, F32) if has_bias else null, nvalid]

    part = ukernel(k, blk, m % blk.mr, native, has_bias) if m % blk.mr else None
    packed_panels(k, m, n, blk, ukernel(k, blk, blk.mr, native, has_bias), part, tile_args,
                  [a_buf, packed, out] + ([bias] if has_bias else []),
                  cost=2.0 * m * n * kw * 2)
