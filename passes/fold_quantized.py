"""Quantize/dequantize pairs around a linear layer or a conv2d -> one integer `qlinear` or
`qconv2d` (ir/ops/quant.py); around a matmul, add, concat or max pool of activations ->
`qmatmul`, `qadd`, a concat of bytes, `qmax_pool2d` (below).

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

conv2d folds the same way into qconv2d (keeping its window attributes), grouped and
depthwise ones included (`groups` carries over; the weight [O, C/groups, KH, KW] has its
scales on axis 0 as for any conv):

    before:  %xd: f32[1,8,7,7] = dequantize(%xq) {scale=[0.02], zero_point=[128]}
             %wd: f32[8,1,3,3] = dequantize(@dw.w) {axis=0, scale=[...8]}
             %h: f32[1,8,7,7] = conv2d(%xd, %wd) {groups=8, pad=[1,1,1,1]}
             %hq: u8[1,8,7,7] = quantize(%h) {scale=[0.05], zero_point=[0]}
    after:   %hq: u8[1,8,7,7] = qconv2d(%xq, @dw.w) {groups=8, pad=[1,1,1,1], x_scale=0.02,
                                x_zero_point=128, w_scale=[...8], y_scale=0.05, ...}

Without the closing quantize (a layer whose float result is used: the logits) the layer
becomes `qlinear {dtype="f32"}`: the int32 sum scaled back to float. The matched input
must be per-tensor u8/i8, the weight a constant i8 weight (symmetric: zero points 0) per
tensor or per output channel (axis 0), the bias absent, a constant i32 with the scales
x_scale * w_scale[n] (what `compiler.quantize` writes), or a constant f32 (rounded here
to int32 in those units). A dequantize that still has other readers stays.

Activations on both sides (dequantize of a per-tensor u8/i8 value each):

    matmul -> [quantize]       -> qmatmul: the integer batched matmul (attention's Q.K^T,
                                  P.V); f32 out without the closing quantize
        before:  %ad = dequantize(%aq) {scale=[sa], zero_point=[za]}
                 %bd = dequantize(%bq) {scale=[sb], zero_point=[zb]}
                 %s: f32[2,4,8,8] = matmul(%ad, %bd)
                 %sq: u8[2,4,8,8] = quantize(%s) {scale=[sy], zero_point=[zy]}
        after:   %sq: u8[2,4,8,8] = qmatmul(%aq, %bq) {a_scale=sa, a_zero_point=za,
                                    b_scale=sb, b_zero_point=zb, y_scale=sy, y_zero_point=zy}
    add [-> relu] -> quantize  -> qadd (the residual add): the same float32 operations, in
                                  one kernel from bytes to bytes
    concat -> quantize         -> concat of the quantized inputs, when every input has the
                                  quantize's dtype, scale and zero point: bytes move
    max_pool2d -> quantize     -> quantize -> qmax_pool2d (any input: see the contracts)

(A matmul by a dequantized constant weight becomes a linear first: quantized_layout.)

Each fold's contract:
  linear/conv2d -> qlinear/qconv2d, matmul -> qmatmul: within one quantization step (below).
  add -> qadd: exact. qadd is defined as quantize(dequantize(a) + dequantize(b)), the same
    float32 operations in the same order (relu before the quantize equals the maximum with
    the zero point after it: quantizing is monotone and maps 0 to the zero point).
  concat -> concat of bytes: exact. With equal parameters quantize(dequantize(q)) == q:
    float32((q - z) * s) / s is within 2 ulp of the integer q - z, |q - z| <= 255, and
    rounding to the nearest integer recovers it.
  max_pool2d -> quantize -> quantize -> qmax_pool2d (the bytes' maximum): exact. The
    maximum commutes with quantizing (a monotone map) and padding (-inf) quantizes to the
    least byte, which qmax_pool2d pads with. The quantize moves before the pool, where the
    layer before it can then absorb it into its epilogue (pools fold first); when the
    pool's input is a dequantize with the same parameters, the bytes go in directly.

Numeric contract: approximate. The float graph sums the dequantized products in float32
and rounds once when re-quantizing; the integer kernel sums exactly. A quantized output may
therefore differ by one quantization step where the float sum falls within float32
rounding of a rounding boundary (never more: both round the same real value, once), and a
float output by float32 rounding of the sum. The registered tolerance (rtol 0.02, atol
0.02) holds for outputs of order one; tests check the one-step property directly. Grouped
convolutions hold the same contract: each output sums only its group's C/groups channels,
exactly, in the integer kernel.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

import ir
from ir.ops.quant import RANGES

from .manager import approximate, graph_pass
from .patterns import drop_unused_weights, erase_all, is_output, sole_user
from .quantized_layout import linear_layout

INTEGER_OPS = {"linear": "qlinear", "conv2d": "qconv2d"}  # float layer -> integer operator
MAX_QMATMUL_K = 33024  # K * 255 * 255 < 2**31: no int32 sum of qmatmul can overflow


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


def _closing_quantize(graph: ir.Graph, value: ir.Value) -> ir.Node | None:
    user = sole_user(graph, value)
    ok = user is not None and user.op == "quantize" and len(user.attrs["scale"]) == 1
    return user if ok else None


def _replace(graph: ir.Graph, chain: list[ir.Node], op: str, inputs, name: str,
             **attrs) -> None:
    """One node computing what `chain` (in order, each reading the one before) computed;
    the chain goes, and so do the dequantize nodes it read that nothing else reads."""
    with graph.inserting_before(chain[-1]):
        y = graph.call(op, *inputs, name=graph.fresh_name(name), **attrs)
    graph.replace_all_uses_with(chain[-1].output, y)
    dead = list(dict.fromkeys(chain[0].inputs))  # add(%d, %d): one dequantize to erase
    erase_all(graph, chain)
    _erase_unused_dequantize(graph, dead)


def _two(a, b) -> dict:
    return {"a_scale": a[1], "a_zero_point": a[2], "b_scale": b[1], "b_zero_point": b[2]}


def _fold_matmul(graph: ir.Graph, node: ir.Node) -> bool:
    a, b = (_input(graph, v) for v in node.inputs)
    if a is None or b is None or min(v.type.rank for v in node.inputs) < 2 \
            or node.inputs[0].type.shape[-1] > MAX_QMATMUL_K:
        return False
    quant = _closing_quantize(graph, node.output)
    out = {"dtype": "f32"} if quant is None else {
        "dtype": quant.attrs["dtype"], "y_scale": quant.attrs["scale"][0],
        "y_zero_point": quant.attrs["zero_point"][0]}
    _replace(graph, [node, *([quant] if quant else [])], "qmatmul", [a[0], b[0]],
             f"{node.name}.q", **_two(a, b), **out)
    return True


def _fold_add(graph: ir.Graph, node: ir.Node) -> bool:
    a, b = (_input(graph, v) for v in node.inputs)
    if a is None or b is None:
        return False
    chain, relu, quant = _epilogue(graph, node)
    if quant is None:  # qadd's result is bytes: a float sum stays a float add
        return False
    _replace(graph, chain, "qadd", [a[0], b[0]], f"{node.name}.q", **_two(a, b),
             y_scale=quant.attrs["scale"][0], y_zero_point=quant.attrs["zero_point"][0],
             dtype=quant.attrs["dtype"], relu=relu)
    return True


def _fold_concat(graph: ir.Graph, node: ir.Node) -> bool:
    quant = _closing_quantize(graph, node.output)
    if quant is None:
        return False
    ins = [_input(graph, v) for v in node.inputs]
    want = (quant.attrs["dtype"], np.float32(quant.attrs["scale"][0]),
            quant.attrs["zero_point"][0])
    if any(x is None or (x[0].type.dtype, np.float32(x[1]), x[2]) != want for x in ins):
        return False
    _replace(graph, [node, quant], "concat", [x[0] for x in ins], f"{node.name}.q",
             axis=node.attrs["axis"])
    return True


def _fold_max_pool(graph: ir.Graph, node: ir.Node) -> bool:
    quant = _closing_quantize(graph, node.output)
    if quant is None:
        return False
    a = quant.attrs
    src = _input(graph, node.inputs[0])
    same = src is not None and (src[0].type.dtype, np.float32(src[1]), src[2]) == (
        a["dtype"], np.float32(a["scale"][0]), a["zero_point"][0])
    if same:
        x = src[0]
    else:
        with graph.inserting_before(node):
            x = graph.call("quantize", node.inputs[0], **a,
                           name=graph.fresh_name(f"{node.inputs[0].name}.q"))
    _replace(graph, [node, quant], "qmax_pool2d", [x], f"{node.name}.q", **node.attrs)
    return True


BOTH_SIDES = {"matmul": ("qmatmul", _fold_matmul), "add": ("qadd", _fold_add),
              "concat": ("concat_u8", _fold_concat)}  # op -> (count's name, fold)


@graph_pass("fold_quantized", approximate(2e-2, 2e-2))
def fold_quantized(graph: ir.Graph) -> dict:
    """Fold each dequantize -> linear/conv2d [-> relu] [-> quantize] into one qlinear or
    qconv2d; dequantized activations -> matmul/add/concat -> quantize into qmatmul, qadd
    or a concat of bytes; max_pool2d -> quantize into quantize -> qmax_pool2d."""
    layouts = linear_layout(graph)  # imported QDQ MatMul/Gemm weights, as linear takes them
    counts = Counter({"matmul_as_linear": layouts} if layouts else {})
    for node in [n for n in graph.nodes if n.op == "max_pool2d"]:  # first: see the docstring
        if _fold_max_pool(graph, node):
            counts["qmax_pool2d"] += 1
    for node in [n for n in graph.nodes if n.op in INTEGER_OPS or n.op in BOTH_SIDES]:
        if node.op in INTEGER_OPS:
            if _fold(graph, node):
                counts[INTEGER_OPS[node.op]] += 1
        elif BOTH_SIDES[node.op][1](graph, node):
            counts[BOTH_SIDES[node.op][0]] += 1
    return counts
