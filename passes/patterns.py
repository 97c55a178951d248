"""Small matching and editing helpers that keep the passes short.

`chain(node, steps)` follows a value through its single users, `conv2d -> batch_norm ->
relu` style; `known(graph, value)` says what a value holds when it is known at compile time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

import ir


def is_output(graph: ir.Graph, value: ir.Value) -> bool:
    return any(o is value for o in graph.outputs)


def sole_user(graph: ir.Graph, value: ir.Value) -> ir.Node | None:
    """The node that is the only reader of `value` (one operand, not a graph output): a
    value with other readers must survive, so it cannot be swallowed by a rewrite."""
    if len(value.uses) != 1 or is_output(graph, value):
        return None
    return value.uses[0]


def known(graph: ir.Graph, value: ir.Value) -> np.ndarray | None:
    """The array a value holds when known at compile time (a weight with data, or a
    `constant` node's output), else None."""
    if value.kind == "weight":
        return graph.weights.get(value.name)
    if value.node is not None and value.node.op == "constant":
        a = value.node.attrs
        return np.full(a["shape"], a["value"], value.type.np_dtype)
    return None


@dataclass(frozen=True)
class Step:
    """One link of a chain: a test on the next node, which may be skipped if optional."""

    test: Callable[[ir.Node, ir.Value], bool]  # (candidate user, value it reads) -> match?
    optional: bool = False


def chain(graph: ir.Graph, node: ir.Node, steps: Sequence[Step]) -> list[ir.Node] | None:
    """`[node, *matched]` following sole users through `steps` in order; optional steps that
    do not match are skipped; None when a required step fails."""
    out = [node]
    for step in steps:
        value = out[-1].outputs[0] if len(out[-1].outputs) == 1 else None
        user = sole_user(graph, value) if value is not None else None
        if user is not None and step.test(user, value):
            out.append(user)
        elif not step.optional:
            return None
    return out


def replace_nodes(graph: ir.Graph, nodes: Sequence[ir.Node], op: str,
                  inputs: Sequence[ir.Value], attrs: dict, name: str) -> ir.Value:
    """Replace `nodes` (whose only value read outside them is the last one's output) by one
    `op` node where the last one stood, taking the name `name` once the old nodes free it,
    so that rewritten IR keeps the names readers know (`%conv1` stays `%conv1`)."""
    with graph.inserting_before(nodes[-1]):
        tmp = graph.call(op, *inputs, **attrs)
    graph.replace_all_uses_with(nodes[-1].output, tmp)
    erase_all(graph, nodes)
    with graph.inserting_before(tmp.node):  # now that `name` is free again
        y = graph.call(op, *inputs, name=name, **attrs)
    graph.replace_all_uses_with(tmp, y)
    graph.erase_node(tmp.node)
    return y


def erase_all(graph: ir.Graph, nodes: Iterable[ir.Node]) -> None:
    """Erase nodes consumers-first (each must be unused once its readers are gone)."""
    for n in sorted(nodes, key=graph.nodes.index, reverse=True):
        graph.erase_node(n)


def drop_unused_weights(graph: ir.Graph, values: Iterable[ir.Value]) -> int:
    """Remove those of `values` that are weights nothing reads any more."""
    dropped = 0
    for v in dict.fromkeys(values):
        if v.kind == "weight" and v.name in graph.params and not v.uses \
                and not is_output(graph, v):
            graph.remove_weight(v.name)
            dropped += 1
    return dropped
