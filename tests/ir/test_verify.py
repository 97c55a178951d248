"""The verifier's invariants, and the editing primitives that keep them."""

from __future__ import annotations

import numpy as np
import pytest

import ir
from backends.reference import run


def _graph():
    """x -> conv1 -> relu1 -> add1(relu1, conv1) -> out; conv1 reads two weights."""
    rng = np.random.default_rng(1)
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((1, 2, 5, 5)))
    w = g.add_weight("conv1.weight", rng.standard_normal((3, 2, 3, 3)).astype(np.float32))
    b = g.add_weight("conv1.bias", rng.standard_normal(3).astype(np.float32))
    c = g.call("conv2d", x, w, b, name="conv1", pad=(1, 1, 1, 1))
    r = g.call("relu", c, name="relu1")
    g.outputs = [g.call("add", r, c, name="add1")]
    ir.verify(g)
    return g


def _node(g, name):
    (node,) = [n for n in g.nodes if n.name == name]
    return node


def _breaks(g, *fragments):
    with pytest.raises(ir.VerifyError) as info:
        ir.verify(g)
    for f in fragments:
        assert f in str(info.value), str(info.value)


def test_valid_graph_passes():
    ir.verify(_graph())


def test_use_before_definition():
    g = _graph()
    g.nodes = [g.nodes[1], g.nodes[0], g.nodes[2]]
    _breaks(g, "%relu1", "%conv1", "used before it is defined")


def test_cycle():
    g = _graph()
    conv, relu = _node(g, "conv1"), _node(g, "relu1")
    conv.replace_input(g.inputs[0], relu.output)  # types differ too; the cycle is found first
    _breaks(g, "cycle", "%conv1", "%relu1")


def test_wrong_declared_output_type():
    g = _graph()
    conv = _node(g, "conv1")
    conv.output.type = ir.TensorType((1, 3, 4, 4))
    _breaks(g, "node %conv1 (conv2d)", "f32[1,3,4,4]", "infers f32[1,3,5,5]")


def test_wrong_type_given_to_create_node():
    g = _graph()
    with g.inserting_after(_node(g, "relu1")):
        g.create_node("neg", [_node(g, "relu1").output], name="neg1",
                      types=[ir.TensorType((1, 3, 5, 5), "f64")])
    _breaks(g, "node %neg1 (neg)", "f64[1,3,5,5]")


@pytest.mark.parametrize("attrs, fragment", [
    ({"groups": 0}, "groups=0 is invalid"),
    ({"groups": 2}, "groups=2 must divide"),
    ({"stride": (1,)}, "stride=(1,) is invalid"),
    ({"pad": (1, 1, 1, -1)}, "pad=(1, 1, 1, -1) is invalid"),
    ({"foo": 1}, "unknown attribute(s) ['foo']"),
    ({"groups": "1"}, "'groups' must be int"),
    ({"pad": [1, 1, 1, 1]}, "not normalised"),
])
def test_invalid_attributes(attrs, fragment):
    g = _graph()
    _node(g, "conv1").attrs.update(attrs)
    _breaks(g, "node %conv1 (conv2d)", fragment)


def test_missing_attribute():
    g = _graph()
    del _node(g, "conv1").attrs["stride"]
    _breaks(g, "node %conv1 (conv2d)", "not normalised")


def test_unknown_operator_and_wrong_arity():
    g = _graph()
    _node(g, "relu1").op = "frobnicate"
    _breaks(g, "frobnicate")
    g = _graph()
    relu = _node(g, "relu1")
    relu._set_inputs([relu.inputs[0], relu.inputs[0]])
    _breaks(g, "node %relu1 (relu)", "takes 1 inputs, got 2")


@pytest.mark.parametrize("corrupt", ["extra_use", "missing_use", "bypassed_setter"])
def test_stale_use_lists(corrupt):
    g = _graph()
    conv, relu, add = (_node(g, n) for n in ("conv1", "relu1", "add1"))
    if corrupt == "extra_use":
        conv.output.uses.append(relu)
    elif corrupt == "missing_use":
        conv.output.uses.remove(add)
    else:  # rewiring an operand without going through replace_input
        add.inputs = (relu.output, relu.output)
    _breaks(g, "use list is stale", "%conv1" if corrupt != "bypassed_setter" else "%")


def test_missing_or_mistyped_weight_data():
    g = _graph()
    del g.weights["conv1.bias"]
    _breaks(g, "@conv1.bias", "has no data")
    ir.verify(g, check_weights=False)
    g.weights["conv1.bias"] = np.zeros(3, np.float64)
    _breaks(g, "@conv1.bias", "holds f64[3]")


def test_duplicate_names_and_dangling_values():
    g = _graph()
    _node(g, "relu1").output.name = "conv1"
    _breaks(g, "'conv1' is defined twice")
    g = _graph()
    other = ir.Graph().add_input("elsewhere", ir.TensorType((1, 3, 5, 5)))
    g.outputs = [other]
    _breaks(g, "graph output 0", "%elsewhere", "not defined")
    g = _graph()
    relu = _node(g, "relu1")
    relu.replace_input(_node(g, "conv1").output, other)
    _breaks(g, "node %relu1 (relu)", "%elsewhere", "used before it is defined")


def test_output_pointing_elsewhere():
    g = _graph()
    _node(g, "relu1").output.node = _node(g, "conv1")
    _breaks(g, "node %relu1 (relu)", "does not point back")


# ---- editing primitives ------------------------------------------------------------------
def test_replace_all_uses_with_rewires_readers_and_outputs():
    g = _graph()
    conv, relu, add = (_node(g, n) for n in ("conv1", "relu1", "add1"))
    x = g.inputs[0]
    before = run(g, np.ones((1, 2, 5, 5), np.float32))
    g.outputs.append(conv.output)
    with g.inserting_after(conv):  # the same convolution, computed a second time
        new = g.call("conv2d", *conv.inputs, name="conv2", **conv.attrs)
    count = g.replace_all_uses_with(conv.output, new)
    assert count == 3  # relu1, add1 and one graph output
    assert conv.output.uses == [] and new.uses == [relu, add]
    assert relu.inputs == (new,) and add.inputs == (relu.output, new)
    assert g.outputs[1] is new
    g.erase_node(conv)
    ir.verify(g)
    after = run(g, np.ones((1, 2, 5, 5), np.float32))
    np.testing.assert_array_equal(after[0], before[0])
    with pytest.raises(ir.VerifyError, match="types differ"):
        g.replace_all_uses_with(new, x)


def test_replace_all_uses_counts_a_repeated_operand_once_but_moves_both():
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((3,)))
    a = g.call("relu", x, name="a")
    s = g.call("add", a, a, name="s")
    g.outputs = [s]
    with g.inserting_before(s.node):
        b = g.call("neg", x, name="b")
    assert g.replace_all_uses_with(a, b) == 1
    assert s.node.inputs == (b, b) and b.uses == [s.node, s.node] and a.uses == []
    g.erase_node(a.node)
    ir.verify(g)
    data = np.array([-1, 0, 2], np.float32)
    np.testing.assert_array_equal(run(g, data)[0], -2 * data)


def test_erase_node_refuses_a_node_in_use():
    g = _graph()
    conv, relu = _node(g, "conv1"), _node(g, "relu1")
    with pytest.raises(ir.VerifyError, match="%conv1"):
        g.erase_node(conv)
    with pytest.raises(ir.VerifyError, match="%add1"):
        g.erase_node(_node(g, "add1"))  # a graph output is a use
    ir.verify(g)
    g.replace_all_uses_with(relu.output, conv.output)
    g.erase_node(relu)
    assert relu not in g.nodes and relu.inputs == ()
    assert conv.output.uses == [_node(g, "add1"), _node(g, "add1")]
    ir.verify(g)
    assert g.fresh_name("relu1") == "relu1"  # the name is free again


def test_insertion_points():
    g = _graph()
    conv, relu, add = (_node(g, n) for n in ("conv1", "relu1", "add1"))
    with g.inserting_before(relu):
        a = g.call("neg", conv.output, name="a")
        b = g.call("abs", a, name="b")
    with g.inserting_after(conv):
        c = g.call("exp", conv.output, name="c")
    d = g.call("tanh", add.output, name="d")  # no insertion point: appended
    assert [n.name for n in g.nodes] == ["conv1", "c", "a", "b", "relu1", "add1", "d"]
    assert [b.node, c.node, d.node] == [g.nodes[3], g.nodes[1], g.nodes[-1]]
    ir.verify(g)
    with pytest.raises(RuntimeError), g.inserting_before(conv):
        raise RuntimeError("the insertion point must be restored")
    assert g.call("relu", d, name="e").node is g.nodes[-1]
    with g.inserting_before(relu), g.inserting_after(conv):  # innermost wins, then restored
        g.call("neg", conv.output, name="f")
        assert g.nodes[1].name == "f"
    g.call("neg", d, name="h")
    assert g.nodes[-1].name == "h"


def test_topological_sort_restores_order_and_keeps_free_order():
    g = _graph()
    x = g.inputs[0]
    with g.inserting_before(g.nodes[0]):
        g.call("exp", x, name="e1")
        g.call("exp", x, name="e2")
    expected = [n.name for n in g.nodes]
    g.nodes.reverse()
    with pytest.raises(ir.VerifyError):
        ir.verify(g)
    g.topological_sort()
    names = [n.name for n in g.nodes]
    assert names.index("conv1") < names.index("relu1") < names.index("add1")
    assert names.index("e2") < names.index("e1")  # independent: reversed order is kept
    ir.verify(g)
    g.nodes = [_node(g, n) for n in expected]
    g.topological_sort()
    assert [n.name for n in g.nodes] == expected  # already sorted: unchanged


def test_topological_sort_reports_a_cycle():
    g = _graph()
    _node(g, "conv1").replace_input(g.inputs[0], _node(g, "add1").output)
    with pytest.raises(ir.VerifyError, match="cycle"):
        g.topological_sort()


def test_networkx_view_and_copy():
    g = _graph()
    d = g.to_networkx()
    assert d.number_of_nodes() == 3 and d.number_of_edges() == 3  # c->r, r->a, c->a
    h = g.copy()
    assert str(h) == str(g) and h.weights["conv1.bias"] is g.weights["conv1.bias"]
    ir.verify(h)


def test_remove_weight_refuses_a_weight_in_use():
    g = _graph()
    with pytest.raises(ir.VerifyError, match=r"@conv1\.bias"):
        g.remove_weight("conv1.bias")
    conv = _node(g, "conv1")
    conv._set_inputs(conv.inputs[:2])
    g.remove_weight("conv1.bias")
    assert "conv1.bias" not in g.params and "conv1.bias" not in g.weights
    ir.verify(g)
