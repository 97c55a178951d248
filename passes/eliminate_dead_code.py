"""Dead code elimination: nodes whose outputs nothing reads, then weights nothing reads.

    before:  %a: f32[4] = exp(%x)
             %b: f32[4] = relu(%x)        # read by nobody
             return %a
    after:   %a: f32[4] = exp(%x)
             return %a

Every operator is free of side effects (dropout's mask comes from its seed), so an unread
node can always go. Graph inputs stay: they are the signature.
"""

from __future__ import annotations

import ir

from .manager import EXACT, graph_pass
from .patterns import drop_unused_weights, is_output


@graph_pass("eliminate_dead_code", EXACT)
def eliminate_dead_code(graph: ir.Graph) -> dict:
    """Erase unread nodes (consumers first, so whole dead chains go) and unread weights."""
    nodes = 0
    for node in reversed(list(graph.nodes)):
        if all(not o.uses and not is_output(graph, o) for o in node.outputs):
            graph.erase_node(node)
            nodes += 1
    weights = drop_unused_weights(graph, list(graph.params.values()))
    return {"nodes": nodes, "weights": weights}
