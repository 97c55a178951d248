"""passes.autodiff.grad: the transformation itself (accumulation, pruning, outputs, errors)."""

from __future__ import annotations

import numpy as np
import pytest

import ir
import passes
from backends.reference import run
from passes.autodiff import GradError, grad
from tests.training.numeric import check_graph_grads


def _graph(text: str, **weights) -> ir.Graph:
    g = ir.parse(text, weights)
    ir.verify(g)
    return g


SHARED = """
graph @main(%x: f64[3,4]) -> (f64[]) {
  @w: f64[4,4]
  %h: f64[3,4] = matmul(%x, @w)
  %t: f64[3,4] = tanh(%h)
  %s: f64[3,4] = mul(%t, %h)
  %u: f64[3,4] = matmul(%s, @w)
  %l: f64[] = reduce_sum(%u)
  return %l
}
"""


def test_values_read_several_times_accumulate(rng):
    w = rng.standard_normal((4, 4))
    g = _graph(SHARED, w=w)
    gg = grad(g, inputs=["x"])
    assert [v.name for v in gg.inputs] == ["x"] and len(gg.outputs) == 3
    x = rng.standard_normal((3, 4))
    out = run(gg, x)
    check_graph_grads(g, [x], ["w", "x"], out[1:], rng)
    # @w and %h are each read twice: their gradients are sums
    adds = [n for n in gg.nodes if n.op == "add"]
    assert len(adds) >= 2


def test_unused_branches_are_pruned(rng):
    g = _graph("""
graph @main(%x: f32[2,3], %y: f32[2,3]) -> (f32[], f32[2,3]) {
  @w: f32[3,3]
  @v: f32[3,3]
  %a: f32[2,3] = matmul(%x, @w)
  %side: f32[2,3] = matmul(%y, @v)
  %e: f32[2,3] = exp(%side)
  %l: f32[] = reduce_mean(%a)
  return %l, %e
}""", w=np.eye(3, dtype=np.float32), v=np.eye(3, dtype=np.float32))
    gg = grad(g, wrt=["w"])
    ops = [n.op for n in gg.nodes]
    assert "exp" not in ops and ops.count("matmul") == 2  # forward and the one gradient
    assert "v" not in gg.params
    kept = grad(g, wrt=["w"], keep_outputs=True)
    assert [str(v.type) for v in kept.outputs] == ["f32[]", "f32[2,3]", "f32[3,3]"]
    assert "exp" in [n.op for n in kept.nodes]


def test_gradient_only_for_nodes_on_a_path(rng):
    """%c does not depend on @w: no rule runs for it (max_pool2d_grad has none)."""
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((1, 1, 4, 4), "f64"))
    w = g.add_weight("w", rng.standard_normal((1, 1, 4, 4)))
    p = g.call("max_pool2d", x, kernel=(2, 2), stride=(2, 2))
    c = g.call("max_pool2d_grad", x, p, kernel=(2, 2), stride=(2, 2))
    g.outputs = [g.call("reduce_sum", g.call("mul", g.call("add", c, w), w))]
    gg = grad(g, wrt=["w"])
    xv = rng.standard_normal((1, 1, 4, 4))
    check_graph_grads(g, [xv], ["w"], run(gg, xv)[1:], rng)
    with pytest.raises(GradError, match=r"node %max_pool2d_grad \(max_pool2d_grad\).*no gradient"):
        grad(g, wrt=["w"], inputs=["x"])


def test_unused_outputs_of_a_split_get_zeros(rng):
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((2, 6), "f64"))
    a, _b, c = g.call("split", x, axis=1, sizes=(1, 2, 3))
    g.outputs = [g.call("add", g.call("reduce_sum", a), g.call("reduce_mean", c))]
    gg = grad(g, inputs=True)
    dx = run(gg, rng.standard_normal((2, 6)))[1]
    np.testing.assert_allclose(dx, [[1, 0, 0, 1 / 6, 1 / 6, 1 / 6]] * 2)


def test_unconnected_and_integer_values():
    g = _graph("""
graph @main(%x: f32[3], %i: i64[2]) -> (f32[]) {
  @w: f32[3]
  @u: f32[3]
  %y: f32[3] = mul(%x, @w)
  %g: f32[2] = gather(%y, %i)
  %l: f32[] = reduce_sum(%g)
  return %l
}""", w=np.ones(3, np.float32), u=np.ones(3, np.float32))
    gg = grad(g, wrt=["w", "u"])
    _, dw, du = run(gg, np.arange(3, dtype=np.float32), np.array([2, 2]))
    np.testing.assert_array_equal(dw, [0, 0, 4])
    np.testing.assert_array_equal(du, [0, 0, 0])  # the loss does not read @u
    with pytest.raises(GradError, match=r"%i.*i64"):
        grad(g, inputs=["i"])
    with pytest.raises(GradError, match=r"no input or weight named 'nope'"):
        grad(g, wrt=["nope"])


def test_the_loss_must_be_a_float_scalar():
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((3,)))
    g.outputs = [g.call("relu", x)]
    with pytest.raises(GradError, match=r"must be a float scalar, got f32\[3\]"):
        grad(g, inputs=True)
    with pytest.raises(GradError, match="no output 2"):
        grad(g, inputs=True, loss=2)


def test_backward_graph_is_ordinary_ir(rng):
    """It prints and parses back, verifies, and the optimisation pipelines keep its numbers."""
    g = _graph(SHARED, w=rng.standard_normal((4, 4)))
    gg = grad(g, inputs=["x"])
    assert str(ir.parse(str(gg), gg.weights)) == str(gg)
    x = rng.standard_normal((3, 4))
    want = run(gg, x)
    for level in (1, 2, 3):
        for a, b in zip(run(passes.optimize(gg, opt_level=level), x), want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_rule_returning_a_wrong_type_is_named(monkeypatch):
    opdef = ir.ops.get("exp")
    monkeypatch.setattr(opdef, "grad", lambda b, node, grads: [
        b.call("reduce_sum", grads[0])])
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((3,)))
    g.outputs = [g.call("reduce_sum", g.call("exp", x, name="e"))]
    with pytest.raises(GradError, match=r"node %e \(exp\): gradient rule gave f32\[\] for input "
                                        r"%x of type f32\[3\]"):
        grad(g, inputs=True)
