"""fold_constants: nodes of known inputs become weights computed by the reference semantics."""

from __future__ import annotations

import numpy as np

import passes

from .helpers import apply, assert_contract, expect_ir, ops, parse

PASS = passes.get("fold_constants")


def test_weight_computations_fold_into_one_weight():
    g = parse("""
    graph @main(%x: f32[1,4]) -> (f32[1,8]) {
      @w: f32[8,4]
      %c: f32[] = constant() {value=2.0}
      %wt: f32[4,8] = transpose(@w) {perm=[1,0]}
      %s: f32[4,8] = mul(%wt, %c)
      %y: f32[1,8] = matmul(%x, %s)
      return %y
    }""")
    out, stats = apply("fold_constants", g)
    expect_ir(out, """
    graph @main(%x: f32[1,4]) -> (f32[1,8]) {
      @s.folded: f32[4,8]
      %y: f32[1,8] = matmul(%x, @s.folded)
      return %y
    }""")
    np.testing.assert_array_equal(out.weights["s.folded"], g.weights["w"].T * np.float32(2))
    assert stats.records[0].counts == {"nodes": 3, "weights_removed": 3}
    assert_contract(g, out, PASS.contract)


def test_shape_computations_and_multi_output_fold():
    g = parse("""
    graph @main(%x: f32[2,3]) -> (f32[2,3], f32[2,3]) {
      @a: f32[6]
      %r: f32[2,3] = reshape(@a) {shape=[2,3]}
      %p: f32[1,3], %q: f32[1,3] = split(%r) {axis=0, sizes=[1,1]}
      %k: f32[2,3] = concat(%q, %p) {axis=0}
      %y: f32[2,3] = add(%x, %k)
      %z: f32[2,3] = mul(%x, %r)
      return %y, %z
    }""")
    out, _ = apply("fold_constants", g)
    assert ops(out) == {"add": 1, "mul": 1}
    assert_contract(g, out, PASS.contract)


def test_nothing_folds_when_an_input_is_unknown():
    g = parse("""
    graph @main(%x: f32[4]) -> (f32[4]) {
      @w: f32[4]
      %a: f32[4] = add(%x, @w)
      %b: f32[4] = relu(%a)
      return %b
    }""")
    out, stats = apply("fold_constants", g)
    assert str(out) == str(g) and not stats.records[0].changed
