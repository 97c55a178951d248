"""One node cut out of a graph as a graph of its own, so a backend can compile, time or check
it alone (per-node profiling of native code, finding the node a backend gets wrong)."""

from __future__ import annotations

import ir


def single_node(node: ir.Node) -> tuple[ir.Graph, list[ir.Value]]:
    """(a graph computing only `node`, the values of the parent graph it takes as inputs).

    The node's non-weight operands become the graph's inputs (each once, in order); its
    weights come along with their data; its outputs keep their names and types."""
    parent = node.graph
    g = ir.Graph(f"node_{node.name}".replace(".", "_"))
    env: dict[int, ir.Value] = {}
    args: list[ir.Value] = []
    for v in node.inputs:
        if id(v) in env:
            continue
        if v.kind == "weight":
            data = parent.weights.get(v.name)
            env[id(v)] = (g.add_weight(v.name, data) if data is not None
                          else g.add_weight(v.name, type=v.type))
        else:
            env[id(v)] = g.add_input(v.name, v.type)
            args.append(v)
    new = g.create_node(node.op, [env[id(v)] for v in node.inputs], dict(node.attrs),
                        name=node.name, types=[o.type for o in node.outputs])
    g.outputs = list(new.outputs)
    return g, args
