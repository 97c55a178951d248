"""Inference-mode dropout is the identity: remove it and rewire its readers.

    before:  %h: f32[1,16] = relu(%x)
             %d: f32[1,16] = dropout(%h) {ratio=0.3}
             %y: f32[1,10] = linear(%d, @fc.weight, @fc.bias)
    after:   %h: f32[1,16] = relu(%x)
             %y: f32[1,10] = linear(%h, @fc.weight, @fc.bias)

Dropout with `training=true` and a non-zero ratio draws a mask and is kept.
"""

from __future__ import annotations

import ir

from .manager import EXACT, graph_pass


@graph_pass("eliminate_dropout", EXACT)
def eliminate_dropout(graph: ir.Graph) -> dict:
    """Remove dropout nodes that compute the identity (eval mode, or ratio 0)."""
    removed = 0
    for node in [n for n in graph.nodes if n.op == "dropout"]:
        if node.attrs["training"] and node.attrs["ratio"] > 0:
            continue
        graph.replace_all_uses_with(node.output, node.inputs[0])
        graph.erase_node(node)
        removed += 1
    return {"dropout": removed}
