"""conv2d + bias + residual add + activation -> one fused_conv2d (see epilogue.py).

    before:  %c: f32[1,16,8,8] = conv2d(%h, @conv2.weight.folded, @conv2.bias.folded)
                                 {pad=[1,1,1,1]}
             %s: f32[1,16,8,8] = add(%c, %x)
             %y: f32[1,16,8,8] = relu(%s)
    after:   %c: f32[1,16,8,8] = fused_conv2d(%h, @conv2.weight.folded, @conv2.bias.folded,
                                 %x) {act="relu", pad=[1,1,1,1]}

Run it after fold_batch_norm, so that conv + bn + relu ends as one operator. Exact (a zero
bias added to a bias-less conv may turn -0.0 into +0.0).
"""

from __future__ import annotations

from collections import Counter

import ir

from .epilogue import fuse
from .manager import EXACT, graph_pass


@graph_pass("fuse_conv_activation", EXACT)
def fuse_conv_activation(graph: ir.Graph) -> dict:
    """Fuse each conv2d with its bias add, residual add and activation."""
    counts = Counter()
    for node in [n for n in graph.nodes if n.op == "conv2d"]:
        counts.update(fuse(graph, node, "fused_conv2d") or {})
    return counts
