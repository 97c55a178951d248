"""Inference identities: operators that return their input unchanged are removed.

    before:  %r: f32[2,8] = reshape(%x) {shape=[2,8]}                 # x is f32[2,8]
             %t: f32[8,2] = transpose(%r) {perm=[1,0]}
             %u: f32[2,8] = transpose(%t) {perm=[1,0]}
             %m: f32[2,8] = mul(%u, @ones)                             # @ones: f32[8], all 1
             %y: f32[2,8] = add(%m, %zero)                            # constant 0
    after:   (every reader of %y reads %x)

Rewrites: reshape/flatten to the same shape; reshape of reshape (one reshape); transpose of
transpose (one transpose, or none when the perms cancel); cast to the same dtype; and
`x op c` where c is known at compile time and every element equals the operator's identity
(`OpDef.identity`: x+0, x-0, x*1, x/1, x**1; either side for commutative operators) and
broadcasting leaves x's type unchanged. Exact, except that x+0 turns -0.0 into +0.0.
"""

from __future__ import annotations

import numpy as np

import ir

from .manager import EXACT, graph_pass
from .patterns import is_output, known, replace_nodes


def _same_input(node: ir.Node) -> ir.Value | None:
    """The input a node returns unchanged, if it does."""
    x = node.inputs[0] if node.inputs else None
    if node.op in ("reshape", "flatten", "cast") and x.type == node.output.type:
        return x
    if node.op == "transpose" and list(node.attrs["perm"]) == list(range(x.type.rank)):
        return x
    return None


def _identity_operand(graph: ir.Graph, node: ir.Node) -> ir.Value | None:
    """For `x op c` with c all identity elements: x (if the result has x's type)."""
    opdef = node.opdef
    if opdef.identity is None or len(node.inputs) != 2 or len(node.outputs) != 1:
        return None
    sides = [(0, 1), (1, 0)] if opdef.commutative else [(0, 1)]
    for keep, drop in sides:
        x, c = node.inputs[keep], node.inputs[drop]
        data = known(graph, c)
        if x.type == node.output.type and data is not None and data.size \
                and np.all(data == opdef.identity):
            return x
    return None


def _merge_shape_chain(graph: ir.Graph, node: ir.Node) -> bool:
    """reshape(reshape(x)) -> reshape(x); transpose(transpose(x)) -> one transpose."""
    if node.op not in ("reshape", "transpose"):
        return False
    inner = node.inputs[0].node
    if inner is None or inner.op != node.op:
        return False
    if node.op == "reshape":
        attrs = {"shape": node.output.shape}
    else:  # out[i] = mid[p2[i]] = x[p1[p2[i]]]
        p1, p2 = inner.attrs["perm"], node.attrs["perm"]
        attrs = {"perm": tuple(p1[i] for i in p2)}
    replace_nodes(graph, [node], node.op, [inner.inputs[0]], attrs, node.name)
    if not inner.output.uses and not is_output(graph, inner.output):
        graph.erase_node(inner)  # it fed only the node just merged
    return True


@graph_pass("eliminate_identities", EXACT)
def eliminate_identities(graph: ir.Graph) -> dict:
    """Remove identity reshapes/transposes/casts and x+0, x*1 style arithmetic."""
    counts = {"identity": 0, "merged": 0}
    for node in list(graph.nodes):
        if _merge_shape_chain(graph, node):
            counts["merged"] += 1
    for node in list(graph.nodes):
        x = _same_input(node) or _identity_operand(graph, node)
        if x is not None:
            graph.replace_all_uses_with(node.output, x)
            graph.erase_node(node)
            counts["identity"] += 1
    return counts
