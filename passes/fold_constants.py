"""Constant folding: a node whose inputs are all known at compile time becomes a weight.

    before:  @w: f32[8,4]
             %c: f32[] = constant() {value=2.0}
             %wt: f32[4,8] = transpose(@w) {perm=[1,0]}
             %s: f32[4,8] = mul(%wt, %c)
             %y: f32[1,8] = matmul(%x, %s)
    after:   @w: f32[8,4]
             @s.folded: f32[4,8]
             %y: f32[1,8] = matmul(%x, @s.folded)

Nodes are evaluated with their operator's reference semantics (`OpDef.compute`, coerced to
the declared type exactly as the reference interpreter does), so folding is exact. This
covers shape computations on weights (reshape, transpose, concat, slice of constants) and
initialiser-producing operators (`constant`, which has no inputs). Results larger than
`MAX_BYTES` stay computed at run time rather than bloating the weights; weights that only
fed folded nodes are removed.
"""

from __future__ import annotations

import numpy as np

import ir

from .manager import EXACT, graph_pass
from .patterns import drop_unused_weights

MAX_BYTES = 64 << 20


def _foldable(graph: ir.Graph, node: ir.Node) -> bool:
    return all(v.kind == "weight" and v.name in graph.weights for v in node.inputs) \
        and sum(o.type.nbytes for o in node.outputs) <= MAX_BYTES


def _evaluate(graph: ir.Graph, node: ir.Node) -> list[np.ndarray]:
    args = [graph.weights[v.name] for v in node.inputs]
    try:
        out = node.opdef.compute(*args, **node.attrs)
    except ir.LaminaError as e:
        raise type(e)(f"node %{node.name} ({node.op}): {e}") from None
    out = out if isinstance(out, tuple) else (out,)
    return [np.asarray(a, v.type.np_dtype).reshape(v.type.shape)
            for a, v in zip(out, node.outputs)]


@graph_pass("fold_constants", EXACT)
def fold_constants(graph: ir.Graph) -> dict:
    """Replace nodes computable at compile time by weights holding their results."""
    folded, inputs = 0, []
    for node in list(graph.nodes):
        if not _foldable(graph, node):
            continue
        for value, array in zip(node.outputs, _evaluate(graph, node)):
            weight = graph.add_weight(graph.fresh_name(f"{value.name}.folded"), array)
            graph.replace_all_uses_with(value, weight)
        inputs += node.inputs
        graph.erase_node(node)
        folded += 1
    return {"nodes": folded, "weights_removed": drop_unused_weights(graph, inputs)}
