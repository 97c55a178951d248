"""eliminate_common_subexpressions: same op, same inputs, same attributes -> one node."""

from __future__ import annotations

import numpy as np

import passes

from .helpers import apply, assert_contract, expect_ir, parse

PASS = passes.get("eliminate_common_subexpressions")


def test_duplicates_merge_commutative_in_either_order():
    g = parse("""
    graph @main(%x: f32[4]) -> (f32[4]) {
      @w1: f32[4]
      @w2: f32[4]
      %a: f32[4] = relu(%x)
      %b: f32[4] = relu(%x)
      %c: f32[4] = add(%a, @w1)
      %d: f32[4] = add(@w2, %b)
      %e: f32[4] = mul(%c, %d)
      return %e
    }""", {"w1": np.arange(4), "w2": np.arange(4)})
    out, stats = apply("eliminate_common_subexpressions", g)
    expect_ir(out, """
    graph @main(%x: f32[4]) -> (f32[4]) {
      @w1: f32[4]
      %a: f32[4] = relu(%x)
      %c: f32[4] = add(%a, @w1)
      %e: f32[4] = mul(%c, %c)
      return %e
    }""")
    assert stats.records[0].counts == {"nodes": 2, "weights": 1}
    assert_contract(g, out, PASS.contract)


def test_different_attributes_operand_order_or_weights_do_not_merge():
    g = parse("""
    graph @main(%x: f32[4], %y: f32[4]) -> (f32[4], f32[4], f32[4], f32[4], f32[4], f32[4]) {
      @w1: f32[4]
      @w2: f32[4]
      %a: f32[4] = leaky_relu(%x) {alpha=0.1}
      %b: f32[4] = leaky_relu(%x) {alpha=0.2}
      %c: f32[4] = sub(%x, %y)
      %d: f32[4] = sub(%y, %x)
      %e: f32[4] = add(%x, @w1)
      %f: f32[4] = add(%x, @w2)
      return %a, %b, %c, %d, %e, %f
    }""", {"w1": np.zeros(4), "w2": -np.zeros(4)})
    out, stats = apply("eliminate_common_subexpressions", g)
    assert str(out) == str(g) and not stats.records[0].changed


def test_weights_merge_only_when_every_byte_and_the_type_agree():
    """Weights are bucketed by type and a sample of their elements before their bytes are
    compared: a difference the sample misses must still keep them apart."""
    big = np.arange(1000, dtype=np.float32)
    near = big.copy()
    near[1] = -1.0  # between the sampled elements (every 62nd)
    g = parse("""
    graph @main(%x: f32[1000]) -> (f32[1000], f32[1000], f32[1000], f32[10,100]) {
      @a: f32[1000]
      @b: f32[1000]
      @c: f32[1000]
      @d: f32[10,100]
      %p: f32[1000] = add(%x, @a)
      %q: f32[1000] = add(%x, @b)
      %r: f32[1000] = add(%x, @c)
      %s: f32[10,100] = neg(@d)
      return %p, %q, %r, %s
    }""", {"a": big, "b": near, "c": big, "d": big.reshape(10, 100)})
    out, stats = apply("eliminate_common_subexpressions", g)
    assert sorted(out.params) == ["a", "b", "d"]  # c is a's twin; d has another shape
    assert stats.records[0].counts == {"weights": 1, "nodes": 1}  # then %r is %p
    assert_contract(g, out, PASS.contract)
