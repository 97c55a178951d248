"""plan_memory: liveness, sharing, alignment, and the summary figures."""

from __future__ import annotations

import pytest

import ir
from passes.plan_memory import ALIGN, check, plan_memory

from .helpers import parse

CHAIN = """
graph @main(%x: f32[16]) -> (f32[16]) {
  @w: f32[16]
  %a: f32[16] = relu(%x)
  %b: f32[16] = exp(%a)
  %c: f32[16] = add(%b, @w)
  %d: f32[16] = tanh(%c)
  %e: f32[16] = neg(%d)
  return %e
}"""


def test_a_chain_ping_pongs_between_two_buffers():
    plan = plan_memory(parse(CHAIN))
    assert set(plan.offsets) == {"a", "b", "c", "d"}  # not the input, output or weight
    assert plan.lifetimes["a"] == (0, 1) and plan.lifetimes["d"] == (3, 4)
    assert plan.sizes["a"] == ALIGN  # 64 bytes: already aligned
    assert len(set(plan.offsets.values())) == 2 and plan.arena_bytes == 2 * ALIGN
    assert plan.peak_bytes == 2 * ALIGN and plan.naive_bytes == 4 * ALIGN
    assert plan.offsets["a"] != plan.offsets["b"]  # output never shares with its input
    check(plan)
    assert "arena of 128 B" in plan.summary() and "peak live 128 B" in plan.summary()


def test_live_values_do_not_overlap_and_offsets_are_aligned():
    g = parse("""
    graph @main(%x: f32[3]) -> (f32[3]) {
      %a: f32[3] = relu(%x)
      %b: f32[100] = constant() {value=1.0, shape=[100]}
      %c: f32[3] = exp(%a)
      %dead: f32[7] = constant() {value=0.0, shape=[7]}
      %d: f32[3] = add(%a, %c)
      %e: f32[3] = slice(%b) {starts=[0], ends=[3]}
      %f: f32[3] = mul(%d, %e)
      return %f
    }""")
    plan = plan_memory(g)
    assert all(off % ALIGN == 0 for off in plan.offsets.values())
    assert plan.sizes == {"a": 64, "b": 448, "c": 64, "dead": 64, "d": 64, "e": 64}
    assert plan.lifetimes["dead"] == (3, 3) and plan.lifetimes["b"] == (1, 5)
    check(plan)
    assert plan.peak_bytes <= plan.arena_bytes < plan.naive_bytes


def test_check_catches_overlap():
    plan = plan_memory(parse(CHAIN))
    plan.offsets["b"] = plan.offsets["a"]
    with pytest.raises(ir.LaminaError, match="live together"):
        check(plan)


def test_annotated_dump():
    g = parse(CHAIN)
    text = plan_memory(g).annotate(g)
    assert "%a: f32[16] = relu(%x)  # arena[" in text
    assert text.splitlines()[-1].startswith("# memory plan: 4 buffers")
    assert str(ir.parse(text)) == str(g)  # the notes are comments
