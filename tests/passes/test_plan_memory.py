"""plan_memory: liveness, sharing, alignment, the summary figures, and values stored in
other values' buffers (concat slots, views), checked on random graphs."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


DENSE = """
graph @main(%x: f32[1,2,4]) -> (f32[1,6,4]) {
  %x0: f32[1,2,4] = relu(%x)
  %c1: f32[1,2,4] = concat(%x0) {axis=1}
  %y1: f32[1,2,4] = neg(%c1)
  %c2: f32[1,4,4] = concat(%x0, %y1) {axis=1}
  %y2: f32[1,2,4] = slice(%c2) {axes=[1], ends=[2], starts=[0]}
  %block: f32[1,6,4] = concat(%x0, %y1, %y2) {axis=1}
  %out: f32[1,6,4] = neg(%block)
  return %out
}"""


def test_concat_inputs_live_in_their_slots_and_earlier_concats_are_views():
    g = parse(DENSE)
    plan = plan_memory(g)
    assert plan.aliases == {"x0": ("block", 0), "y1": ("block", 32), "y2": ("block", 64),
                            "c1": ("block", 0), "c2": ("block", 0)}
    assert set(plan.lifetimes) == {"block"}  # one buffer instead of six
    assert plan.lifetimes["block"] == (0, 6)  # from relu(x) to its last reader
    assert plan.offsets["y1"] == plan.offsets["block"] + 32 and plan.sizes["y1"] == 32
    assert "1 buffers, 5 values in place" in plan.summary()
    check(plan, g)
    assert "# arena[" in plan.annotate(g)


def test_check_catches_a_write_over_a_live_value():
    g = parse(DENSE)
    plan = plan_memory(g)
    plan.aliases["y1"] = ("block", 0)  # y1 over x0, which is read later
    plan.offsets["y1"] = plan.offsets["block"]
    check(plan)  # inside its buffer: only the graph tells it is wrong
    with pytest.raises(ir.LaminaError, match=r"node %y1 \(neg\) writes over %x0"):
        check(plan, g)


def test_check_catches_a_buffer_that_dies_before_a_value_in_it():
    g = parse(DENSE)
    plan = plan_memory(g)
    plan.lifetimes["block"] = (3, 6)
    with pytest.raises(ir.LaminaError, match="%x0 is used outside the lifetime of its buffer"):
        check(plan, g)
    plan = plan_memory(g)
    plan.aliases["y2"] = ("block", 90)
    with pytest.raises(ir.LaminaError, match="%y2 is not inside its buffer %block"):
        check(plan)


def test_batch_two_and_graph_outputs_are_not_aliased():
    g = parse("""
    graph @main(%x: f32[2,2,4]) -> (f32[2,4,4], f32[1,8], f32[1,4,4]) {
      %a: f32[2,2,4] = relu(%x)
      %b: f32[2,2,4] = neg(%x)
      %c: f32[2,4,4] = concat(%a, %b) {axis=1}
      %d: f32[2,4,4] = neg(%c)
      %s: f32[1,2,4] = slice(%x) {axes=[0], ends=[1], starts=[0]}
      %r: f32[1,8] = reshape(%s) {shape=[1,8]}
      %e: f32[1,4,4] = concat(%s, %s) {axis=1}
      return %d, %r, %e
    }""")
    assert plan_memory(g).aliases == {}


# ---- random graphs of concats and views ----------------------------------------------------
@st.composite
def concat_graphs(draw, max_steps: int = 12) -> ir.Graph:
    """Random graphs over [B, C, 4, 4] values (a channel is 64 bytes: no slack from alignment
    hides a value placed too far): elementwise ops, concats of earlier values
    (repeats, graph inputs, along channels or another axis), reshape/flatten/transpose
    round trips, splits, values read long after they were concatenated, several outputs."""
    batch = draw(st.sampled_from([1, 1, 2]))
    g = ir.Graph()
    pool = [g.add_input("x", ir.TensorType((batch, 3, 4, 4)))]

    def pick():
        return draw(st.sampled_from(pool))

    for _ in range(draw(st.integers(1, max_steps))):
        kind = draw(st.sampled_from(["unary", "add", "concat", "concat", "view", "split"]))
        if kind == "split":  # two outputs of one node, e.g. ShuffleNet's channel split
            x = pick()
            if x.shape[1] > 1:
                pool.extend(g.call("split", x, axis=1, sizes=[1, x.shape[1] - 1]))
        elif kind == "unary":
            pool.append(g.call(draw(st.sampled_from(["relu", "neg", "tanh"])), pick()))
        elif kind == "add":
            x = pick()
            same = [v for v in pool if v.type == x.type]
            pool.append(g.call("add", x, draw(st.sampled_from(same))))
        elif kind == "concat":
            parts = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))
            axis = draw(st.sampled_from([1, 1, 1, 0, 3]))
            if axis != 1:  # concatenate along another axis, then split it back off
                part = parts[0]
                y = g.call("concat", part, part, axis=axis)
                pool.append(g.call("slice", y, starts=[0], ends=[part.shape[axis]],
                                   axes=[axis]))
            else:
                pool.append(g.call("concat", *parts, axis=1))
        else:
            x = pick()
            how = draw(st.sampled_from(["reshape", "flatten", "transpose"]))
            if how == "transpose" and batch == 1:
                y = g.call("transpose", g.call("transpose", x, perm=[1, 0, 2, 3]),
                           perm=[1, 0, 2, 3])
            elif how == "flatten":
                y = g.call("reshape", g.call("flatten", x, axis=1), shape=list(x.shape))
            else:
                y = g.call("reshape", g.call("reshape", x, shape=[-1]), shape=list(x.shape))
            pool.append(y)
    outs = draw(st.lists(st.sampled_from(pool[1:] or pool), min_size=1, max_size=3))
    g.outputs = outs
    ir.verify(g)
    return g


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(concat_graphs())
def test_plans_with_values_in_place_hold_their_invariants(g):
    plan = plan_memory(g)
    check(plan, g)  # no overlap of live buffers, no write over a value still to be read
    assert plan.peak_bytes <= plan.arena_bytes <= plan.naive_bytes
