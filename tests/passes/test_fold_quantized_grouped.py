"""fold_quantized on grouped and depthwise convolutions: the IR it makes, where it must not
fire, its one-step contract, and compiler.quantize on a MobileNetV2 inverted-residual block
(1x1 expand, 3x3 depthwise, 1x1 project, residual add) with every conv int8."""

from __future__ import annotations

import numpy as np
import pytest

import compiler
import ir
from backends import llvm
from backends.reference import run
from compiler import nn

from .helpers import apply, expect_ir, ops

RNG = np.random.default_rng(31)
W_SCALES = (0.01, 0.02, 0.015, 0.03, 0.011, 0.007, 0.025, 0.02)

DW = """
graph @main(%x: f32[1,8,7,9]) -> (u8[1,8,4,5]) {
  @w: i8[8,1,3,3]
  @b: i32[8]
  %xq: u8[1,8,7,9] = quantize(%x) {scale=[0.05], zero_point=[128]}
  %xd: f32[1,8,7,9] = dequantize(%xq) {scale=[0.05], zero_point=[128]}
  %wd: f32[8,1,3,3] = dequantize(@w) {axis=0, scale=[WS]}
  %bd: f32[8] = dequantize(@b) {axis=0, scale=[BIAS]}
  %h: f32[1,8,4,5] = conv2d(%xd, %wd, %bd) {groups=8, pad=[1,1,1,1], stride=[2,2]}
  %r: f32[1,8,4,5] = relu(%h)
  %y: u8[1,8,4,5] = quantize(%r) {scale=[0.04], zero_point=[2]}
  return %y
}
"""
WS = ",".join(repr(s) for s in W_SCALES)
BIAS = ",".join(repr(float(np.float32(0.05) * np.float32(s))) for s in W_SCALES)


def dw_graph(text=DW):
    g = ir.parse(text.replace("BIAS", BIAS).replace("WS", WS))
    w = g.params["w"].type.shape
    g.weights["w"] = RNG.integers(-127, 128, w).astype(np.int8)
    g.weights["b"] = RNG.integers(-800, 800, 8).astype(np.int32)
    ir.verify(g)
    return g


def test_depthwise_folds_into_one_grouped_qconv2d():
    g = dw_graph()
    out, stats = apply("fold_quantized", g)
    assert stats.rewrites() == {"fold_quantized.qconv2d": 1}
    expect_ir(out, f"""
graph @main(%x: f32[1,8,7,9]) -> (u8[1,8,4,5]) {{
  @w: i8[8,1,3,3]
  @b: i32[8]
  %xq: u8[1,8,7,9] = quantize(%x) {{scale=[0.05], zero_point=[128]}}
  %h.q: u8[1,8,4,5] = qconv2d(%xq, @w, @b) {{groups=8, pad=[1,1,1,1], relu=true,
      stride=[2,2], w_scale=[{WS}], x_scale=0.05, x_zero_point=128, y_scale=0.04,
      y_zero_point=2}}
  return %h.q
}}""")


def test_grouped_fold_is_within_one_step_and_the_kernel_agrees():
    text = DW.replace("i8[8,1,3,3]", "i8[8,4,3,3]").replace("f32[8,1,3,3]", "f32[8,4,3,3]")
    for groups in (2, 8):
        t = text if groups == 2 else DW
        g = dw_graph(t.replace("groups=8", f"groups={groups}"))
        out, _ = apply("fold_quantized", g)
        (node,) = [n for n in out.nodes if n.op == "qconv2d"]
        assert node.attrs["groups"] == groups
        fn = llvm.compile_graph(out, num_threads=1)
        for _ in range(3):
            x = (RNG.standard_normal((1, 8, 7, 9)) * 3).astype(np.float32)
            a, b = run(g, x)[0].astype(int), run(out, x)[0].astype(int)
            assert np.abs(a - b).max() <= 1 and (a == b).mean() > 0.95
            np.testing.assert_array_equal(fn(x), run(out, x)[0])


def test_weight_scales_on_the_wrong_axis_do_not_fold():
    """Scales along the weight's input-channel axis (axis 1) are not per output channel:
    no integer kernel applies them, so the conv stays float."""
    text = DW.replace("i8[8,1,3,3]", "i8[8,4,3,3]").replace("f32[8,1,3,3]", "f32[8,4,3,3]")
    text = text.replace("groups=8", "groups=2").replace(
        "dequantize(@w) {axis=0, scale=[WS]}", "dequantize(@w) {axis=1, scale=[0.1,0.2,0.3,0.4]}")
    g = dw_graph(text)
    out, _ = apply(["fold_quantized", "eliminate_dead_code"], g)
    assert "qconv2d" not in ops(out) and "conv2d" in ops(out)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand 1x1 -> ReLU6 -> depthwise 3x3 -> ReLU6 -> project 1x1,
    plus the input (stride 1, same channels); batch norms fold into the convs."""

    def __init__(self, c=8, expand=4):
        super().__init__()
        h = c * expand
        self.expand, self.bn1 = nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h)
        self.dw = nn.Conv2d(h, h, 3, padding=1, groups=h, bias=False)
        self.bn2 = nn.BatchNorm2d(h)
        self.project, self.bn3 = nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c)
        self.act = nn.ReLU6()

    def forward(self, x):
        y = self.act(self.bn1(self.expand(x)))
        y = self.act(self.bn2(self.dw(y)))
        return x + self.bn3(self.project(y))


def sqnr(ref, got) -> float:
    ref = ref.astype(np.float64)
    return 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - got) ** 2))


@pytest.fixture(scope="module")
def block():
    nn.manual_seed(3)
    return InvertedResidual().eval()


def test_mobilenet_block_quantizes_every_conv(block):
    cal = [RNG.standard_normal((2, 8, 10, 10)).astype(np.float32) for _ in range(6)]
    q = compiler.quantize(block, cal)
    report = q.quantization_report
    assert len(report.quantized) == 3 and not report.kept_float
    assert any(line.startswith("%dw (conv2d [32, 1, 3, 3])") for line in report.quantized)
    assert "groups" not in str(report)
    x = RNG.standard_normal((2, 8, 10, 10)).astype(np.float32)
    fn = compiler.compile(q, x)
    convs = [n for n in fn.graph.nodes if n.op == "qconv2d"]
    assert sorted(n.attrs["groups"] for n in convs) == [1, 1, 32]
    float_out = run(compiler.to_graph(block, x), x)[0]  # the float model, interpreted
    got = fn(x)
    assert sqnr(float_out, got) > 25
    np.testing.assert_allclose(got, run(fn.graph, x)[0], rtol=1e-6, atol=1e-6)
