"""fuse_elementwise: regions of elementwise/broadcast ops become one fused_elementwise."""

from __future__ import annotations

import ir
import passes

from .helpers import apply, assert_contract, expect_ir, ops, parse

PASS = passes.get("fuse_elementwise")


def test_scale_shift_swish_is_one_region():
    g = parse("""
    graph @main(%x: f32[1,8,4,4]) -> (f32[1,8,4,4]) {
      @scale: f32[8,1,1]
      @shift: f32[8,1,1]
      %s: f32[1,8,4,4] = mul(%x, @scale)
      %t: f32[1,8,4,4] = add(%s, @shift)
      %u: f32[1,8,4,4] = sigmoid(%t)
      %y: f32[1,8,4,4] = mul(%t, %u)
      return %y
    }""")
    out, stats = apply("fuse_elementwise", g)
    expect_ir(out, """
    graph @main(%x: f32[1,8,4,4]) -> (f32[1,8,4,4]) {
      @scale: f32[8,1,1]
      @shift: f32[8,1,1]
      %y: f32[1,8,4,4] = fused_elementwise(%x, @scale, @shift) {body=graph @body(
          %p0: f32[1,8,4,4], %p1: f32[8,1,1], %p2: f32[8,1,1]) -> (f32[1,8,4,4]) {
        %s: f32[1,8,4,4] = mul(%p0, %p1)
        %t: f32[1,8,4,4] = add(%s, %p2)
        %u: f32[1,8,4,4] = sigmoid(%t)
        %y: f32[1,8,4,4] = mul(%t, %u)
        return %y
      }}
      return %y
    }""")
    assert stats.records[0].counts == {"regions": 1, "nodes": 4}
    assert_contract(g, out, PASS.contract)
    assert str(ir.parse(str(out))) == str(out) and str(out.copy()) == str(out)


def test_a_tree_reading_one_input_twice_has_one_parameter():
    g = parse("""
    graph @main(%x: f32[3,4], %z: f32[4]) -> (f32[3,4]) {
      %a: f32[3,4] = exp(%x)
      %b: f32[3,4] = tanh(%x)
      %c: f32[3,4] = sub(%a, %b)
      %d: f32[3,4] = maximum(%c, %z)
      %e: f32[3,4] = cast(%d) {dtype="f32"}
      return %e
    }""")
    out, _ = apply("fuse_elementwise", g)
    assert ops(out) == {"fused_elementwise": 1}
    assert [v.name for v in out.nodes[0].inputs] == ["x", "z"]
    assert_contract(g, out, PASS.contract)


def test_regions_stop_at_other_ops_and_shared_values():
    g = parse("""
    graph @main(%x: f32[1,2,4,4]) -> (f32[1,2], f32[1,2,4,4]) {
      @w: f32[2,2,1,1]
      %a: f32[1,2,4,4] = relu(%x)
      %b: f32[1,2,4,4] = neg(%a)
      %c: f32[1,2,4,4] = conv2d(%b, @w)
      %d: f32[1,2,4,4] = abs(%c)
      %e: f32[1,2,4,4] = exp(%d)
      %f: f32[1,2] = reduce_mean(%e) {axes=[2,3]}
      %g: f32[1,2] = tanh(%f)
      %h: f32[1,2] = relu(%g)
      %k: f32[1,2,4,4] = sqrt(%d)
      return %h, %k
    }""")
    out, stats = apply("fuse_elementwise", g)
    # relu+neg, then tanh+relu; %d is read by exp and sqrt (two regions), so each stays apart
    assert ops(out) == {"fused_elementwise": 2, "conv2d": 1, "abs": 1, "exp": 1,
                        "reduce_mean": 1, "sqrt": 1}
    assert stats.records[0].counts == {"regions": 2, "nodes": 4}
    assert_contract(g, out, PASS.contract)


def test_lone_ops_batch_norm_dropout_and_constants_do_not_fuse():
    g = parse("""
    graph @main(%x: f32[2,3]) -> (f32[2,3]) {
      @g: f32[3]
      @b: f32[3]
      @m: f32[3]
      @v: f32[3]
      %c: f32[] = constant() {value=2.0}
      %a: f32[2,3] = mul(%x, %c)
      %n: f32[2,3] = batch_norm(%a, @g, @b, @m, @v)
      %d: f32[2,3] = dropout(%n) {ratio=0.5, training=true}
      %r: f32[2,3] = relu(%d)
      return %r
    }""", {"v": [1.0, 2.0, 3.0]})
    out, stats = apply("fuse_elementwise", g)
    assert str(out) == str(g) and not stats.records[0].changed
