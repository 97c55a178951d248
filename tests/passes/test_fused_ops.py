"""The fused operators and the graph attribute kind: semantics, checks, text round trip."""

from __future__ import annotations

import re

import numpy as np
import pytest

import ir
import passes
from backends import reference
from ir.ops import fused

from .helpers import RNG, apply, parse


def _unfused(layer: str, act: str, residual: bool) -> str:
    if layer == "conv2d":
        sig, w, y, extra = "%x: f32[2,4,5,5]", "f32[6,2,3,3]", "f32[2,6,5,5]", \
            " {groups=2, pad=[1,1,1,1]}"
    else:
        sig, w, y, extra = "%x: f32[3,7]", "f32[6,7]", "f32[3,6]", ""
    lines = [f"graph @main({sig}, %r: {y}) -> ({y}) {{", f"  @w: {w}", "  @b: f32[6]",
             f"  %h: {y} = {layer}(%x, @w, @b){extra}"]
    last = "%h"
    if residual:
        lines.append(f"  %s: {y} = add(%h, %r)")
        last = "%s"
    if act != "none":
        attrs = " {alpha=0.3}" if act == "leaky_relu" else ""
        lines.append(f"  %a: {y} = {act}({last}){attrs}")
        last = "%a"
    return "\n".join([*lines, f"  return {last}", "}"])


@pytest.mark.parametrize("act", fused.ACTIVATIONS)
@pytest.mark.parametrize("layer", ["conv2d", "linear"])
def test_fused_layers_compute_exactly_what_the_chain_computes(layer, act):
    for residual in (False, True):
        g = parse(_unfused(layer, act, residual))
        out, _ = apply(f"fuse_{'conv' if layer == 'conv2d' else 'linear'}_activation", g)
        want = {"none": not residual}.get(act, False)  # a bare layer is left alone
        assert (out.nodes[0].op == layer) is want
        x, r = (RNG.standard_normal(v.shape).astype(np.float32) for v in g.inputs)
        np.testing.assert_array_equal(reference.run(out, x, r)[0], reference.run(g, x, r)[0])


def test_fused_ops_check_their_operands():
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((1, 2, 4, 4)))
    w = g.add_weight("w", np.zeros((3, 2, 1, 1), np.float32))
    b = g.add_weight("b", np.zeros(3, np.float32))
    bad = g.add_input("bad", ir.TensorType((1, 3, 4, 1)))
    with pytest.raises(ir.ShapeError, match=r"%f \(fused_conv2d\).*residual"):
        g.create_node("fused_conv2d", [x, w, b, bad], name="f")
    with pytest.raises(ir.InvalidAttributeError, match=r"act.*one of none, relu"):
        g.create_node("fused_conv2d", [x, w, b], {"act": "swish"}, name="f")
    with pytest.raises(ir.InvalidAttributeError, match=r"body.*must be graph"):
        g.create_node("fused_elementwise", [x], {"body": "relu"}, name="f")


BAD_BODIES = [
    ("takes 2 inputs, the node gives 1",
     "graph @b(%p: f32[2,3], %q: f32[2,3]) -> (f32[2,3]) {\n"
     "  %y: f32[2,3] = add(%p, %q)\n  return %y\n}"),
    ("parameter %p is f32[3]", "graph @b(%p: f32[3]) -> (f32[3]) {\n  return %p\n}"),
    ("not an elementwise operator",
     "graph @b(%p: f32[2,3]) -> (f32[2,3]) {\n  %y: f32[2,3] = softmax(%p)\n  return %y\n}"),
    ("holds no weights",
     "graph @b(%p: f32[2,3]) -> (f32[2,3]) {\n  @k: f32[3]\n"
     "  %y: f32[2,3] = add(%p, @k)\n  return %y\n}"),
]


@pytest.mark.parametrize("message,text", BAD_BODIES, ids=[m for m, _ in BAD_BODIES])
def test_fused_elementwise_body_rules(message, text):
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((2, 3)))
    with pytest.raises(ir.ShapeError, match=r"%f \(fused_elementwise\).*" + re.escape(message)):
        g.create_node("fused_elementwise", [x], {"body": ir.parse(text)}, name="f")


def test_graph_attributes_compare_by_text_for_cse():
    text = """
    graph @main(%x: f32[4]) -> (f32[4]) {{
      %a: f32[4] = fused_elementwise(%x) {{body=graph @body(%p0: f32[4]) -> (f32[4]) {{
        %t: f32[4] = {0}(%p0)
        return %t
      }}}}
      %b: f32[4] = fused_elementwise(%x) {{body=graph @body(%p0: f32[4]) -> (f32[4]) {{
        %t: f32[4] = {1}(%p0)
        return %t
      }}}}
      %c: f32[4] = add(%a, %b)
      return %c
    }}"""
    same = parse(text.format("exp", "exp"))
    assert same.nodes[0].attrs["body"] is not same.nodes[1].attrs["body"]
    out, _ = apply("eliminate_common_subexpressions", same)
    assert len(out.nodes) == 2
    different = parse(text.format("exp", "tanh"))
    out, stats = apply("eliminate_common_subexpressions", different)
    assert len(out.nodes) == 3 and not stats.records[0].changed


def test_nested_parse_errors_point_into_the_body():
    text = """graph @main(%x: f32[4]) -> (f32[4]) {
  %a: f32[4] = fused_elementwise(%x) {body=graph @body(%p0: f32[4]) -> (f32[4]) {
    %t: f32[4] = exp(%nope)
    return %t
  }}
  return %a
}"""
    with pytest.raises(ir.ParseError, match=r"line 3.*undefined value %nope"):
        ir.parse(text)


def test_optimized_graphs_save_and_load(tmp_path):
    g = parse("""
    graph @main(%x: f32[2,3]) -> (f32[2,3]) {
      @k: f32[3]
      %a: f32[2,3] = mul(%x, @k)
      %b: f32[2,3] = tanh(%a)
      return %b
    }""")
    out = passes.optimize(g, opt_level=3)
    ir.save(out, tmp_path / "g.npz")
    back = ir.load(tmp_path / "g.npz")
    assert str(back) == str(out) and back.nodes[0].op == "fused_elementwise"
