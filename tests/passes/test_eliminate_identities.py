"""eliminate_identities: identity reshapes, transposes, casts and x+0 / x*1 arithmetic."""

from __future__ import annotations

import numpy as np

import passes

from .helpers import apply, assert_contract, expect_ir, ops, parse

PASS = passes.get("eliminate_identities")


def test_identities_are_removed():
    g = parse("""
    graph @main(%x: f32[2,8]) -> (f32[2,8]) {
      @ones: f32[8]
      @zero: f32[]
      %r: f32[2,8] = reshape(%x) {shape=[2,8]}
      %t: f32[8,2] = transpose(%r) {perm=[1,0]}
      %u: f32[2,8] = transpose(%t) {perm=[1,0]}
      %m: f32[2,8] = mul(@ones, %u)
      %c: f32[] = constant() {value=0.0}
      %a: f32[2,8] = add(%m, %c)
      %s: f32[2,8] = sub(%a, @zero)
      %q: f32[2,8] = cast(%s)
      %y: f32[2,8] = relu(%q)
      return %y
    }""", {"ones": np.ones(8), "zero": np.zeros(())})
    out, stats = apply("eliminate_identities", g)
    assert ops(out) == {"relu": 1, "constant": 1}
    assert out.nodes[-1].inputs[0] is out.inputs[0]
    assert stats.records[0].counts == {"identity": 6, "merged": 1}
    assert_contract(g, out, PASS.contract)


def test_shape_chains_merge():
    g = parse("""
    graph @main(%x: f32[2,3,4]) -> (f32[4,3,2], f32[24]) {
      %t: f32[3,2,4] = transpose(%x) {perm=[1,0,2]}
      %u: f32[4,3,2] = transpose(%t) {perm=[2,0,1]}
      %r: f32[6,4] = reshape(%x) {shape=[6,4]}
      %s: f32[24] = reshape(%r) {shape=[-1]}
      return %u, %s
    }""")
    out, _ = apply("eliminate_identities", g)
    expect_ir(out, """
    graph @main(%x: f32[2,3,4]) -> (f32[4,3,2], f32[24]) {
      %u: f32[4,3,2] = transpose(%x) {perm=[2,1,0]}
      %s: f32[24] = reshape(%x) {shape=[24]}
      return %u, %s
    }""")
    assert_contract(g, out, PASS.contract)


def test_nothing_fires_when_values_change():
    g = parse("""
    graph @main(%x: f32[2,8], %z: f32[8]) -> (f32[2,8], f32[2,8], f32[2,8], f32[8,2], f32[2,8]) {
      @almost: f32[8]
      @zero_wide: f32[3,2,8]
      %a: f32[2,8] = mul(%x, @almost)
      %b: f32[2,8] = add(%x, %z)
      %c: f32[2,8] = sub(@almost, %x)
      %w: f32[3,2,8] = add(%x, @zero_wide)
      %t: f32[8,2] = transpose(%x) {perm=[1,0]}
      %d: f32[2,8] = div(%x, %x)
      return %a, %b, %c, %t, %d
    }""", {"almost": np.r_[np.ones(7), 2.0], "zero_wide": np.zeros((3, 2, 8))})
    out, stats = apply("eliminate_identities", g)
    assert str(out) == str(g) and not stats.records[0].changed
