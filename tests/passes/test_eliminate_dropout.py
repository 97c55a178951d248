"""eliminate_dropout: inference dropout goes, training dropout stays."""

from __future__ import annotations

import passes

from .helpers import apply, assert_contract, expect_ir, ops, parse

PASS = passes.get("eliminate_dropout")


def test_eval_dropout_is_removed_and_readers_rewired():
    g = parse("""
    graph @main(%x: f32[2,16]) -> (f32[2,10], f32[2,16]) {
      @fc.weight: f32[10,16]
      %h: f32[2,16] = relu(%x)
      %d: f32[2,16] = dropout(%h) {ratio=0.3}
      %z: f32[2,16] = dropout(%d) {ratio=0.0, training=true}
      %y: f32[2,10] = linear(%z, @fc.weight)
      return %y, %z
    }""")
    out, stats = apply("eliminate_dropout", g)
    expect_ir(out, """
    graph @main(%x: f32[2,16]) -> (f32[2,10], f32[2,16]) {
      @fc.weight: f32[10,16]
      %h: f32[2,16] = relu(%x)
      %y: f32[2,10] = linear(%h, @fc.weight)
      return %y, %h
    }""")
    assert stats.records[0].counts == {"dropout": 2}
    assert_contract(g, out, PASS.contract)


def test_training_dropout_is_kept():
    g = parse("""
    graph @main(%x: f32[4,8]) -> (f32[4,8]) {
      %d: f32[4,8] = dropout(%x) {ratio=0.5, seed=3, training=true}
      return %d
    }""")
    out, stats = apply("eliminate_dropout", g)
    assert str(out) == str(g) and not stats.records[0].changed
    assert_contract(g, out, PASS.contract)
    assert ops(out) == {"dropout": 1}
