"""Shared helpers for pass tests: IR-text fixtures with weight data, running passes under
the verifier, and checking a pass's numeric contract with the reference interpreter."""

from __future__ import annotations

from collections import Counter

import numpy as np

import ir
import passes
from backends import reference

RNG = np.random.default_rng(1234)


def parse(text: str, weights: dict | None = None, rng=RNG) -> ir.Graph:
    """A graph from IR text; weights not in `weights` get random normal data."""
    g = ir.parse(text)
    for name, v in g.params.items():
        data = (weights or {}).get(name)
        if data is None:
            data = rng.standard_normal(v.type.shape).astype(v.type.np_dtype)
        g.weights[name] = np.asarray(data, v.type.np_dtype)
    ir.verify(g)
    return g


def apply(names, graph: ir.Graph, **options):
    """Run passes (a name or a list) with the verifier on; returns (new graph, stats)."""
    pm = passes.PassManager([names] if isinstance(names, str) else names, verify=True,
                            **options)
    return pm.run(graph), pm.stats


def ops(graph: ir.Graph) -> Counter:
    return Counter(n.op for n in graph.nodes)


def expect_ir(graph: ir.Graph, text: str) -> None:
    """The graph prints exactly as `text` does once parsed (so layout does not matter)."""
    assert str(graph) == str(ir.parse(text)), f"got:\n{graph}"


def random_inputs(graph: ir.Graph, rng=RNG) -> list[np.ndarray]:
    out = []
    for v in graph.inputs:
        if v.type.dtype in ("f32", "f64"):
            out.append(rng.standard_normal(v.shape).astype(v.type.np_dtype))
        else:
            out.append(np.zeros(v.shape, v.type.np_dtype))
    return out


def assert_contract(before: ir.Graph, after: ir.Graph, contract: passes.Contract,
                    trials: int = 3, rng=RNG) -> None:
    """Reference outputs before and after agree as the contract says, on random inputs."""
    for _ in range(trials):
        args = random_inputs(before, rng)
        for a, b in zip(reference.run(before, *args), reference.run(after, *args)):
            if contract.exact:
                np.testing.assert_array_equal(b, a)
            else:
                np.testing.assert_allclose(b, a, rtol=contract.rtol, atol=contract.atol)


def bn_stats(c: int, rng=RNG) -> dict[str, np.ndarray]:
    """Non-trivial batch-norm parameters, so that folding really changes the weights."""
    return {"gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(0, 0.5, c),
            "mean": rng.normal(0, 0.5, c), "var": rng.uniform(0.2, 2.0, c)}
