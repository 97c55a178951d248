"""Epilogue fusion shared by conv2d and linear: the matcher and the rewrite.

A layer (conv2d or linear) followed by, in order and each optional,
    a bias add      add(y, @c), c a known per-channel vector, only when the layer has no bias
    a residual add  add(y, r) or add(r, y), r of exactly y's type
    an activation   relu, relu6, leaky_relu, sigmoid, tanh, gelu (exact form)
where every intermediate value has that one reader, becomes one fused operator
(`fused_conv2d` / `fused_linear`, see ir/ops/fused.py) computing act(layer + b + residual)
in the same order, so the rewrite is exact (a zero bias added where the layer had none can
turn -0.0 into +0.0). A layer with nothing to absorb is left alone.
"""

from __future__ import annotations

import numpy as np

import ir
from ir.ops.fused import ACTIVATIONS

from .patterns import Step, chain, drop_unused_weights, known, replace_nodes


def _channel_axis(layer: ir.Node) -> int:
    return 1 if layer.op == "conv2d" else layer.output.type.rank - 1


def _other(node: ir.Node, value: ir.Value) -> ir.Value:
    a, b = node.inputs
    return b if a is value else a


def _bias_vector(graph: ir.Graph, layer: ir.Node, add: ir.Node, y: ir.Value):
    """The known per-channel vector `add` adds to y, as [C], or None."""
    if len(layer.inputs) == 3 or add.output.type != y.type:
        return None
    c = _other(add, y)
    data = known(graph, c)
    axis, channels = _channel_axis(layer), y.shape[_channel_axis(layer)]
    if data is None or data.size != channels or data.dtype != y.type.np_dtype:
        return None
    # it must vary along the channel axis only: shape [..., C, 1, ...] aligned to y
    shape = (1,) * (y.type.rank - data.ndim) + data.shape
    if any(d != 1 for i, d in enumerate(shape) if i != axis):
        return None
    return data.reshape(channels)


def _activation(node: ir.Node) -> tuple[str, float] | None:
    if node.op not in ACTIVATIONS or node.op == "none":
        return None
    if node.op == "gelu" and node.attrs["approximate"] != "none":
        return None
    return node.op, node.attrs.get("alpha", 0.01)


def match(graph: ir.Graph, layer: ir.Node):
    """(nodes, bias, residual, act, alpha) for the fusable epilogue of `layer`, or None."""
    found = {"bias": None, "residual": None}

    def bias_add(n, y):
        found["bias"] = _bias_vector(graph, layer, n, y) if n.op == "add" else None
        return found["bias"] is not None

    def residual_add(n, y):
        ok = n.op == "add" and n.inputs[0] is not n.inputs[1] and _other(n, y).type == y.type \
            and n.output.type == y.type
        found["residual"] = _other(n, y) if ok else None
        return ok

    nodes = chain(graph, layer, [Step(bias_add, True), Step(residual_add, True),
                                 Step(lambda n, y: _activation(n) is not None, True)])
    if nodes is None or len(nodes) == 1:
        return None
    act, alpha = _activation(nodes[-1]) or ("none", 0.01)
    return nodes, found["bias"], found["residual"], act, alpha


def fuse(graph: ir.Graph, layer: ir.Node, fused_op: str) -> dict | None:
    """Rewrite `layer` and its epilogue into `fused_op`; the counts of what was absorbed."""
    m = match(graph, layer)
    if m is None:
        return None
    nodes, bias, residual, act, alpha = m
    x, w = layer.inputs[:2]
    if len(layer.inputs) == 3:
        b = layer.inputs[2]
    else:  # the fused operators always take a bias
        data = bias if bias is not None else np.zeros(w.shape[0], w.type.np_dtype)
        b = graph.add_weight(graph.fresh_name(f"{layer.name}.bias"), data)
    inputs = [x, w, b] + ([residual] if residual is not None else [])
    attrs = {**layer.attrs, "act": act, "alpha": alpha}
    swallowed = [v for n in nodes for v in n.inputs]
    replace_nodes(graph, nodes, fused_op, inputs, attrs, layer.name)
    drop_unused_weights(graph, swallowed)  # e.g. a bias reshaped into a new weight
    return {"fused": 1, "bias": int(bias is not None), "residual": int(residual is not None),
            "activation": int(act != "none")}
