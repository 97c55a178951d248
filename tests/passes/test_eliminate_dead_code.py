"""eliminate_dead_code: unread nodes and weights go; outputs and inputs stay."""

from __future__ import annotations

import passes

from .helpers import apply, assert_contract, expect_ir, parse

PASS = passes.get("eliminate_dead_code")


def test_dead_chains_and_weights_are_removed():
    g = parse("""
    graph @main(%x: f32[4], %unused: f32[2]) -> (f32[4]) {
      @w: f32[4]
      @v: f32[4]
      %a: f32[4] = exp(%x)
      %b: f32[4] = add(%x, @w)
      %c: f32[4] = relu(%b)
      %s: f32[2], %t: f32[2] = split(%c) {sizes=[2,2]}
      return %a
    }""")
    out, stats = apply("eliminate_dead_code", g)
    expect_ir(out, """
    graph @main(%x: f32[4], %unused: f32[2]) -> (f32[4]) {
      %a: f32[4] = exp(%x)
      return %a
    }""")
    assert stats.records[0].counts == {"nodes": 3, "weights": 2}
    assert_contract(g, out, PASS.contract)


def test_live_code_is_kept():
    g = parse("""
    graph @main(%x: f32[4]) -> (f32[4], f32[2]) {
      @w: f32[4]
      %b: f32[4] = add(%x, @w)
      %s: f32[2], %t: f32[2] = split(%b) {sizes=[2,2]}
      return %b, %t
    }""")
    out, stats = apply("eliminate_dead_code", g)
    assert str(out) == str(g) and not stats.records[0].changed
