"""A dequantized weight in the layout `linear` takes, for fold_quantized to see: what ONNX's
MatMul (weight [in, out], per-channel scales on axis 1) and Gemm without transB import as.

    before:  %wd: f32[256,32] = dequantize(@w3) {axis=1, scale=[...32]}      # @w3: i8[256,32]
             %m: f32[1,32] = matmul(%x, %wd)
             %t: f32[10,32] = transpose(%w4d) {perm=[1,0]}     # %w4d dequantizes i8[32,10]
    after:   %wd: f32[32,256] = dequantize(@w3.t) {axis=0, scale=[...32]}    # @w3.t: i8[32,256]
             %m: f32[1,32] = linear(%x, %wd)
             %t: f32[10,32] = dequantize(@w4.t) {axis=0, ...}

Exact: the same products of the same numbers (x @ w is linear(x, w.T)); the transposed
weight is a copy in the other layout, the original dropped once nothing reads it.
"""

from __future__ import annotations

import numpy as np

import ir

from .patterns import drop_unused_weights, is_output


def _dequantized_matrix(value: ir.Value) -> ir.Node | None:
    """The dequantize producing `value` from a 2-D i8 weight, per tensor or per axis."""
    dq = value.node
    if dq is None or dq.op != "dequantize" or value.type.rank != 2:
        return None
    w = dq.inputs[0]
    return dq if w.kind == "weight" and w.type.dtype == "i8" else None


def _transposed(graph: ir.Graph, dq: ir.Node, before: ir.Node) -> ir.Value:
    """dequantize(w.T) with the scales' axis swapped, inserted before `before`."""
    w, a = dq.inputs[0], dq.attrs
    wt = graph.add_weight(graph.fresh_name(f"{w.name}.t"),
                          np.ascontiguousarray(graph.weights[w.name].T))
    with graph.inserting_before(before):
        return graph.call("dequantize", wt, scale=a["scale"], zero_point=a["zero_point"],
                          axis=1 - a["axis"] % 2, name=graph.fresh_name(f"{dq.name}.t"))


def _drop(graph: ir.Graph, value: ir.Value) -> None:
    dq = value.node
    if not value.uses and not is_output(graph, value):
        src = list(dq.inputs)
        graph.erase_node(dq)
        drop_unused_weights(graph, src)


def linear_layout(graph: ir.Graph) -> int:
    """Rewrite matmul(x, dequantize(W)) to linear(x, dequantize(W.T)) and transpose(
    dequantize(W)) to dequantize(W.T) for 2-D i8 weights W; returns how many."""
    count = 0
    for node in list(graph.nodes):
        if node.op == "matmul" and node.inputs[0].type.rank >= 2:
            dq = _dequantized_matrix(node.inputs[1])
            if dq is None:
                continue
            wd = _transposed(graph, dq, node)
            with graph.inserting_before(node):
                y = graph.call("linear", node.inputs[0], wd, name=graph.fresh_name(node.name))
        elif node.op == "transpose" and list(node.attrs["perm"]) == [1, 0]:
            dq = _dequantized_matrix(node.inputs[0])
            if dq is None:
                continue
            y = _transposed(graph, dq, node)
        else:
            continue
        old = node.inputs[-1] if node.op == "matmul" else node.inputs[0]
        graph.replace_all_uses_with(node.output, y)
        graph.erase_node(node)
        _drop(graph, old)
        count += 1
    return count
