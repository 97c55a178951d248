"""Elementwise fusion: regions of elementwise/broadcast operators become one fused_elementwise.

    before:  %s: f32[1,8,4,4] = mul(%x, @bn.scale)       # @bn.scale: f32[8,1,1]
             %t: f32[1,8,4,4] = add(%s, @bn.shift)
             %u: f32[1,8,4,4] = sigmoid(%t)
             %y: f32[1,8,4,4] = mul(%t, %u)
    after:   %y: f32[1,8,4,4] = fused_elementwise(%x, @bn.scale, @bn.shift) {body=graph
               @body(%p0: f32[1,8,4,4], %p1: f32[8,1,1], %p2: f32[8,1,1]) -> (f32[1,8,4,4]) {
               %s: f32[1,8,4,4] = mul(%p0, %p1)
               %t: f32[1,8,4,4] = add(%s, %p2)
               %u: f32[1,8,4,4] = sigmoid(%t)
               %y: f32[1,8,4,4] = mul(%t, %u)
               return %y
             }}

A region has one root (its only value read outside it) and grows backwards: walking the
nodes last to first, a fusable node (`ir.ops.fused.fusable`; not a constant, which has no
inputs to loop over) joins the region of its readers when all of them are in that one
region and it is not a graph output. Chains, trees and diamonds (one producer feeding
several region nodes) all fuse; because every non-root node reaches the root, collapsing a
region cannot create a cycle. Regions of one node are left alone. Body nodes keep their
names and attributes, so the reference semantics and the result are exactly the same.
"""

from __future__ import annotations

import math

import ir
from ir.ops.fused import fusable

from .manager import EXACT, graph_pass
from .patterns import is_output, replace_nodes


def _regions(graph: ir.Graph) -> list[list[ir.Node]]:
    """Fusable regions of two or more nodes, each in graph order, root last."""
    region_of: dict[ir.Node, int] = {}
    members: list[list[ir.Node]] = []
    for node in reversed(graph.nodes):
        if not node.inputs or len(node.outputs) != 1 or not fusable(node.op):
            continue
        readers = {region_of.get(u) for u in node.users}
        if len(readers) == 1 and None not in readers and not is_output(graph, node.output):
            rid = readers.pop()
        else:  # the root of a new region
            rid = len(members)
            members.append([])
        region_of[node] = rid
        members[rid].append(node)
    return [list(reversed(m)) for m in members if len(m) > 1]


def _body(graph: ir.Graph, nodes: list[ir.Node]) -> tuple[ir.Graph, list[ir.Value]]:
    """The region as a graph, and the outside values feeding it (its parameters, in order).
    A one-element weight (GELU's 0.5 and 3, a scale) enters the body as a constant: the
    kernel then sees its value (`x ** 3` becomes multiplications, `x * 1.0` nothing)."""
    body, env, outside = ir.Graph("body"), {}, []
    for n in nodes:
        for v in n.inputs:
            if id(v) in env:
                continue
            value = _scalar_weight(graph, v)
            if value is not None:
                env[id(v)] = body.call("constant", value=value, shape=list(v.shape),
                                       dtype=v.dtype, name=body.fresh_name(v.name))
            else:
                env[id(v)] = body.add_input(body.fresh_name(f"p{len(outside)}"), v.type)
                outside.append(v)
        new = body.create_node(n.op, [env[id(v)] for v in n.inputs], dict(n.attrs), n.name,
                               [o.type for o in n.outputs])
        env[id(n.output)] = new.output
    body.outputs = [env[id(nodes[-1].output)]]
    return body, outside


def _scalar_weight(graph: ir.Graph, v: ir.Value) -> float | None:
    """The value of a finite one-element float weight (else None)."""
    if v.kind != "weight" or v.type.size != 1 or v.dtype not in ("f32", "f64") \
            or v.name not in graph.weights:
        return None
    value = float(graph.weights[v.name].item())
    return value if math.isfinite(value) else None


@graph_pass("fuse_elementwise", EXACT)
def fuse_elementwise(graph: ir.Graph) -> dict:
    """Replace each region of fusable operators by one fused_elementwise node."""
    regions = _regions(graph)
    for nodes in regions:
        body, outside = _body(graph, nodes)
        replace_nodes(graph, nodes, "fused_elementwise", outside, {"body": body}, nodes[-1].name)
    return {"regions": len(regions), "nodes": sum(len(r) for r in regions)}
