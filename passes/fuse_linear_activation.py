"""linear + bias + residual add + activation -> one fused_linear (see epilogue.py).

    before:  %h: f32[4,64] = linear(%x, @fc1.weight)
             %b: f32[4,64] = add(%h, @fc1.b)        # @fc1.b: f32[64]
             %y: f32[4,64] = gelu(%b)
    after:   %h: f32[4,64] = fused_linear(%x, @fc1.weight, @fc1.b) {act="gelu"}

Exact (a zero bias added to a bias-less linear may turn -0.0 into +0.0).
"""

from __future__ import annotations

from collections import Counter

import ir

from .epilogue import fuse
from .manager import EXACT, graph_pass


@graph_pass("fuse_linear_activation", EXACT)
def fuse_linear_activation(graph: ir.Graph) -> dict:
    """Fuse each linear with its bias add, residual add and activation."""
    counts = Counter()
    for node in [n for n in graph.nodes if n.op == "linear"]:
        counts.update(fuse(graph, node, "fused_linear") or {})
    return counts
