"""fold_quantized where both operands are activations: matmul -> qmatmul (attention's Q.K^T
and P.V), add [-> relu] -> qadd, concat of equally quantized inputs -> a concat of bytes.
Per fold: the IR it makes, a case where it must not fire, and numerics -- the folded graph
against the QDQ float graph (within one step for qmatmul, bit for bit for qadd and concat),
the integer results against numpy written here, and the native kernels against both."""

from __future__ import annotations

import numpy as np
import pytest

import compiler
import ir
from backends import llvm
from backends.reference import run

from .helpers import apply, expect_ir, ops

RNG = np.random.default_rng(41)

ATTENTION = """
graph @main(%q: f32[2,4,8,16], %kt: f32[2,4,16,8]) -> (u8[2,4,8,8]) {
  %qq: i8[2,4,8,16] = quantize(%q) {dtype="i8", scale=[0.03], zero_point=[-2]}
  %qd: f32[2,4,8,16] = dequantize(%qq) {scale=[0.03], zero_point=[-2]}
  %kq: u8[2,4,16,8] = quantize(%kt) {scale=[0.025], zero_point=[128]}
  %kd: f32[2,4,16,8] = dequantize(%kq) {scale=[0.025], zero_point=[128]}
  %s: f32[2,4,8,8] = matmul(%qd, %kd)
  %sq: u8[2,4,8,8] = quantize(%s) {scale=[0.04], zero_point=[100]}
  return %sq
}
"""


def inputs(graph, scale=1.5):
    return [(RNG.standard_normal(v.type.shape) * scale).astype(np.float32)
            for v in graph.inputs]


def numpy_qmatmul(a, b, za, zb, sa, sb, sy, zy):
    """Exact int64 products, then float32(acc) * float32(sa * sb / sy), rint, + zy, clip."""
    acc = np.einsum("...mk,...kn->...mn", a.astype(np.int64) - za, b.astype(np.int64) - zb)
    y = acc.astype(np.float32) * np.float32(sa * sb / sy)
    return np.clip(np.rint(y) + zy, 0, 255).astype(np.uint8)


def test_matmul_of_two_activations_folds_into_qmatmul():
    g = ir.parse(ATTENTION)
    out, stats = apply("fold_quantized", g)
    assert stats.rewrites() == {"fold_quantized.qmatmul": 1}
    expect_ir(out, """
graph @main(%q: f32[2,4,8,16], %kt: f32[2,4,16,8]) -> (u8[2,4,8,8]) {
  %qq: i8[2,4,8,16] = quantize(%q) {dtype="i8", scale=[0.03], zero_point=[-2]}
  %kq: u8[2,4,16,8] = quantize(%kt) {scale=[0.025], zero_point=[128]}
  %s.q: u8[2,4,8,8] = qmatmul(%qq, %kq) {a_scale=0.03, a_zero_point=-2, b_scale=0.025,
      b_zero_point=128, dtype="u8", y_scale=0.04, y_zero_point=100}
  return %s.q
}""")


def test_qmatmul_fold_is_within_one_step_and_matches_numpy():
    g = ir.parse(ATTENTION)
    out, _ = apply("fold_quantized", g)
    fn = llvm.compile_graph(out, num_threads=2)
    for _ in range(4):
        q, kt = inputs(g)
        before, after = run(g, q, kt)[0].astype(int), run(out, q, kt)[0]
        assert np.abs(before - after.astype(int)).max() <= 1
        qq = np.clip(np.rint(q / np.float32(0.03)) - 2, -128, 127).astype(np.int8)
        kq = np.clip(np.rint(kt / np.float32(0.025)) + 128, 0, 255).astype(np.uint8)
        want = numpy_qmatmul(qq, kq, -2, 128, 0.03, 0.025, 0.04, 100)
        np.testing.assert_array_equal(after, want)
        np.testing.assert_array_equal(fn(q, kt), want)


def test_qmatmul_without_closing_quantize_gives_f32():
    text = ATTENTION.replace("-> (u8[2,4,8,8])", "-> (f32[2,4,8,8])").replace(
        "  %sq: u8[2,4,8,8] = quantize(%s) {scale=[0.04], zero_point=[100]}\n", "").replace(
        "return %sq", "return %s")
    g = ir.parse(text)
    out, _ = apply("fold_quantized", g)
    (node,) = [n for n in out.nodes if n.op == "qmatmul"]
    assert node.attrs["dtype"] == "f32"
    q, kt = inputs(g)
    np.testing.assert_allclose(run(out, q, kt)[0], run(g, q, kt)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(llvm.compile_graph(out, num_threads=1)(q, kt),
                                  run(out, q, kt)[0])


@pytest.mark.parametrize("change", ["per_axis_operand", "float_operand", "rank1"])
def test_qmatmul_does_not_fire(change):
    text = ATTENTION
    if change == "per_axis_operand":  # per-channel parameters: no qmatmul for them
        text = text.replace("%kd: f32[2,4,16,8] = dequantize(%kq) {scale=[0.025], "
                            "zero_point=[128]}", "%kd: f32[2,4,16,8] = dequantize(%kq) "
                            "{axis=3, scale=[0.1,0.1,0.1,0.1,0.2,0.2,0.2,0.2]}")
    elif change == "float_operand":
        text = text.replace("matmul(%qd, %kd)", "matmul(%qd, %kt)")
    else:
        text = """
graph @main(%a: f32[16], %b: f32[16,8]) -> (u8[8]) {
  %aq: u8[16] = quantize(%a) {scale=[0.03]}
  %ad: f32[16] = dequantize(%aq) {scale=[0.03]}
  %bq: u8[16,8] = quantize(%b) {scale=[0.03]}
  %bd: f32[16,8] = dequantize(%bq) {scale=[0.03]}
  %s: f32[8] = matmul(%ad, %bd)
  %sq: u8[8] = quantize(%s) {scale=[0.04]}
  return %sq
}"""
    g = ir.parse(text)
    out, _ = apply(["fold_quantized", "eliminate_dead_code"], g)
    assert "qmatmul" not in ops(out) and "matmul" in ops(out)


# ---- qadd -----------------------------------------------------------------------------------
RESIDUAL = """
graph @main(%x: f32[2,8,5,5], %r: f32[2,8,5,5]) -> (u8[2,8,5,5]) {
  %xq: u8[2,8,5,5] = quantize(%x) {scale=[0.02], zero_point=[120]}
  %xd: f32[2,8,5,5] = dequantize(%xq) {scale=[0.02], zero_point=[120]}
  %rq: i8[2,8,5,5] = quantize(%r) {dtype="i8", scale=[0.031], zero_point=[5]}
  %rd: f32[2,8,5,5] = dequantize(%rq) {scale=[0.031], zero_point=[5]}
  %s: f32[2,8,5,5] = add(%xd, %rd)
  %a: f32[2,8,5,5] = relu(%s)
  %y: u8[2,8,5,5] = quantize(%a) {scale=[0.03], zero_point=[0]}
  return %y
}
"""


def test_residual_add_folds_into_qadd_exactly():
    g = ir.parse(RESIDUAL)
    out, stats = apply("fold_quantized", g)
    assert stats.rewrites() == {"fold_quantized.qadd": 1}
    assert ops(out) == {"quantize": 2, "qadd": 1}
    (node,) = [n for n in out.nodes if n.op == "qadd"]
    assert node.attrs == {"a_scale": 0.02, "a_zero_point": 120, "b_scale": 0.031,
                          "b_zero_point": 5, "y_scale": 0.03, "y_zero_point": 0,
                          "dtype": "u8", "relu": True}
    fn = llvm.compile_graph(out, num_threads=1)
    for scale in (0.5, 2.0, 8.0):  # 8: saturating both ways
        x, r = inputs(g, scale)
        want = run(g, x, r)[0]  # the QDQ float graph: bit for bit
        np.testing.assert_array_equal(run(out, x, r)[0], want)
        np.testing.assert_array_equal(fn(x, r), want)
        # and numpy written here: dequantize, add, relu, quantize in float32
        xq = np.clip(np.rint(x / np.float32(0.02)) + 120, 0, 255)
        rq = np.clip(np.rint(r / np.float32(0.031)) + 5, -128, 127)
        s = (xq - 120).astype(np.float32) * np.float32(0.02) + \
            (rq - 5).astype(np.float32) * np.float32(0.031)
        y = np.clip(np.rint(np.maximum(s, 0) / np.float32(0.03)), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(want, y)


def test_add_without_closing_quantize_stays_float():
    text = RESIDUAL.replace("-> (u8[2,8,5,5])", "-> (f32[2,8,5,5])").replace(
        "  %y: u8[2,8,5,5] = quantize(%a) {scale=[0.03], zero_point=[0]}\n", "").replace(
        "return %y", "return %a")
    out, stats = apply("fold_quantized", ir.parse(text))
    assert "qadd" not in ops(out) and not stats.rewrites()


# ---- concat ---------------------------------------------------------------------------------
CONCAT = """
graph @main(%a: f32[1,3,4,4], %b: f32[1,5,4,4]) -> (u8[1,8,4,4]) {
  %aq: u8[1,3,4,4] = quantize(%a) {scale=[0.05], zero_point=[128]}
  %ad: f32[1,3,4,4] = dequantize(%aq) {scale=[0.05], zero_point=[128]}
  %bq: u8[1,5,4,4] = quantize(%b) {scale=[0.05], zero_point=[128]}
  %bd: f32[1,5,4,4] = dequantize(%bq) {scale=[0.05], zero_point=[128]}
  %c: f32[1,8,4,4] = concat(%ad, %bd) {axis=1}
  %cq: u8[1,8,4,4] = quantize(%c) {scale=[0.05], zero_point=[128]}
  return %cq
}
"""


def test_concat_of_equally_quantized_inputs_moves_bytes():
    g = ir.parse(CONCAT)
    out, stats = apply("fold_quantized", g)
    assert stats.rewrites() == {"fold_quantized.concat_u8": 1}
    expect_ir(out, """
graph @main(%a: f32[1,3,4,4], %b: f32[1,5,4,4]) -> (u8[1,8,4,4]) {
  %aq: u8[1,3,4,4] = quantize(%a) {scale=[0.05], zero_point=[128]}
  %bq: u8[1,5,4,4] = quantize(%b) {scale=[0.05], zero_point=[128]}
  %c.q: u8[1,8,4,4] = concat(%aq, %bq) {axis=1}
  return %c.q
}""")
    fn = llvm.compile_graph(out, num_threads=1)
    for scale in (1.0, 10.0):
        a, b = inputs(g, scale)
        want = np.concatenate([np.clip(np.rint(v / np.float32(0.05)) + 128, 0, 255)
                               for v in (a, b)], axis=1).astype(np.uint8)
        np.testing.assert_array_equal(run(g, a, b)[0], want)  # quantize(dequantize(q)) == q
        np.testing.assert_array_equal(fn(a, b), want)


def test_concat_with_other_scales_stays_float():
    g = ir.parse(CONCAT.replace("%cq: u8[1,8,4,4] = quantize(%c) {scale=[0.05]",
                                "%cq: u8[1,8,4,4] = quantize(%c) {scale=[0.06]"))
    out, _ = apply("fold_quantized", g)
    assert "concat" in ops(out) and "dequantize" in ops(out)


def test_quantize_dequantize_round_trip_is_exact_for_every_byte():
    """The fact the concat fold rests on, over all 256 values and a spread of scales."""
    for scale in np.float32([1e-4, 0.0037, 0.05, 0.3, 1.7, 123.0]):
        for zp, dtype, lo in ((128, np.uint8, 0), (0, np.uint8, 0), (-7, np.int8, -128)):
            q = np.arange(lo, lo + 256).astype(dtype)
            x = (q.astype(np.int64) - zp).astype(np.float32) * scale
            back = np.clip(np.rint(x / scale) + zp, lo, lo + 255).astype(dtype)
            np.testing.assert_array_equal(back, q)


# ---- an attention block, compiled -----------------------------------------------------------
def test_qdq_attention_block_compiles_to_integer_matmuls():
    """Q.K^T and P.V both quantized: compile() (O2, fold_quantized first) leaves qmatmul
    nodes, and the result stays within a few output steps of the QDQ float graph."""
    g = ir.parse("""
graph @main(%q: f32[2,8,16], %kt: f32[2,16,8], %v: f32[2,8,16]) -> (f32[2,8,16]) {
  %qq: u8[2,8,16] = quantize(%q) {scale=[0.03], zero_point=[128]}
  %qd: f32[2,8,16] = dequantize(%qq) {scale=[0.03], zero_point=[128]}
  %kq: u8[2,16,8] = quantize(%kt) {scale=[0.03], zero_point=[128]}
  %kd: f32[2,16,8] = dequantize(%kq) {scale=[0.03], zero_point=[128]}
  %s: f32[2,8,8] = matmul(%qd, %kd)
  %p: f32[2,8,8] = softmax(%s) {axis=-1}
  %pq: u8[2,8,8] = quantize(%p) {scale=[0.00392156862745098]}
  %pd: f32[2,8,8] = dequantize(%pq) {scale=[0.00392156862745098]}
  %vq: i8[2,8,16] = quantize(%v) {dtype="i8", scale=[0.03]}
  %vd: f32[2,8,16] = dequantize(%vq) {scale=[0.03]}
  %o: f32[2,8,16] = matmul(%pd, %vd)
  return %o
}""")
    q, kt, v = inputs(g)
    fn = compiler.compile(g, q, kt, v)
    assert ops(fn.graph)["qmatmul"] == 2 and "matmul" not in ops(fn.graph)
    want = run(g, q, kt, v)[0]
    np.testing.assert_allclose(fn(q, kt, v), want, atol=3 * 0.03 / 255 * 128 * 8)


def test_compiler_quantize_makes_attention_matmuls_integer():
    """compiler.quantize on single-head attention: the projections become qlinear, Q.K^T
    and P.V -- matmuls of two activations -- qmatmul, and the output keeps > 25 dB SQNR
    against the float graph."""
    g = ir.Graph("attention")
    x = g.add_input("x", ir.TensorType((2, 12, 16)))
    proj = {n: g.add_weight(n, (RNG.standard_normal((16, 16)) / 4).astype(np.float32))
            for n in ("wq", "wk", "wv")}
    q, k, v = (g.call("linear", x, proj[n], name=n[1]) for n in ("wq", "wk", "wv"))
    s = g.call("matmul", q, g.call("transpose", k, perm=(0, 2, 1), name="kt"), name="scores")
    p = g.call("softmax", g.call("mul", s, g.add_weight("temp", np.float32(0.25))),
               axis=-1, name="p")
    g.outputs = [g.call("matmul", p, v, name="pv")]
    cal = [RNG.standard_normal((2, 12, 16)).astype(np.float32) for _ in range(4)]
    qg = compiler.quantize(g, cal)
    lines = qg.quantization_report.quantized
    assert len(lines) == 5 and not qg.quantization_report.kept_float
    assert any(line.startswith("%scores (matmul [2, 12, 16] x [2, 16, 12]): a u8")
               for line in lines)
    xv = RNG.standard_normal((2, 12, 16)).astype(np.float32)
    fn = compiler.compile(qg, xv)
    assert ops(fn.graph)["qmatmul"] == 2 and "matmul" not in ops(fn.graph)
    ref = run(g, xv)[0].astype(np.float64)
    got = fn(xv)
    assert 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - got) ** 2)) > 25
    np.testing.assert_allclose(got, run(fn.graph, xv)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("text,op", [(RESIDUAL, "qadd"), (CONCAT, "concat")],
                         ids=["qadd", "concat"])
def test_exact_folds_survive_the_o3_pipeline(text, op):
    """compile() at O3: the fusers leave the byte-valued qadd/concat alone, and the native
    result is the QDQ float graph's, bit for bit."""
    g = ir.parse(text)
    xs = inputs(g, 3.0)
    fn = compiler.compile(g, *xs, opt_level=3)
    assert ops(fn.graph) == {"quantize": 2, op: 1}
    np.testing.assert_array_equal(fn(*xs), run(g, *xs)[0])


# ---- max_pool2d -----------------------------------------------------------------------------
POOL = """
graph @main(%x: f32[2,3,7,9]) -> (u8[2,3,4,5]) {
  %xq: u8[2,3,7,9] = quantize(%x) {scale=[0.05], zero_point=[128]}
  %xd: f32[2,3,7,9] = dequantize(%xq) {scale=[0.05], zero_point=[128]}
  %p: f32[2,3,4,5] = max_pool2d(%xd) {kernel=[3,3], pad=[1,1,1,1], stride=[2,2]}
  %pq: u8[2,3,4,5] = quantize(%p) {scale=[0.05], zero_point=[128]}
  return %pq
}
"""


def numpy_max_pool_3x3_s2_p1(q, least):
    """Windows over the bytes padded with the least value, by loops."""
    n, c, h, w = q.shape
    qp = np.full((n, c, h + 2, w + 2), least, np.int64)
    qp[:, :, 1:-1, 1:-1] = q
    oh, ow = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    out = np.empty((n, c, oh, ow), np.int64)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = qp[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(2, 3))
    return out.astype(q.dtype)


def test_max_pool_of_dequantized_bytes_pools_the_bytes():
    g = ir.parse(POOL)
    out, stats = apply("fold_quantized", g)
    assert stats.rewrites() == {"fold_quantized.qmax_pool2d": 1}
    expect_ir(out, """
graph @main(%x: f32[2,3,7,9]) -> (u8[2,3,4,5]) {
  %xq: u8[2,3,7,9] = quantize(%x) {scale=[0.05], zero_point=[128]}
  %p.q: u8[2,3,4,5] = qmax_pool2d(%xq) {kernel=[3,3], pad=[1,1,1,1], stride=[2,2]}
  return %p.q
}""")
    fn = llvm.compile_graph(out, num_threads=1)
    (x,) = inputs(g, 4.0)
    xq = np.clip(np.rint(x / np.float32(0.05)) + 128, 0, 255).astype(np.uint8)
    want = numpy_max_pool_3x3_s2_p1(xq, 0)
    np.testing.assert_array_equal(run(g, x)[0], want)
    np.testing.assert_array_equal(run(out, x)[0], want)
    np.testing.assert_array_equal(fn(x), want)


def test_max_pool_of_floats_quantizes_first_exactly():
    """A float pool whose result is quantized (i8 here, all inputs negative so that the
    padding matters): the quantize moves before the pool, the same bytes come out."""
    g = ir.parse(POOL.replace("""  %xq: u8[2,3,7,9] = quantize(%x) {scale=[0.05], zero_point=[128]}
  %xd: f32[2,3,7,9] = dequantize(%xq) {scale=[0.05], zero_point=[128]}
""", "").replace("max_pool2d(%xd)", "max_pool2d(%x)").replace(
        "%pq: u8[2,3,4,5] = quantize(%p) {scale=[0.05], zero_point=[128]}",
        '%pq: i8[2,3,4,5] = quantize(%p) {dtype="i8", scale=[0.05], zero_point=[-7]}').replace(
        "-> (u8[2,3,4,5])", "-> (i8[2,3,4,5])"))
    out, _ = apply("fold_quantized", g)
    assert ops(out) == {"quantize": 1, "qmax_pool2d": 1}
    fn = llvm.compile_graph(out, num_threads=1)
    for scale in (1.0, 20.0):
        x = -np.abs(inputs(g, scale)[0])
        xq = np.clip(np.rint(x / np.float32(0.05)) - 7, -128, 127).astype(np.int8)
        want = numpy_max_pool_3x3_s2_p1(xq, -128)
        np.testing.assert_array_equal(run(g, x)[0], want)
        np.testing.assert_array_equal(fn(x), want)


def test_max_pool_without_closing_quantize_stays_float():
    text = POOL.replace("-> (u8[2,3,4,5])", "-> (f32[2,3,4,5])").replace(
        "  %pq: u8[2,3,4,5] = quantize(%p) {scale=[0.05], zero_point=[128]}\n", "").replace(
        "return %pq", "return %p")
    out, stats = apply("fold_quantized", ir.parse(text))
    assert "qmax_pool2d" not in ops(out) and not stats.rewrites()


def test_compiler_quantize_pools_between_convolutions_in_bytes():
    """conv -> relu -> max_pool -> conv: the pool's quantize moves before it and into the
    first conv's epilogue, so bytes flow qconv2d -> qmax_pool2d -> qconv2d."""
    from compiler import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 3, padding=1)
            self.act, self.pool = nn.ReLU(), nn.MaxPool2d(2)

        def forward(self, x):
            return self.c2(self.pool(self.act(self.c1(x))))

    nn.manual_seed(5)
    model = Net().eval()
    cal = [RNG.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(4)]
    q = compiler.quantize(model, cal)
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    fn = compiler.compile(q, x)
    assert [n.op for n in fn.graph.nodes] == ["quantize", "qconv2d", "qmax_pool2d", "qconv2d"]
    ref = run(compiler.to_graph(model, x), x)[0].astype(np.float64)
    got = fn(x)
    assert 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - got) ** 2)) > 25
    np.testing.assert_array_equal(got, run(fn.graph, x)[0])
