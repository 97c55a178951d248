"""Quantize/dequantize pairs around a linear layer or a conv2d -> one integer `qlinear` or
`qconv2d` (ir/ops/quant.py).

    before:  @fc.w: i8[64,32]     @fc.b: i32[64]
             %xq: u8[4,32] = quantize(%x) {scale=[0.02], zero_point=[128]}
             %xd: f32[4,32] = dequantize(%xq) {scale=[0.02], zero_point=[128]}
             %wd: f32[64,32] = dequantize(@fc.w) {axis=0, scale=[...64]}
             %bd: f32[64] = dequantize(@fc.b) {axis=0, scale=[0.02 * w_scale...]}
             %h: f32[4,64] = linear(%xd, %wd, %bd)
             %r: f32[4,64] = relu(%h)
             %hq: u8[4,64] = quantize(%r) {scale=[0.05], zero_point=[0]}
    after:   %xq: u8[4,32] = quantize(%x) {scale=[0.02], zero_point=[128]}
             %hq: u8[4,64] = qlinear(%xq, @fc.w, @fc.b) {dtype="u8", relu=true,
                              w_scale=[...64], x_scale=0.02, x_zero_point=128, y_scale=0.05}

conv2d folds the same way into qconv2d (keeping its window attributes). Without the
closing quantize (a layer whose float result is used: the logits) the layer
becomes `qlinear {dtype="f32"}`: the int32 sum scaled back to float. The matched input
must be per-tensor u8/i8, the weight a constant i8 weight (symmetric: zero points 0) per
tensor or per output channel (axis 0), the bias absent, a constant i32 with the scales
x_scale * w_scale[n] (what `compiler.quantize` writes), or a constant f32 (rounded here
to int32 in those units). A dequantize that still has other readers stays.

Numeric contract: approximate. The float graph sums the dequantized products in float32
and rounds once when re-quantizing; the integer kernel sums exactly. A quantized output may
therefore differ by one quantization step where the float sum falls within float32
rounding of a rounding boundary (never more: both round the same real value, once), and a
float output by float32 rounding of the sum. The registered tolerance (rtol 0.02, atol
0.02) holds for outputs of order one; tests check the one-step property directly.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

import ir
from ir.ops.quant import RANGES

from .manager import approximate, graph_pass
from .patterns import drop_unused_weights, erase_all, is_output, sole_user

INTEGER_OPS = {"linear": "qlinear", "conv2d": "qconv2d"}  # float layer -> integer operator


def _producer(value: ir.Value, op: str) -> ir.Node | None:
    node = value.node
    return node if node is not None and node.op == op else None


def _input(graph, xd: ir.Value):
    """(quantized value, x_scale, x_zero_point) when `xd` dequantizes a per-tensor u8/i8."""
    dq = _producer(xd, "dequantize")
    if dq is None or dq.inputs[0].type.dtype not in RANGES or len(dq.attrs["scale"]) != 1:
        return None
    return dq.inputs[0], dq.attrs["scale"][0], dq.attrs["zero_point"][0]


def _weight(graph, wd: ir.Value):
    """(i8 weight value, per-channel scales) for a symmetric dequantized constant weight."""
    dq = _producer(wd, "dequantize")
    if dq is None:
        return None
    w, a = dq.inputs[0], dq.attrs
    per_axis_ok = len(a["scale"]) == 1 or a["axis"] % w.type.rank == 0
    if w.kind != "weight" or w.type.dtype != "i8" or any(a["zero_point"]) or not per_axis_ok:
        return None
    return w, tuple(a["scale"])


def _bias(graph, bd: ir.Value | None, x_scale: float, w_scale, n: int):
    """The i32 bias weight in units of x_scale * w_scale[n] (made here from an f32 constant);
    False when the bias cannot be expressed so (a different scale, a runtime value)."""
    if bd is None:
        return None
    want = np.float32(x_scale) * np.broadcast_to(np.asarray(w_scale, np.float32), (n,))
    dq = _producer(bd, "dequantize")
    if dq is not None:
        b, a = dq.inputs[0], dq.attrs
        scale = np.broadcast_to(np.asarray(a["scale"], np.float32), (n,))
        same = np.allclose(scale, want, rtol=1e-6, atol=0)
        if b.kind == "weight" and b.type.dtype == "i32" and not any(a["zero_point"]) and same:
            return b
        return False
    data = graph.weights.get(bd.name) if bd.kind == "weight" else None
    if data is None or bd.type.dtype != "f32":
        return False
    q = np.clip(np.rint(data.astype(np.float64) / want), -(2**31), 2**31 - 1).astype(np.int32)
    return graph.add_weight(graph.fresh_name(f"{bd.name}.q"), q)


def _epilogue(graph, node: ir.Node):
    """The nodes after the linear that fold into it: [relu], [quantize per tensor]."""
    chain, relu, quant = [node], False, None
    user = sole_user(graph, node.output)
    if user is not None and user.op == "relu":
        chain.append(user)
        relu = True
        user = sole_user(graph, user.output)
    if user is not None and user.op == "quantize" and len(user.attrs["scale"]) == 1:
        chain.append(user)
        quant = user
    return chain, relu, quant


def _fold(graph: ir.Graph, node: ir.Node) -> bool:
    x = _input(graph, node.inputs[0])
    w = _weight(graph, node.inputs[1])
    if x is None or w is None:
        return False
    xq, x_scale, x_zp = x
    (wq, w_scale), n = w, node.inputs[1].type.shape[0]
    bq = _bias(graph, node.inputs[2] if len(node.inputs) == 3 else None, x_scale, w_scale, n)
    if bq is False:
        return False
    chain, relu, quant = _epilogue(graph, node)
    attrs = {**node.attrs, "x_scale": x_scale, "x_zero_point": x_zp, "w_scale": w_scale,
             "relu": relu}  # (conv2d's window attributes carry over)
    if quant is None:
        attrs.update(dtype="f32")
    else:
        attrs.update(dtype=quant.attrs["dtype"], y_scale=quant.attrs["scale"][0],
                     y_zero_point=quant.attrs["zero_point"][0])
    last = chain[-1].output
    with graph.inserting_before(chain[-1]):
        y = graph.call(INTEGER_OPS[node.op], xq, wq, *([bq] if bq is not None else []),
                       name=graph.fresh_name(f"{node.name}.q"), **attrs)
    graph.replace_all_uses_with(last, y)
    dead = list(node.inputs)
    erase_all(graph, chain)
    _erase_unused_dequantize(graph, dead)
    return True


def _erase_unused_dequantize(graph: ir.Graph, values) -> None:
    for v in values:
        dq = v.node
        if dq is not None and dq.op == "dequantize" and not v.uses and not is_output(graph, v):
            src = list(dq.inputs)
            graph.erase_node(dq)
            drop_unused_weights(graph, src)
        elif v.kind == "weight":
            drop_unused_weights(graph, [v])


@graph_pass("fold_quantized", approximate(2e-2, 2e-2))
def fold_quantized(graph: ir.Graph) -> dict:
    """Fold each dequantize -> linear/conv2d [-> relu] [-> quantize] into one qlinear or
    qconv2d."""
    counts = Counter()
    for node in [n for n in graph.nodes if n.op in INTEGER_OPS]:
        if _fold(graph, node):
            counts[INTEGER_OPS[node.op]] += 1
    return counts
