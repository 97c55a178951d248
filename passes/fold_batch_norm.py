"""Batch-norm folding: inference batch_norm after conv2d/linear rescales its weights.

    before:  %c: f32[1,16,8,8] = conv2d(%x, @conv1.weight) {pad=[1,1,1,1]}
             %n: f32[1,16,8,8] = batch_norm(%c, @bn1.weight, @bn1.bias, @bn1.running_mean,
                                            @bn1.running_var)
    after:   %c: f32[1,16,8,8] = conv2d(%x, @conv1.weight.folded, @conv1.bias.folded)
                                 {pad=[1,1,1,1]}

With s = gamma / sqrt(var + eps): W' = W * s (per output channel, axis 0 of the weight, so
grouped and depthwise convs fold the same way), b' = (b - mean) * s + beta, b = 0 when the
layer had no bias; computed in float64, stored in the weight's dtype. linear folds when its
output is [N, C] (channel axis 1 is then the feature axis).

A batch_norm that cannot fold (its input has other readers or is a graph output, the
producer is not conv2d/linear, or the producer's weights are not known) but whose
statistics are known becomes a per-channel scale and shift:
             %n.scaled: ... = mul(%h, @n.scale)        # [C,1,1]
             %n: ... = add(%n.scaled, @n.shift)
batch_norm with training=true (batch statistics) is left alone.
Approximate: rounding of the rescaled weights changes results at rtol=1e-4, atol=1e-5.
"""

from __future__ import annotations

import numpy as np

import ir

from .manager import approximate, graph_pass
from .patterns import drop_unused_weights, is_output, known, replace_nodes

LAYERS = ("conv2d", "linear")


def _scale_shift(graph: ir.Graph, bn: ir.Node):
    """Per-channel (scale, shift) in float64, or None when the statistics are not known."""
    params = [known(graph, v) for v in bn.inputs[1:]]
    if any(p is None for p in params):
        return None
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    scale = gamma / np.sqrt(var + bn.attrs["eps"])
    return scale, beta - mean * scale


def _layer(graph: ir.Graph, bn: ir.Node) -> ir.Node | None:
    """The conv2d/linear feeding `bn` when it may be folded into."""
    x = bn.inputs[0]
    layer = x.node
    if layer is None or layer.op not in LAYERS or len(x.uses) != 1 or is_output(graph, x):
        return None
    if layer.op == "linear" and x.type.rank != 2:
        return None
    if any(known(graph, v) is None for v in layer.inputs[1:]):
        return None
    return layer


def _fold(graph: ir.Graph, bn: ir.Node, layer: ir.Node, scale, shift) -> None:
    w_value = layer.inputs[1]
    w = known(graph, w_value)
    b = known(graph, layer.inputs[2]) if len(layer.inputs) > 2 else np.zeros(w.shape[0])
    w_new = (w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
    b_new = (b.astype(np.float64) * scale + shift).astype(w.dtype)
    base = w_value.name.removesuffix(".weight")
    w_ref = graph.add_weight(graph.fresh_name(f"{base}.weight.folded"), w_new)
    b_ref = graph.add_weight(graph.fresh_name(f"{base}.bias.folded"), b_new)
    old = list(layer.inputs[1:]) + list(bn.inputs[1:])
    replace_nodes(graph, [layer, bn], layer.op, [layer.inputs[0], w_ref, b_ref], layer.attrs,
                  layer.name)
    drop_unused_weights(graph, old)


def _to_mul_add(graph: ir.Graph, bn: ir.Node, scale, shift) -> None:
    x = bn.inputs[0]
    shape = (x.shape[1],) + (1,) * (x.type.rank - 2)
    dtype = x.type.np_dtype
    s = graph.add_weight(graph.fresh_name(f"{bn.name}.scale"), scale.reshape(shape).astype(dtype))
    t = graph.add_weight(graph.fresh_name(f"{bn.name}.shift"), shift.reshape(shape).astype(dtype))
    with graph.inserting_before(bn):
        scaled = graph.call("mul", x, s, name=f"{bn.name}.scaled")
    old = list(bn.inputs[1:])
    replace_nodes(graph, [bn], "add", [scaled, t], {}, bn.name)
    drop_unused_weights(graph, old)


@graph_pass("fold_batch_norm", approximate(rtol=1e-4, atol=1e-5))
def fold_batch_norm(graph: ir.Graph) -> dict:
    """Fold inference batch_norm into conv2d/linear, or else into a scale and shift."""
    counts = {"conv2d": 0, "linear": 0, "scale_shift": 0}
    for bn in [n for n in graph.nodes if n.op == "batch_norm" and not n.attrs["training"]]:
        factors = _scale_shift(graph, bn)
        if factors is None:
            continue
        layer = _layer(graph, bn)
        if layer is not None:
            _fold(graph, bn, layer, *factors)
            counts[layer.op] += 1
        else:
            _to_mul_add(graph, bn, *factors)
            counts["scale_shift"] += 1
    return counts
