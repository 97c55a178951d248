"""fuse_conv_activation / fuse_linear_activation: layer + bias + residual + act in one op."""

from __future__ import annotations

import numpy as np
import pytest

import passes

from .helpers import apply, assert_contract, bn_stats, expect_ir, ops, parse

CONV = passes.get("fuse_conv_activation")
LINEAR = passes.get("fuse_linear_activation")
HEAD = """
graph @main(%x: f32[2,3,6,6], %r: f32[2,8,6,6]) -> (f32[2,8,6,6]) {
  @conv.weight: f32[8,3,3,3]
  @conv.bias: f32[8]
  @b: f32[8,1,1]
"""


def _conv(body: str) -> str:
    return HEAD + "  %c: f32[2,8,6,6] = conv2d(%x, @conv.weight{}) {{pad=[1,1,1,1]}}\n".format(
        "" if "NOBIAS" in body else ", @conv.bias") + body.replace("NOBIAS", "") + "\n}"


ACTS = {"relu": "", "relu6": "", "leaky_relu": " {alpha=0.2}", "sigmoid": "", "tanh": "",
        "gelu": ""}


@pytest.mark.parametrize("op,attrs", ACTS.items(), ids=ACTS.keys())
def test_conv_activation(op, attrs):
    g = parse(_conv(f"  %y: f32[2,8,6,6] = {op}(%c){attrs}\n  return %y"))
    out, stats = apply("fuse_conv_activation", g)
    alpha = ", alpha=0.2" if op == "leaky_relu" else ""
    expect_ir(out, f"""
    graph @main(%x: f32[2,3,6,6], %r: f32[2,8,6,6]) -> (f32[2,8,6,6]) {{
      @conv.weight: f32[8,3,3,3]
      @conv.bias: f32[8]
      @b: f32[8,1,1]
      %c: f32[2,8,6,6] = fused_conv2d(%x, @conv.weight, @conv.bias)
                         {{act="{op}"{alpha}, pad=[1,1,1,1]}}
      return %c
    }}""")
    assert stats.records[0].counts == {"fused": 1, "activation": 1}
    assert_contract(g, out, CONV.contract)


@pytest.mark.parametrize("add", ["add(%c, %r)", "add(%r, %c)"])
def test_conv_bias_residual_activation(add):
    g = parse(_conv(f"""NOBIAS
  %cb: f32[2,8,6,6] = add(%c, @b)
  %s: f32[2,8,6,6] = {add.replace('%c', '%cb')}
  %y: f32[2,8,6,6] = relu(%s)
  return %y"""))
    out, stats = apply("fuse_conv_activation", g)
    expect_ir(out, """
    graph @main(%x: f32[2,3,6,6], %r: f32[2,8,6,6]) -> (f32[2,8,6,6]) {
      @conv.weight: f32[8,3,3,3]
      @conv.bias: f32[8]
      @c.bias: f32[8]
      %c: f32[2,8,6,6] = fused_conv2d(%x, @conv.weight, @c.bias, %r) {act="relu", pad=[1,1,1,1]}
      return %c
    }""")
    assert stats.records[0].counts == {"fused": 1, "bias": 1, "residual": 1, "activation": 1}
    assert_contract(g, out, CONV.contract)


def test_conv_bn_relu_after_folding():
    weights = {f"bn.{k}": v for k, v in bn_stats(8).items()}
    g = parse("""
    graph @main(%x: f32[2,3,6,6]) -> (f32[2,8,2,2]) {
      @conv.weight: f32[8,3,3,3]
      @bn.gamma: f32[8]
      @bn.beta: f32[8]
      @bn.mean: f32[8]
      @bn.var: f32[8]
      %c: f32[2,8,2,2] = conv2d(%x, @conv.weight) {stride=[2,2]}
      %n: f32[2,8,2,2] = batch_norm(%c, @bn.gamma, @bn.beta, @bn.mean, @bn.var)
      %y: f32[2,8,2,2] = relu6(%n)
      return %y
    }""", weights)
    out, _ = apply(["fold_batch_norm", "fuse_conv_activation", "eliminate_dead_code"], g)
    assert ops(out) == {"fused_conv2d": 1}
    node = out.nodes[0]
    assert node.attrs["act"] == "relu6" and node.attrs["stride"] == (2, 2)
    assert_contract(g, out, passes.get("fold_batch_norm").contract)


NO_FIRE = {
    "bare-conv": "  return %c",
    "conv-used-twice": """  %y: f32[2,8,6,6] = relu(%c)
  %z: f32[2,8,6,6] = add(%y, %c)
  return %z""",
    "conv-is-an-output": """  %y: f32[2,8,6,6] = relu(%c)
  return %c""",
    "gelu-tanh": """  %y: f32[2,8,6,6] = gelu(%c) {approximate="tanh"}
  return %y""",
    "not-an-epilogue": """  %y: f32[2,8,6,6] = exp(%c)
  return %y""",
    "bias-add-when-conv-has-bias": """  %y: f32[2,8,6,6] = add(%c, @b)
  return %y""",
}


@pytest.mark.parametrize("body", NO_FIRE.values(), ids=NO_FIRE.keys())
def test_conv_not_fused(body):
    g = parse(_conv(body))
    out, stats = apply("fuse_conv_activation", g)
    assert str(out) == str(g) and not stats.records[0].changed


def test_chain_stops_at_the_first_non_epilogue_op():
    g = parse(_conv("""  %s: f32[2,8,6,6] = add(%c, %r)
  %z: f32[2,8,6,6] = sub(%s, %r)
  %y: f32[2,8,6,6] = relu(%z)
  return %y"""))
    out, _ = apply("fuse_conv_activation", g)
    assert ops(out) == {"fused_conv2d": 1, "sub": 1, "relu": 1}
    assert out.nodes[0].attrs["act"] == "none" and len(out.nodes[0].inputs) == 4
    assert_contract(g, out, CONV.contract)


LIN = """
graph @main(%x: f32[4,16], %r: f32[4,8]) -> (f32[4,8]) {
  @fc.weight: f32[8,16]
  @fc.b: f32[8]
  %h: f32[4,8] = linear(%x, @fc.weight)
"""


def test_linear_bias_gelu():
    g = parse(LIN + """  %b: f32[4,8] = add(%h, @fc.b)
  %y: f32[4,8] = gelu(%b)
  return %y
}""")
    out, stats = apply("fuse_linear_activation", g)
    expect_ir(out, """
    graph @main(%x: f32[4,16], %r: f32[4,8]) -> (f32[4,8]) {
      @fc.weight: f32[8,16]
      @h.bias: f32[8]
      %h: f32[4,8] = fused_linear(%x, @fc.weight, @h.bias) {act="gelu"}
      return %h
    }""")
    np.testing.assert_array_equal(out.weights["h.bias"], g.weights["fc.b"])
    assert stats.records[0].counts == {"fused": 1, "bias": 1, "activation": 1}
    assert_contract(g, out, LINEAR.contract)


def test_linear_residual_without_activation():
    g = parse(LIN + """  %y: f32[4,8] = add(%r, %h)
  return %y
}""")
    out, _ = apply("fuse_linear_activation", g)
    assert ops(out) == {"fused_linear": 1}
    assert out.nodes[0].attrs["act"] == "none" and out.nodes[0].inputs[3] is out.inputs[1]
    assert_contract(g, out, LINEAR.contract)


def test_linear_not_fused_before_softmax():
    g = parse(LIN + """  %y: f32[4,8] = softmax(%h)
  return %y
}""")
    out, stats = apply("fuse_linear_activation", g)
    assert str(out) == str(g) and not stats.records[0].changed
