"""Small models for the command-line and bisection tests, as MODEL specs
(`tests/compiler/cli_models.py:build`): each returns (graph, example input)."""

import numpy as np

import ir

F32 = np.float32


def build():
    """conv -> batch_norm -> relu -> pool -> linear -> an elementwise tail: every -O3 pass
    that matters fires (batch-norm folding, conv fusion, elementwise fusion)."""
    rng = np.random.default_rng(0)
    g = ir.Graph("tiny")
    x = g.add_input("x", ir.TensorType((2, 3, 8, 8)))
    w = g.add_weight("conv.weight", (0.3 * rng.standard_normal((4, 3, 3, 3))).astype(F32))
    gamma = g.add_weight("bn.weight", rng.uniform(0.5, 1.5, 4).astype(F32))
    beta = g.add_weight("bn.bias", rng.normal(0, 0.1, 4).astype(F32))
    mean = g.add_weight("bn.running_mean", rng.normal(0, 0.1, 4).astype(F32))
    var = g.add_weight("bn.running_var", rng.uniform(0.5, 1.5, 4).astype(F32))
    fw = g.add_weight("fc.weight", (0.5 * rng.standard_normal((5, 4))).astype(F32))
    fb = g.add_weight("fc.bias", rng.normal(0, 0.1, 5).astype(F32))
    c = g.call("conv2d", x, w, name="conv", pad=(1, 1, 1, 1))
    n = g.call("batch_norm", c, gamma, beta, mean, var, name="bn")
    r = g.call("relu", n, name="relu")
    p = g.call("global_avg_pool", r, name="pool")
    f = g.call("reshape", p, name="flat", shape=(2, -1))
    y = g.call("linear", f, fw, fb, name="fc")
    t = g.call("tanh", y, name="squash")
    m = g.call("mul", t, y, name="gate")
    g.outputs = [g.call("add", m, y, name="out")]
    return g, rng.standard_normal((2, 3, 8, 8)).astype(F32)


def build_elementwise():
    """Only elementwise operators and a linear: what a young native backend lowers first."""
    rng = np.random.default_rng(1)
    g = ir.Graph("ew")
    x = g.add_input("x", ir.TensorType((4, 8)))
    fw = g.add_weight("fc.weight", (0.5 * rng.standard_normal((6, 8))).astype(F32))
    fb = g.add_weight("fc.bias", rng.normal(0, 0.1, 6).astype(F32))
    y = g.call("linear", x, fw, fb, name="fc")
    t = g.call("tanh", y, name="squash")
    g.outputs = [g.call("add", g.call("mul", t, y, name="gate"), y, name="out")]
    return g, rng.standard_normal((4, 8)).astype(F32)
