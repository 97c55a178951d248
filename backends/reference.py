"""The reference interpreter: runs any verified graph with each operator's numpy semantics.

It is the oracle: passes are checked by running it before and after, native backends are
checked against it, and constant folding evaluates through it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ir import Graph, InputError, LaminaError, TensorType
from ir.ops import registry


class ReferenceModel:
    """A graph run by the numpy reference interpreter."""

    backend = "reference"

    def __init__(self, graph: Graph):
        self.graph = graph

    def __call__(self, *args, **keywords):
        out = run(self.graph, *check_inputs(self.graph, args, keywords))
        return out[0] if len(out) == 1 else tuple(out)

    def __repr__(self):
        return f"<compiled @{self.graph.name} on {self.backend}>"


def compile_graph(graph: Graph, **options) -> ReferenceModel:
    """The backend-table entry: the interpreter takes no options."""
    if options:
        raise LaminaError(f"the reference backend takes no options, got "
                          f"{', '.join(sorted(options))}")
    return ReferenceModel(graph)


def check_inputs(g: Graph, args: Sequence, keywords: dict | None = None) -> list[np.ndarray]:
    """Arrays matching the graph's input types exactly, or InputError saying what was expected."""
    sig = ", ".join(f"%{v.name}: {v.type}" for v in g.inputs)
    if keywords:  # inputs are positional, in the graph's order
        raise InputError(f"@{g.name} takes its inputs by position ({sig}), not by keyword: "
                         f"got {', '.join(map(repr, keywords))}")
    if len(args) != len(g.inputs):
        raise InputError(f"@{g.name} takes {len(g.inputs)} input(s) ({sig}), got {len(args)}")
    out = []
    for v, a in zip(g.inputs, args):
        try:
            a = np.asarray(a)
        except ValueError as e:  # a ragged nested list
            raise InputError(f"input %{v.name} expects {v.type}, got no array ({e})") from None
        if a.shape != v.type.shape or a.dtype != v.type.np_dtype:
            try:
                got = str(TensorType.of(a))
            except LaminaError:
                got = f"{a.dtype}{list(a.shape)}"
            raise InputError(f"input %{v.name} expects {v.type}, got {got}")
        out.append(a)
    return out


def run_node(node, args: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    opdef = registry.get(node.op)
    try:
        out = opdef.compute(*args, **node.attrs)
    except LaminaError as e:
        raise type(e)(f"node %{node.name} ({node.op}): {e}") from None
    out = out if isinstance(out, tuple) else (out,)
    return tuple(np.asarray(o, dtype=v.type.np_dtype).reshape(v.type.shape)
                 for o, v in zip(out, node.outputs))


def run(g: Graph, *args, keep: bool = False):
    """Outputs of `g` on `args` as a list of arrays; `keep=True` returns every value too,
    as a dict name -> array (what numeric bisection compares)."""
    env: dict[int, np.ndarray] = {id(v): a for v, a in zip(g.inputs, check_inputs(g, args))}
    for name, v in g.params.items():
        if name not in g.weights:
            raise LaminaError(f"weight @{name} has no data")
        env[id(v)] = g.weights[name]
    last_use = {}
    for i, n in enumerate(g.nodes):
        for v in n.inputs:
            last_use[id(v)] = i
    live_out = {id(v) for v in g.outputs}
    values = {}
    for i, node in enumerate(g.nodes):
        outs = run_node(node, [env[id(v)] for v in node.inputs])
        for v, a in zip(node.outputs, outs):
            env[id(v)] = a
            if keep:
                values[v.name] = a
        if not keep:  # free what no later node reads, so big models fit
            for v in node.inputs:
                if last_use[id(v)] == i and id(v) not in live_out and v.kind == "node":
                    env.pop(id(v), None)
    results = [env[id(v)] for v in g.outputs]
    return (results, values) if keep else results
