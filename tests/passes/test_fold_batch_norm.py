"""fold_batch_norm: bn into conv2d/linear weights, or a scale-shift, or left alone."""

from __future__ import annotations

import numpy as np
import pytest

import passes

from .helpers import apply, assert_contract, bn_stats, expect_ir, ops, parse

PASS = passes.get("fold_batch_norm")
BN = "@bn.gamma, @bn.beta, @bn.mean, @bn.var"


def _bn_weights(c: int) -> dict:
    return {f"bn.{k}": v for k, v in bn_stats(c).items()}


def _conv_graph(groups: int, bias: bool) -> str:
    cin, cout = 4, 8
    b = ", @conv.bias" if bias else ""
    decl = "\n  @conv.bias: f32[8]" if bias else ""
    return f"""
    graph @main(%x: f32[2,{cin},6,6]) -> (f32[2,{cout},6,6]) {{
      @conv.weight: f32[{cout},{cin // groups},3,3]{decl}
      @bn.gamma: f32[8]
      @bn.beta: f32[8]
      @bn.mean: f32[8]
      @bn.var: f32[8]
      %c: f32[2,8,6,6] = conv2d(%x, @conv.weight{b}) {{groups={groups}, pad=[1,1,1,1]}}
      %n: f32[2,8,6,6] = batch_norm(%c, {BN}) {{eps=0.001}}
      %y: f32[2,8,6,6] = relu(%n)
      return %y
    }}"""


@pytest.mark.parametrize("groups", [1, 2, 4], ids=["dense", "grouped", "depthwise"])
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_bn_folds_into_conv(groups, bias):
    g = parse(_conv_graph(groups, bias), _bn_weights(8))
    out, stats = apply("fold_batch_norm", g)
    expect_ir(out, f"""
    graph @main(%x: f32[2,4,6,6]) -> (f32[2,8,6,6]) {{
      @conv.weight.folded: f32[8,{4 // groups},3,3]
      @conv.bias.folded: f32[8]
      %c: f32[2,8,6,6] = conv2d(%x, @conv.weight.folded, @conv.bias.folded)
                         {{groups={groups}, pad=[1,1,1,1]}}
      %y: f32[2,8,6,6] = relu(%c)
      return %y
    }}""")
    assert stats.records[0].counts == {"conv2d": 1}
    assert not np.allclose(out.weights["conv.weight.folded"], g.weights["conv.weight"])
    assert_contract(g, out, PASS.contract)


def test_bn_folds_into_linear():
    g = parse(f"""
    graph @main(%x: f32[3,5]) -> (f32[3,6]) {{
      @fc.weight: f32[6,5]
      @fc.bias: f32[6]
      @bn.gamma: f32[6]
      @bn.beta: f32[6]
      @bn.mean: f32[6]
      @bn.var: f32[6]
      %h: f32[3,6] = linear(%x, @fc.weight, @fc.bias)
      %n: f32[3,6] = batch_norm(%h, {BN})
      return %n
    }}""", _bn_weights(6))
    out, stats = apply("fold_batch_norm", g)
    assert ops(out) == {"linear": 1} and stats.records[0].counts == {"linear": 1}
    assert set(out.params) == {"fc.weight.folded", "fc.bias.folded"}
    assert_contract(g, out, PASS.contract)


SHARED = f"""
graph @main(%x: f32[1,4,5,5]) -> (f32[1,4,5,5], f32[1,4,5,5]) {{
  @conv.weight: f32[4,4,1,1]
  @bn.gamma: f32[4]
  @bn.beta: f32[4]
  @bn.mean: f32[4]
  @bn.var: f32[4]
  %c: f32[1,4,5,5] = conv2d(%x, @conv.weight)
  %n: f32[1,4,5,5] = batch_norm(%c, {BN})
  %t: f32[1,4,5,5] = tanh(%c)
  return %n, %t
}}"""
AFTER_RELU = f"""
graph @main(%x: f32[1,4,5,5]) -> (f32[1,4,5,5]) {{
  @bn.gamma: f32[4]
  @bn.beta: f32[4]
  @bn.mean: f32[4]
  @bn.var: f32[4]
  %r: f32[1,4,5,5] = relu(%x)
  %n: f32[1,4,5,5] = batch_norm(%r, {BN})
  return %n
}}"""
RANK3_LINEAR = f"""
graph @main(%x: f32[2,4,3]) -> (f32[2,4,5]) {{
  @fc.weight: f32[5,3]
  @bn.gamma: f32[4]
  @bn.beta: f32[4]
  @bn.mean: f32[4]
  @bn.var: f32[4]
  %h: f32[2,4,5] = linear(%x, @fc.weight)
  %n: f32[2,4,5] = batch_norm(%h, {BN})
  return %n
}}"""


@pytest.mark.parametrize("text", [SHARED, AFTER_RELU, RANK3_LINEAR],
                         ids=["input-has-other-users", "after-relu", "linear-rank3"])
def test_unfoldable_bn_becomes_scale_shift(text):
    g = parse(text, _bn_weights(4))
    out, stats = apply("fold_batch_norm", g)
    assert "batch_norm" not in ops(out) and ops(out)["mul"] == ops(out)["add"] == 1
    assert stats.records[0].counts == {"scale_shift": 1}
    assert out.params["n.scale"].shape == (4, 1, 1)[: out.inputs[0].type.rank - 1]
    assert_contract(g, out, PASS.contract)


def test_scale_shift_ir():
    g = parse(AFTER_RELU, _bn_weights(4))
    out, _ = apply("fold_batch_norm", g)
    expect_ir(out, """
    graph @main(%x: f32[1,4,5,5]) -> (f32[1,4,5,5]) {
      @n.scale: f32[4,1,1]
      @n.shift: f32[4,1,1]
      %r: f32[1,4,5,5] = relu(%x)
      %n.scaled: f32[1,4,5,5] = mul(%r, @n.scale)
      %n: f32[1,4,5,5] = add(%n.scaled, @n.shift)
      return %n
    }""")


def test_training_bn_and_unknown_statistics_are_left_alone():
    training = parse(_conv_graph(1, False).replace("{eps=0.001}", "{training=true}"),
                     _bn_weights(8))
    out, stats = apply("fold_batch_norm", training)
    assert str(out) == str(training) and not stats.records[0].changed
    unknown = parse("""
    graph @main(%x: f32[2,3], %m: f32[3], %v: f32[3]) -> (f32[2,3]) {
      @g: f32[3]
      @b: f32[3]
      %n: f32[2,3] = batch_norm(%x, @g, @b, %m, %v)
      return %n
    }""")
    out, stats = apply("fold_batch_norm", unknown)
    assert str(out) == str(unknown) and not stats.records[0].changed

