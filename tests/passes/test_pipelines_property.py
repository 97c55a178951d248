"""Property: every pipeline keeps random valid graphs verifiable and their outputs unchanged.

Graphs are drawn from the operator registry: elementwise and broadcast operators (minus a
few whose domain random data leaves: exp, log, sqrt, pow, div, ...), shape operators (reshape,
transpose, their inverses and identities), conv2d (dense, grouped, depthwise; with or
without bias) with inference batch_norm and activations, residual adds, dropout in both
modes, duplicates (for CSE), weight expressions (for constant folding) and a linear head.

O1 and O3's extra pass are exact, so O1 must equal O0 and O3 must equal O2 exactly; O2
folds batch norms, whose tolerance compounds over the conv layers of a graph.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ir
from backends import reference
from ir.ops import Fusion, all_ops
from passes.plan_memory import check, plan_memory

from .helpers import apply

UNSAFE = {"exp", "log", "sqrt", "pow", "div", "dropout", "constant", "cast"}
# outside their domain (NaN), steep (tan near its poles, sinh and cosh overflowing) or
# discontinuous (round: O2's tolerance may move a value across a half)
UNSAFE |= {"asin", "acos", "atanh", "acosh", "tan", "sinh", "cosh", "round"}


def _float_map(op, arity: int) -> bool:
    """f32 operands in, f32 out, no required attributes (comparisons give bool: left out)."""
    t = ir.TensorType((2,))
    try:
        out = op.infer_types([t] * arity, op.check_attrs({}))
    except ir.LaminaError:
        return False
    return out == (t,)


UNARY = [op.name for op in all_ops() if op.fusion == Fusion.ELEMENTWISE and op.arity == (1, 1)
         and op.name not in UNSAFE and _float_map(op, 1)]
BINARY = [op.name for op in all_ops() if op.fusion == Fusion.BROADCAST and op.arity == (2, 2)
          and op.name not in UNSAFE and _float_map(op, 2)]
ACTS = ["relu", "relu6", "leaky_relu", "sigmoid", "tanh", "gelu"]
PIPELINE_TOLERANCE = {"rtol": 1e-3, "atol": 1e-4}


class Builder:
    """Grows a graph step by step from hypothesis choices; values in `pool` are [1,C,H,W]."""

    def __init__(self, draw, c: int, hw: int, seed: int):
        self.draw, self.c, self.hw = draw, c, hw
        self.rng = np.random.default_rng(seed)
        self.g = ir.Graph()
        self.pool = [self.g.add_input("x", ir.TensorType((1, c, hw, hw)))]

    def weight(self, shape, scale=1.0, offset=0.0):
        data = (self.rng.standard_normal(shape) * scale + offset).astype(np.float32)
        return self.g.add_weight(self.g.fresh_name("w"), data)

    def pick(self):
        """Half the time the newest value, so graphs grow deep as well as wide."""
        if self.draw(st.booleans()):
            return self.pool[-1]
        return self.draw(st.sampled_from(self.pool))

    def push(self, value):
        self.pool.append(value)
        return value

    # ---- steps --------------------------------------------------------------------------
    def unary(self):
        op = self.draw(st.sampled_from(UNARY))
        self.push(self.g.call(op, self.pick()))

    def binary(self):
        op = self.draw(st.sampled_from(BINARY))
        x = self.pick()
        shape = self.draw(st.sampled_from(["same", "channel", "scalar", "identity", "const"]))
        if shape == "same":
            other = self.pick()
        elif shape == "const":
            other = self.g.call("constant", value=self.draw(st.sampled_from([0.0, 1.0, 0.5])))
        elif shape == "identity":
            ident = ir.ops.get(op).identity
            if ident is None:
                return
            other = self.g.add_weight(self.g.fresh_name("id"),
                                      np.full((self.c, 1, 1), ident, np.float32))
        else:
            other = self.weight((self.c, 1, 1) if shape == "channel" else ())
        args = (x, other) if self.draw(st.booleans()) else (other, x)
        self.push(self.g.call(op, *args))

    def conv_block(self):
        c = self.c
        groups = self.draw(st.sampled_from([1, c, c // 2]))
        k = self.draw(st.sampled_from([1, 3]))
        w = self.weight((c, c // groups, k, k), scale=1 / np.sqrt(c // groups * k * k))
        bias = [self.weight((c,), 0.1)] if self.draw(st.booleans()) else []
        y = self.g.call("conv2d", self.pick(), w, *bias, groups=groups, pad=[k // 2] * 4)
        if self.draw(st.booleans()):
            y = self.batch_norm(y)
        if self.draw(st.booleans()):
            y = self.g.call("add", y, self.pick())
        if self.draw(st.booleans()):
            y = self.g.call(self.draw(st.sampled_from(ACTS)), y)
        self.push(y)

    def batch_norm(self, x=None):
        c = self.c
        stats = [self.weight((c,), 0.2, 1.0), self.weight((c,), 0.3), self.weight((c,), 0.3),
                 self.g.add_weight(self.g.fresh_name("var"),
                                   self.rng.uniform(0.3, 2.0, c).astype(np.float32))]
        y = self.g.call("batch_norm", x if x is not None else self.pick(), *stats)
        return y if x is not None else self.push(y)

    def shape(self):
        x = self.pick()
        kind = self.draw(st.sampled_from(["transpose", "reshape", "identity"]))
        if kind == "transpose":
            perm = self.draw(st.permutations(range(4)))
            t = self.g.call("transpose", x, perm=perm)
            inverse = [int(i) for i in np.argsort(perm)]
            y = self.g.call("transpose", self.g.call("relu", t), perm=inverse)
        elif kind == "reshape":
            y = self.g.call("reshape", self.g.call("reshape", x, shape=[-1]), shape=x.shape)
        else:
            y = self.g.call("reshape", x, shape=x.shape)
        self.push(y)

    def dropout(self):
        training = self.draw(st.booleans())
        self.push(self.g.call("dropout", self.pick(), ratio=0.25, training=training, seed=7))

    def duplicate(self):
        node = self.pool[-1].node
        if node is not None and node.op != "constant":
            self.push(self.g.create_node(node.op, node.inputs, dict(node.attrs)).outputs[0])

    def weight_expr(self):
        w = self.weight((self.c,))
        shaped = self.g.call("reshape", self.g.call("neg", w), shape=[self.c, 1, 1])
        self.push(self.g.call("mul", self.pick(), shaped))

    def head(self, x):
        flat = self.g.call("reshape", x, shape=[1, -1])
        n = flat.shape[1]
        y = self.g.call("linear", flat, self.weight((5, n), 1 / np.sqrt(n)))
        if self.draw(st.booleans()):
            y = self.g.call("add", y, self.weight((5,), 0.1))
        if self.draw(st.booleans()):
            y = self.g.call(self.draw(st.sampled_from(ACTS)), y)
        return y


STEPS = ["unary", "binary", "conv_block", "batch_norm", "shape", "dropout", "duplicate",
         "weight_expr"]


@st.composite
def graphs(draw):
    b = Builder(draw, draw(st.sampled_from([2, 4])), draw(st.sampled_from([3, 4])),
                draw(st.integers(0, 2**31)))
    for step in draw(st.lists(st.sampled_from(STEPS), min_size=1, max_size=12)):
        getattr(b, step)()
    outs = [b.pool[-1]]
    if draw(st.booleans()):
        outs.append(b.head(b.pick()))
    if draw(st.booleans()) and b.pick() not in outs:
        outs.append(b.pick())
    b.g.outputs = outs
    ir.verify(b.g)
    return b.g


def _run(g, x):
    return reference.run(g, x)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.integers(0, 2**31))
def test_every_pipeline_preserves_outputs_and_verifies(g, seed):
    x = np.random.default_rng(seed).standard_normal(g.inputs[0].shape).astype(np.float32)
    text = str(g)
    results = {}
    for level in range(4):
        out, _ = apply(__import__("passes").pipeline(level), g)  # verify after every pass
        assert str(ir.parse(str(out))) == str(out)
        check(plan_memory(out), out)  # with the graph: no write over a live value
        results[level] = (out, _run(out, x))
    assert str(g) == text  # the input graph is never modified
    expected = _run(g, x)
    for a, b in zip(results[0][1], expected):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(results[1][1], expected):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(results[3][1], results[2][1]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(results[2][1], expected):
        np.testing.assert_allclose(a, b, **PIPELINE_TOLERANCE)
    final = results[3][0]
    assert not any(n.op == "batch_norm" for n in final.nodes)
    assert not any(n.op == "dropout" and not n.attrs["training"] for n in final.nodes)
