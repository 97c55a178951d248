"""Copies the memory plan makes unnecessary: a concat's producers write straight into their
slots of its output, and reshape / flatten / squeeze / unsqueeze / transposes of unit axes
are views of their input. Each case checks that the optimisation happened (the plan stores
the value inside the other's buffer, and no copy kernel is generated) and the numbers
against the reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from backends import llvm, reference
from ir import Graph, TensorType
from passes.plan_memory import check, plan_memory
from tests.passes.test_plan_memory import concat_graphs

from .helpers import check_graph, randn


def conv(g: Graph, x, cout: int, k: int = 3, name: str | None = None):
    cin = x.shape[1]
    w = g.add_weight(g.fresh_name("w"), randn(cout, cin, k, k, scale=(cin * k * k) ** -0.5))
    b = g.add_weight(g.fresh_name("b"), randn(cout))
    pad = k // 2
    return g.call("conv2d", x, w, b, pad=[pad] * 4, name=name)


def dense_block(batch: int = 1, layers: int = 3, final_is_output: bool = False) -> Graph:
    """DenseNet's block as torchvision exports it: every layer reads the concat of all
    earlier feature maps (concat(x0), concat(x0, y1), ...) and the block ends with the concat
    of them all."""
    g = Graph("dense")
    x = g.add_input("x", TensorType((batch, 3, 8, 8)))
    feats = [g.call("relu", conv(g, x, 8), name="x0")]
    for i in range(1, layers + 1):
        joined = g.call("concat", *feats, axis=1, name=f"cat{i}")
        h = g.call("relu", conv(g, g.call("relu", joined), 8, k=1))
        feats.append(g.call("relu", conv(g, h, 4), name=f"y{i}"))
    block = g.call("concat", *feats, axis=1, name="block")
    g.outputs = [block] if final_is_output else [g.call("avg_pool2d", block, kernel=[2, 2],
                                                        stride=[2, 2], name="pooled")]
    return g


def inception(batch: int = 1) -> Graph:
    """GoogLeNet's inception block: four branches concatenated along channels, and the
    concat read by the next layer."""
    g = Graph("inception")
    x = g.add_input("x", TensorType((batch, 6, 9, 9)))
    stem = g.call("relu", conv(g, x, 8, k=1), name="stem")
    b1 = g.call("relu", conv(g, stem, 4, k=1), name="b1")
    b2 = g.call("relu", conv(g, g.call("relu", conv(g, stem, 3, k=1)), 5), name="b2")
    b3 = g.call("relu", conv(g, g.call("relu", conv(g, stem, 2, k=1)), 3, k=5), name="b3")
    pooled = g.call("max_pool2d", stem, kernel=[3, 3], stride=[1, 1], pad=[1, 1, 1, 1])
    b4 = g.call("relu", conv(g, pooled, 2, k=1), name="b4")
    joined = g.call("concat", b1, b2, b3, b4, axis=1, name="joined")
    g.outputs = [g.call("relu", conv(g, joined, 6, k=1), name="out")]
    return g


def copy_kernels(model, op: str) -> list[str]:
    return [n for n in model.kernel_names() if n.startswith(f"{op}.")]


def run(g: Graph, *shapes):
    inputs = [randn(*s) for s in shapes]
    model, _ = check_graph(g, inputs, rtol=1e-4, atol=1e-5, num_threads=1)
    return model


def test_dense_block_concats_need_no_copy():
    g = dense_block()
    plan = plan_memory(g)
    check(plan, g)
    # every feature map is written once, into its slot of the block's final concat ...
    for name, at in [("x0", 0), ("y1", 8), ("y2", 12), ("y3", 16)]:
        assert plan.aliases[name] == ("block", at * 64 * 4)
    # ... and the earlier concats are prefixes of it
    for i in (1, 2, 3):
        assert plan.aliases[f"cat{i}"] == ("block", 0)
    model = run(g, (1, 3, 8, 8))
    assert copy_kernels(model, "concat") == []


def test_inception_branches_write_into_their_slots():
    g = inception()
    plan = plan_memory(g)
    check(plan, g)
    slots = {"b1": 0, "b2": 4, "b3": 9, "b4": 12}
    assert {n: plan.aliases[n] for n in slots} == {n: ("joined", c * 81 * 4)
                                                   for n, c in slots.items()}
    model = run(g, (1, 6, 9, 9))
    assert copy_kernels(model, "concat") == []
    # a slot 324 bytes in is not 64-byte aligned: kernels must not assume more than the
    # element's alignment, and the canary check in run() sees nothing written past the end
    assert plan.offsets["b2"] % 64 != 0


def test_inception_in_place_on_two_threads():
    g = inception()
    x = randn(1, 6, 9, 9)
    model = llvm.compile_graph(g, num_threads=2)
    np.testing.assert_allclose(model(x), reference.run(g, x)[0], rtol=1e-4, atol=1e-5)


def test_batch_two_copies_as_before():
    """At batch 2 a slot is two separate ranges: the concats copy, and stay correct."""
    g = dense_block(batch=2)
    plan = plan_memory(g)
    assert not any(plan.aliases.get(n) for n in ("x0", "y1", "cat1", "cat2"))
    model = run(g, (2, 3, 8, 8))
    assert copy_kernels(model, "concat")


def test_a_concat_that_is_a_graph_output_is_copied_into_the_callers_array():
    g = dense_block(final_is_output=True)
    plan = plan_memory(g)
    check(plan, g)
    assert "block" not in plan.offsets and "y3" not in plan.aliases
    # the concat before it holds the earlier maps in place, and the ones before it are views
    assert [plan.aliases[n] for n in ("x0", "y1", "y2", "cat1", "cat2")] == [
        ("cat3", 0), ("cat3", 8 * 256), ("cat3", 12 * 256), ("cat3", 0), ("cat3", 0)]
    model = run(g, (1, 3, 8, 8))
    assert copy_kernels(model, "concat")


def test_repeated_and_graph_input_operands_are_copied():
    g = Graph()
    x = g.add_input("x", TensorType((1, 3, 4, 4)))
    a = g.call("relu", x, name="a")
    cat = g.call("concat", a, x, a, axis=1, name="cat")
    g.outputs = [g.call("neg", cat, name="out")]
    plan = plan_memory(g)
    check(plan, g)
    assert plan.aliases == {"a": ("cat", 0)}  # x is the caller's, a's second slot is a copy
    model = run(g, (1, 3, 4, 4))
    assert len(copy_kernels(model, "concat")) == 2


def test_producer_read_after_the_concat_reads_its_slot():
    """A concat input also read later: its readers find it in the concat's buffer, which
    stays live for them."""
    g = Graph()
    x = g.add_input("x", TensorType((1, 4, 5, 5)))
    a = g.call("relu", x, name="a")
    b = g.call("tanh", x, name="b")
    cat = g.call("concat", a, b, axis=1, name="cat")
    s = g.call("sigmoid", cat, name="s")
    late = g.call("exp", a, name="late")  # a, read after the concat and its reader
    g.outputs = [g.call("mul", g.call("neg", s), g.call("concat", late, late, axis=1))]
    plan = plan_memory(g)
    check(plan, g)
    assert plan.aliases["a"] == ("cat", 0) and plan.aliases["b"] == ("cat", 100 * 4)
    assert plan.lifetimes["cat"] == (0, 4)  # from relu(x) through exp(a), not (2, 3)
    run(g, (1, 4, 5, 5))


@pytest.mark.parametrize("op, attrs", [
    ("reshape", {"shape": [1, 200]}),
    ("flatten", {"axis": 1}),
    ("reshape", {"shape": [1, 8, 1, 5, 5]}),  # unsqueeze, as the ONNX importer builds it
    ("transpose", {"perm": [1, 0, 2, 3]}),  # moves only a unit axis
])
def test_views_are_not_copies(op, attrs):
    g = Graph()
    x = g.add_input("x", TensorType((1, 8, 5, 5)))
    h = g.call("relu", x, name="h")
    v = g.call(op, h, name="v", **attrs)
    g.outputs = [g.call("neg", v, name="out")]
    plan = plan_memory(g)
    check(plan, g)
    assert plan.aliases == {"h": ("v", 0)}  # relu writes straight into the view's buffer
    model = run(g, (1, 8, 5, 5))
    assert copy_kernels(model, op) == []


def test_a_real_transpose_is_still_a_copy():
    g = Graph()
    x = g.add_input("x", TensorType((1, 8, 5, 5)))
    v = g.call("transpose", g.call("relu", x, name="h"), perm=[0, 2, 3, 1], name="v")
    g.outputs = [g.call("neg", v, name="out")]
    assert plan_memory(g).aliases == {}
    assert copy_kernels(run(g, (1, 8, 5, 5)), "transpose")


def test_views_of_graph_inputs_and_outputs_are_copies():
    g = Graph()
    x = g.add_input("x", TensorType((2, 6)))
    r = g.call("reshape", x, shape=[3, 4], name="r")  # the caller's array: copied
    h = g.call("relu", r, name="h")
    g.outputs = [g.call("flatten", h, axis=0, name="out")]  # into the caller's array
    plan = plan_memory(g)
    assert plan.aliases == {}
    model = run(g, (2, 6))
    assert len(copy_kernels(model, "reshape")) == 1 and len(copy_kernels(model, "flatten")) == 1


def test_view_chain_and_view_inside_a_concat_slot():
    """flatten -> concat: the producer writes through two aliases into the slot."""
    g = Graph()
    x = g.add_input("x", TensorType((1, 4, 3, 3)))
    h = g.call("relu", x, name="h")
    f = g.call("flatten", h, axis=1, name="f")
    k = g.call("tanh", g.call("reshape", x, shape=[1, 36]), name="k")
    cat = g.call("concat", f, k, axis=1, name="cat")
    g.outputs = [g.call("neg", cat, name="out")]
    plan = plan_memory(g)
    check(plan, g)
    assert plan.aliases["h"] == ("cat", 0) and plan.aliases["f"] == ("cat", 0)
    assert plan.aliases["k"] == ("cat", 36 * 4)
    model = run(g, (1, 4, 3, 3))
    assert copy_kernels(model, "concat") == [] and copy_kernels(model, "flatten") == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(concat_graphs(max_steps=8))
def test_random_graphs_with_values_in_place_compute_what_the_reference_does(g):
    check(plan_memory(g), g)
    run(g, g.inputs[0].shape)


def test_concats_sharing_code_skip_different_inputs():
    """Two concats of the same types share their copy kernels; one has its first input in
    place, the other its second: each must still copy its own other input to its slot."""
    g = Graph()
    x = g.add_input("x", TensorType((1, 2, 3, 3)))
    c1 = g.call("concat", g.call("relu", x, name="a"), x, axis=1, name="c1")
    c2 = g.call("concat", x, g.call("neg", x, name="b"), axis=1, name="c2")
    g.outputs = [g.call("tanh", c1), g.call("tanh", c2)]
    assert plan_memory(g).aliases == {"a": ("c1", 0), "b": ("c2", 72)}
    model = run(g, (1, 2, 3, 3))
    assert len(copy_kernels(model, "concat")) == 2
