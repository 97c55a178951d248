"""conv3d, conv3d_grad_input, max_pool3d, avg_pool3d: lowered by their decomposition into
2-D operators (ir/ops/volumetric.py, the one place it is written), so the 3-D operators run
on the fast conv2d GEMM and pooling kernels.

`lower_expansion` builds the decomposition as a small graph over the node's operands, folds
what depends only on weights (the conv weight's [O, KD*Cg, KH, KW] reordering) into
compile-time constants, drops what the result does not need, and lowers each remaining
node with its own lowering into this node's phases. Intermediates are scratch of this
node: arena space live only while it runs.
"""

from __future__ import annotations

import ir
from ir.ops.volumetric import EXPANSIONS

from .kernel import Buf, Kernel
from .registry import LOWERINGS, lowering


@lowering(*EXPANSIONS)
def lower_volumetric(k: Kernel) -> None:
    lower_expansion(k, EXPANSIONS[k.node.op])


def lower_expansion(k: Kernel, expand) -> None:
    sub, operands = _expanded(k, expand)
    bufs = {id(v): buf for v, buf in zip(operands, k.inputs)}
    out = sub.outputs[0]
    for node in sub.nodes:
        ins = [bufs.get(id(v)) or _constant(k, sub, v, bufs) for v in node.inputs]
        (v,) = node.outputs
        bufs[id(v)] = Buf(k.outputs[0].name, v.type, k.outputs[0].where) if v is out else \
            _scratch(k, v)
        child = Kernel(k.cg, node, ins, [bufs[id(v)]])
        LOWERINGS[node.op](child)
        k.phases.extend(child.phases)
        k.scratch.extend(child.scratch)


def _expanded(k: Kernel, expand) -> tuple[ir.Graph, list[ir.Value]]:
    """The decomposition as a graph: the node's operands (weights keep their data), weight-only
    subexpressions folded by the registry's numpy semantics, dead nodes dropped."""
    sub = ir.Graph(f"{k.node.name}.expanded")
    # (weight_data: the folded constants are not recipes, so such a compile is not cached)
    operands = [sub.add_weight(v.name, k.weight_data(i)) if v.kind == "weight"
                else sub.add_input(v.name, v.type) for i, v in enumerate(k.node.inputs)]
    out = expand(_Folding(sub), *operands, **k.attrs)
    if out.kind != "node":
        raise ir.LaminaError(f"{k.where}: its decomposition computes nothing")
    sub.outputs = [out]
    for node in reversed(list(sub.nodes)):
        if not any(o.uses or o is out for o in node.outputs):
            sub.erase_node(node)
    return sub, operands


class _Folding:
    """A builder that computes a node at once when all its operands are weights."""

    def __init__(self, g: ir.Graph):
        self.g = g

    def call(self, op, *inputs, **attrs):
        v = self.g.call(op, *inputs, **attrs)
        if inputs and all(i.kind == "weight" for i in inputs):
            node = v.node
            data = node.opdef.compute(*(self.g.weights[i.name] for i in inputs), **node.attrs)
            self.g.erase_node(node)
            return self.g.add_weight(self.g.fresh_name(f"{op}.folded"), data)
        return v


def _constant(k: Kernel, sub: ir.Graph, v: ir.Value, bufs: dict) -> Buf:
    """A folded weight: a compile-time array passed to this node's phases (made from weight
    values read by k.weight_data, so the compile cache does not share this compilation)."""
    bufs[id(v)] = k.constant(sub.weights[v.name], v.name)
    return bufs[id(v)]


def _scratch(k: Kernel, v: ir.Value) -> Buf:
    buf = Buf(f"{k.node.name}.{v.name}", v.type)
    k.scratch.append(buf)
    return buf
