"""Every operator's gradient rule against central finite differences, in float64.

Parametrised over the registry: an operator must either have cases in op_cases.py (and a
rule) or be listed there as non-differentiable with the reason, so a new operator without
either fails `test_every_operator_is_covered`.
"""

from __future__ import annotations

import numpy as np
import pytest

import ir
from backends.reference import run
from passes.autodiff import grad
from tests.training.numeric import check_graph_grads

from .op_cases import CASES, NON_DIFFERENTIABLE, STOPS_GRADIENT, GradCase, by_op

FLOATS = ("f32", "f64")


def loss_graph(c: GradCase, rng) -> ir.Graph:
    """loss = sum over float outputs of sum(output * R), R random: every output element gets
    its own, non-trivial incoming gradient."""
    g = ir.Graph()
    values = [g.add_input(k, ir.TensorType.of(a)) for k, a in c.args.items()]
    outs = g.call(c.op, *values, name="y", **c.attrs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    loss = None
    for i, o in enumerate(outs):
        if o.dtype not in FLOATS:
            continue
        r = g.add_weight(f"r{i}", rng.standard_normal(o.shape).astype(o.type.np_dtype))
        term = g.call("reduce_sum", g.call("mul", o, r))
        loss = term if loss is None else g.call("add", loss, term)
    g.outputs = [loss]
    return g


def test_every_operator_is_covered():
    cases = by_op()
    for op in ir.ops.names():
        opdef = ir.ops.get(op)
        if op in STOPS_GRADIENT:
            assert op not in cases and opdef.grad is not None, op
        elif op in NON_DIFFERENTIABLE:
            assert op not in cases, f"{op} is listed as non-differentiable but has cases"
            assert opdef.grad is None, f"{op} has a gradient rule but is listed as " \
                                       "non-differentiable"
        else:
            assert op in cases, (f"operator {op} has no gradient case in tests/training/"
                                 f"op_cases.py and is not listed in NON_DIFFERENTIABLE")
            assert opdef.grad is not None, f"operator {op} has gradient cases but no rule"


def test_no_case_names_an_unknown_operator():
    assert set(by_op()) | set(NON_DIFFERENTIABLE) | set(STOPS_GRADIENT) <= set(ir.ops.names())


@pytest.mark.parametrize("op", sorted(STOPS_GRADIENT))
def test_stopping_operators_pass_no_gradient(op):
    """loss = sum(x * op(x)): only the first factor's path carries a gradient, so dx = op(x)
    = x, where calculus through both factors would give 2x."""
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((2, 3), "f64"))
    g.outputs = [g.call("reduce_sum", g.call("mul", x, g.call(op, x)))]
    xv = np.arange(6.0).reshape(2, 3) - 2.5
    np.testing.assert_array_equal(run(grad(g, inputs=["x"]), xv)[1], xv)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_gradient_matches_finite_differences(c: GradCase, rng):
    g = loss_graph(c, rng)
    ir.verify(g)
    wrt = [k for k, a in c.args.items() if a.dtype.kind == "f"]
    gg = grad(g, wrt=[], inputs=wrt)
    assert str(ir.parse(str(gg), gg.weights)) == str(gg)  # the backward graph is plain IR
    args = list(c.args.values())
    out = run(gg, *args)
    np.testing.assert_allclose(out[0], run(g, *args)[0], rtol=1e-12)
    check_graph_grads(g, args, wrt, out[1:], rng)


def test_cast_gradient_keeps_the_input_dtype():
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((3,), "f32"))
    g.outputs = [g.call("reduce_sum", g.call("cast", x, dtype="f64"))]
    gg = grad(g, inputs=["x"])
    assert gg.outputs[1].type == ir.TensorType((3,), "f32")
    np.testing.assert_array_equal(run(gg, np.ones(3, np.float32))[1], np.ones(3, np.float32))
