"""The text format: print/parse round trips for every operator, save/load, parse errors, DOT."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import ir
from backends.reference import run

from .cases import BY_OP


def assert_same_outputs(g1: ir.Graph, g2: ir.Graph, inputs) -> None:
    for a, b in zip(run(g1, *inputs), run(g2, *inputs), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("op", ir.ops.names())
def test_round_trip_every_operator(op):
    assert op in BY_OP, f"no case builds {op}; add one to tests/ir/cases*.py"
    for c in BY_OP[op]:
        g = c.graph()
        text = str(g)
        back = ir.parse(text, g.weights)
        assert str(back) == text, c.id
        ir.verify(back)
        assert_same_outputs(g, back, c.inputs)


def _model(rng) -> ir.Graph:
    """conv -> batch_norm -> relu -> pool -> split -> concat -> flatten -> linear -> softmax."""
    g = ir.Graph("net")
    x = g.add_input("x", ir.TensorType((1, 3, 8, 8)))
    w = g.add_weight("conv1.weight", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    bn = [g.add_weight(f"bn1.{k}", rng.uniform(0.5, 1.5, 4).astype(np.float32))
          for k in ("weight", "bias", "running_mean", "running_var")]
    fc = g.add_weight("fc.weight", rng.standard_normal((5, 16)).astype(np.float32))
    y = g.call("conv2d", x, w, name="c", pad=(1, 1, 1, 1))
    y = g.call("batch_norm", y, *bn, name="n", eps=1e-3)
    y = g.call("leaky_relu", y, alpha=0.125)
    y = g.call("max_pool2d", y, kernel=(2, 2), stride=(2, 2))
    a, b = g.call("split", y, axis=1, sizes=(1, 3))
    y = g.call("concat", b, a, axis=1)
    y = g.call("avg_pool2d", y, kernel=(2, 2), stride=(2, 2), count_include_pad=False)
    y = g.call("flatten", y)
    logits = g.call("linear", y, fc)
    g.outputs = [g.call("softmax", logits, name="probs"), logits]
    return g


def test_round_trip_model(rng):
    g = _model(rng)
    ir.verify(g)
    text = str(g)
    assert "%split: f32[1,1,4,4], %split.1: f32[1,3,4,4] = split(" in text
    back = ir.parse(text, g.weights)
    assert str(back) == text
    assert_same_outputs(g, back, [rng.standard_normal((1, 3, 8, 8)).astype(np.float32)])


def test_parse_design_example_with_comments():
    text = """
    # a comment line
    graph @main(%x: f32[1,3,8,8]) -> (f32[1,4,8,8]) {
      @conv1.weight: f32[4,3,3,3]
      %c: f32[1,4,8,8] = conv2d(%x, @conv1.weight) {pad=[1,1,1,1]}  # trailing note
      %y: f32[1,4,8,8] = relu(%c)
      return %y
    }
    """
    g = ir.parse(text)
    assert [n.op for n in g.nodes] == ["conv2d", "relu"]
    assert g.nodes[0].attrs["pad"] == (1, 1, 1, 1)
    ir.verify(g, check_weights=False)
    assert str(ir.parse(str(g))) == str(g)


@pytest.mark.parametrize("value", [0.1, 1e-05, 1e20, -2.5e-300, 3.0, -0.0, math.inf, -math.inf])
def test_float_attributes_round_trip_exactly(value):
    g = ir.Graph()
    g.outputs = [g.call("constant", value=value, shape=(2,), dtype="f64")]
    back = ir.parse(str(g))
    got = back.nodes[0].attrs["value"]
    assert got == value and math.copysign(1, got) == math.copysign(1, value)
    assert str(back) == str(g)


def test_nan_attribute_round_trips():
    g = ir.Graph()
    g.outputs = [g.call("constant", value=math.nan, shape=(1,))]
    back = ir.parse(str(g))
    assert math.isnan(back.nodes[0].attrs["value"])
    assert str(back) == str(g)


def test_defaults_are_not_printed_and_others_are():
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((2, 3)))
    g.outputs = [g.call("gelu", g.call("leaky_relu", x), approximate="tanh")]
    text = str(g)
    assert "alpha" not in text
    assert '{approximate="tanh"}' in text


def test_save_load_round_trip(tmp_path, rng):
    g = _model(rng)
    path = tmp_path / "model.npz"
    ir.save(g, path)
    back = ir.load(path)
    assert str(back) == str(g)
    assert sorted(back.weights) == sorted(g.weights)
    for k, a in g.weights.items():
        assert back.weights[k].dtype == a.dtype
        np.testing.assert_array_equal(back.weights[k], a)
    ir.verify(back)
    assert_same_outputs(g, back, [rng.standard_normal((1, 3, 8, 8)).astype(np.float32)])


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ir.ParseError, match="not a saved Lamina graph"):
        ir.load(path)
    bad = tmp_path / "junk.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ir.ParseError):
        ir.load(bad)


def test_load_rejects_weights_of_the_wrong_type(tmp_path, rng):
    g = _model(rng)
    g.weights["fc.weight"] = g.weights["fc.weight"].astype(np.float64)
    path = tmp_path / "model.npz"
    ir.save(g, path)
    with pytest.raises(ir.ParseError, match=r"fc\.weight"):
        ir.load(path)


# ---- parse errors ------------------------------------------------------------------------
HEAD = "graph @main(%x: f32[2,3]) -> (f32[2,3]) {\n"


def _body(*lines: str, ret: str = "%x") -> str:
    return HEAD + "".join(f"  {line}\n" for line in lines) + f"  return {ret}\n}}\n"


PARSE_ERRORS = {
    "unknown_op": (_body("%a: f32[2,3] = relu(%x)", "%b: f32[2,3] = frobnicate(%a)"), 3,
                   "unknown operator 'frobnicate'"),
    "undefined_value": (_body("%a: f32[2,3] = relu(%x)", "%b: f32[2,3] = relu(%q)"), 3,
                        "undefined value %q"),
    "undefined_return": (_body("%a: f32[2,3] = relu(%x)", ret="%zz"), 3, "undefined value %zz"),
    "duplicate_value": (_body("%a: f32[2,3] = relu(%x)", "%a: f32[2,3] = relu(%x)"), 3,
                        "%a defined twice"),
    "duplicate_of_input": (_body("%x: f32[2,3] = relu(%x)"), 2, "%x defined twice"),
    "duplicate_input": ("graph @main(%x: f32[2], %x: f32[2]) -> (f32[2]) {\n  return %x\n}", 1,
                        "defined twice"),
    "duplicate_weight": (_body("@w: f32[3]", "@w: f32[3]"), 3, "defined twice"),
    "unknown_dtype": (_body("%a: f16[2,3] = relu(%x)"), 2, "unknown dtype 'f16'"),
    "fractional_dim": (_body("%a: f32[2.5,3] = relu(%x)"), 2, "dimension"),
    "negative_dim": (_body("%a: f32[-2,3] = relu(%x)"), 2, "dimension"),
    "unclosed_type": (_body("%a: f32[2,3 = relu(%x)"), 2, "expected"),
    "wrong_declared_type": (_body("%a: f32[3,2] = relu(%x)"), 2, "declared types f32[3,2]"),
    "wrong_declared_dtype": (_body("%a: f64[2,3] = relu(%x)"), 2, "operator infers f32[2,3]"),
    "unknown_attribute": (_body("%a: f32[2,3] = relu(%x) {alpha=1.0}"), 2, "unknown attribute"),
    "bad_attribute_type": (_body('%a: f32[2,3] = leaky_relu(%x) {alpha="big"}'), 2,
                           "'alpha' must be float"),
    "invalid_attribute": (_body('%a: f32[2,3] = gelu(%x) {approximate="erf"}'), 2,
                          "approximate"),
    "shape_error": (_body("%a: f32[2,3] = add(%x, %x)",
                          "%b: f32[3,2] = transpose(%a) {perm=[1,0]}",
                          "%c: f32[2,3] = add(%a, %b)"), 4, "do not broadcast"),
    "arity": (_body("%a: f32[2,3] = relu(%x, %x)"), 2, "takes 1 inputs"),
    "return_types": (_body("%a: f32[2,3] = relu(%x)", ret="%a, %a"), 3, "signature"),
    "bad_character": (_body("%a: f32[2,3] = relu(%x) $"), 2, "unexpected character '$'"),
    "trailing_text": (_body() + "graph\n", 4, "expected eof"),
}


@pytest.mark.parametrize("name", PARSE_ERRORS)
def test_parse_errors_name_the_line(name):
    text, line, fragment = PARSE_ERRORS[name]
    with pytest.raises(ir.ParseError) as info:
        ir.parse(text)
    msg = str(info.value)
    assert re.match(rf"line {line}, column \d+: ", msg), msg
    assert fragment in msg, msg


def test_parse_rejects_weight_data_of_another_type():
    text = _body("@w: f32[3]")
    with pytest.raises(ir.ParseError, match=r"line 2, .*@w data is f64\[3\]"):
        ir.parse(text, {"w": np.zeros(3)})


# ---- DOT -------------------------------------------------------------------------------
def test_dot_has_every_node_and_edge(rng):
    g = _model(rng)
    dot = ir.to_dot(g)
    assert dot.startswith('digraph "net" {') and dot.rstrip().endswith("}")
    boxes = dict(re.findall(r'^  "([^"]+)" \[label="((?:[^"\\]|\\.)*)"\];$', dot, re.MULTILINE))
    assert len(boxes) == len(g.nodes)  # one box per node (inputs and returns are ovals)
    for node in g.nodes:
        label = boxes[node.outputs[0].name]
        assert label.startswith(node.op)
        for out in node.outputs:
            assert f"%{out.name}: {out.type}" in label
    for v in g.params.values():
        assert v.ref in dot
    n_edges = sum(1 for n in g.nodes for v in n.inputs if v.kind != "weight") + len(g.outputs)
    assert dot.count(" -> ") == n_edges
