"""The ONNX exporter functions, one per registered operator (see exporter.save_onnx).

Each writes the ONNX node(s) that compute what the operator computes: directly where ONNX has
the operator, as a small composition otherwise (gelu before opset 20, batch norm in training,
the fused operators, the gradients' operators).
"""

from __future__ import annotations

import math

import numpy as np

import ir

from .emitter import (
    EXPORTERS,
    Exporter,
    OnnxExportError,
    exporter,
    onnx_dtype,
)

# ---- elementwise ---------------------------------------------------------------------------
_SIMPLE = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "erf": "Erf", "exp": "Exp",
           "log": "Log", "sqrt": "Sqrt", "neg": "Neg", "abs": "Abs", "softplus": "Softplus",
           "add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow",
           "maximum": "Max", "minimum": "Min", "matmul": "MatMul",
           "global_avg_pool": "GlobalAveragePool"}


@exporter(*_SIMPLE, handles=())
def _simple(ex: Exporter, node: ir.Node) -> None:
    ex.emit(_SIMPLE[node.op], ex.ins(node), [ex.out(node)])


@exporter("leaky_relu", "elu", handles=("alpha",))
def _alpha(ex: Exporter, node: ir.Node) -> None:
    op = {"leaky_relu": "LeakyRelu", "elu": "Elu"}[node.op]
    ex.emit(op, ex.ins(node), [ex.out(node)], alpha=node.attrs["alpha"])


def _clip(ex: Exporter, x: ir.Value, lo: float, hi: float, out: str) -> str:
    ins = [ex.name(x), ex.scalar(lo, x, f"{out}.min") if lo > -math.inf else "",
           ex.scalar(hi, x, f"{out}.max") if hi < math.inf else ""]
    while ins[-1] == "":
        ins.pop()
    return ex.emit("Clip", ins, [out])


@exporter("relu6", handles=())
def _relu6(ex: Exporter, node: ir.Node) -> None:
    _clip(ex, node.inputs[0], 0.0, 6.0, ex.out(node))


@exporter("clip", handles=("min", "max"))
def _clip_op(ex: Exporter, node: ir.Node) -> None:
    _clip(ex, node.inputs[0], node.attrs["min"], node.attrs["max"], ex.out(node))


def _gelu(ex: Exporter, xs: str, x, approximate: str, out: str) -> str:
    """Gelu of the tensor named `xs` (dtype of `x`): the Gelu operator from opset 20; before
    it, its formula (the exact erf form, or the tanh one)."""
    if ex.opset >= 20:
        return ex.emit("Gelu", [xs], [out], approximate=approximate)
    h = out
    if approximate == "tanh":
        cube = ex.emit("Mul", [xs, ex.emit("Mul", [xs, xs], hint=f"{h}.sq")], hint=f"{h}.cube")
        inner = ex.emit("Add", [xs, ex.emit("Mul", [cube, ex.scalar(0.044715, x, f"{h}.k")],
                                            hint=f"{h}.t")], hint=f"{h}.inner")
        core = ex.emit("Tanh", [ex.emit("Mul", [inner, ex.scalar(math.sqrt(2 / math.pi), x,
                                                               f"{h}.c")], hint=f"{h}.arg")],
                       hint=f"{h}.tanh")
    else:
        core = ex.emit("Erf", [ex.emit("Div", [xs, ex.scalar(math.sqrt(2), x, f"{h}.sqrt2")],
                                       hint=f"{h}.scaled")], hint=f"{h}.erf")
    one_plus = ex.emit("Add", [core, ex.scalar(1, x, f"{h}.one")], hint=f"{h}.1p")
    half_x = ex.emit("Mul", [xs, ex.scalar(0.5, x, f"{h}.half")], hint=f"{h}.halfx")
    return ex.emit("Mul", [half_x, one_plus], [out])


@exporter("gelu", handles=("approximate",))
def _gelu_op(ex: Exporter, node: ir.Node) -> None:
    x = node.inputs[0]
    _gelu(ex, ex.name(x), x, node.attrs["approximate"], ex.out(node))


@exporter("cast", handles=("dtype",))
def _cast(ex: Exporter, node: ir.Node) -> None:
    ex.emit("Cast", ex.ins(node), [ex.out(node)],
            to=onnx_dtype(node.output.type.np_dtype))


@exporter("constant", handles=("value", "shape", "dtype"))
def _constant(ex: Exporter, node: ir.Node) -> None:
    from onnx import numpy_helper

    t = node.output.type
    one = np.full((1,), node.attrs["value"], t.np_dtype)
    if t.size <= 16:
        ex.emit("Constant", [], [ex.out(node)],
                value=numpy_helper.from_array(np.full(t.shape, one[0], t.np_dtype)))
    else:
        ex.emit("ConstantOfShape", [ex.ints(t.shape, f"{node.name}.shape")],
                [ex.out(node)], value=numpy_helper.from_array(one))


# ---- convolution, pooling, normalisation ---------------------------------------------------
def _conv(ex: Exporter, node: ir.Node, ins: list[str], out: str) -> str:
    a = node.attrs
    return ex.emit("Conv", ins, [out], kernel_shape=list(node.inputs[1].shape[2:]),
                   strides=list(a["stride"]), pads=list(a["pad"]),
                   dilations=list(a["dilation"]), group=a["groups"])


@exporter("conv2d", "conv3d", handles=("stride", "pad", "dilation", "groups"))
def _conv2d(ex: Exporter, node: ir.Node) -> None:
    _conv(ex, node, ex.ins(node), ex.out(node))


@exporter("max_pool2d", "avg_pool2d", "max_pool3d", "avg_pool3d",
          handles=("kernel", "stride", "pad", "dilation", "ceil_mode", "count_include_pad"))
def _pool(ex: Exporter, node: ir.Node) -> None:
    a = node.attrs
    attrs = dict(kernel_shape=list(a["kernel"]), strides=list(a["stride"]),
                 pads=list(a["pad"]), ceil_mode=int(a["ceil_mode"]))
    is_max = node.op.startswith("max")
    if is_max or ex.opset >= 19:
        attrs["dilations"] = list(a["dilation"])
    elif any(d != 1 for d in a["dilation"]):
        raise OnnxExportError(f"%{node.name} ({node.op}): dilated average pooling needs "
                              "opset 19 or later")
    if not is_max:
        attrs["count_include_pad"] = int(a["count_include_pad"])
    ex.emit("MaxPool" if is_max else "AveragePool", ex.ins(node),
            [ex.out(node)], **attrs)


@exporter("batch_norm", handles=("eps", "momentum", "training"))
def _batch_norm(ex: Exporter, node: ir.Node) -> None:
    a = node.attrs
    if not a["training"]:
        ex.emit("BatchNormalization", ex.ins(node), [ex.out(node)], epsilon=a["eps"],
                momentum=1 - a["momentum"])
        return
    # batch statistics (biased variance), as the reference computes them in training
    x, w, b = (ex.name(v) for v in node.inputs[:3])
    v0, out = node.inputs[0], ex.out(node)
    axes = [0, *range(2, v0.type.rank)]
    shape = ex.ints([1, -1] + [1] * (v0.type.rank - 2), f"{out}.cshape")
    mean = _reduce(ex, "ReduceMean", x, axes, True, hint=f"{out}.mean")
    d = ex.emit("Sub", [x, mean], hint=f"{out}.d")
    var = _reduce(ex, "ReduceMean", ex.emit("Mul", [d, d], hint=f"{out}.d2"), axes, True,
                  hint=f"{out}.var")
    std = ex.emit("Sqrt", [ex.emit("Add", [var, ex.scalar(a["eps"], v0, f"{out}.eps")],
                                   hint=f"{out}.v")], hint=f"{out}.std")
    y = ex.emit("Div", [d, std], hint=f"{out}.n")
    y = ex.emit("Mul", [y, ex.emit("Reshape", [w, shape], hint=f"{out}.w")], hint=f"{out}.s")
    ex.emit("Add", [y, ex.emit("Reshape", [b, shape], hint=f"{out}.b")], [out])


@exporter("layer_norm", handles=("axis", "eps"))
def _layer_norm(ex: Exporter, node: ir.Node) -> None:
    ins = ex.ins(node)
    x = node.inputs[0]
    if len(ins) == 1:  # ONNX needs the scale
        axis = node.attrs["axis"] % x.type.rank
        ins.append(ex.const(np.ones(x.shape[axis:], x.type.np_dtype), f"{node.name}.scale"))
    ex.emit("LayerNormalization", ins, [ex.out(node)], axis=node.attrs["axis"],
            epsilon=node.attrs["eps"])


@exporter("dropout", handles=("ratio", "training", "seed"))
def _dropout(ex: Exporter, node: ir.Node) -> None:
    if node.attrs["training"] and node.attrs["ratio"] > 0:
        raise OnnxExportError(f"%{node.name} (dropout): dropout in training mode draws a "
                              "seeded mask onnxruntime cannot reproduce; export for inference")
    ex.emit("Identity", ex.ins(node), [ex.out(node)])


@exporter("detach", handles=())
def _detach(ex: Exporter, node: ir.Node) -> None:  # an inference graph has no gradients
    ex.emit("Identity", ex.ins(node), [ex.out(node)])


def _linear(ex: Exporter, node: ir.Node, out: str, with_bias: bool = True) -> str:
    x, w = node.inputs[0], node.inputs[1]
    ins = ex.ins(node)[: 3 if with_bias else 2]
    if x.type.rank == 2:
        return ex.emit("Gemm", ins, [out], transB=1)
    wt = ex.emit("Transpose", [ins[1]], hint=f"{w.name}.T", perm=[1, 0])
    if len(ins) == 2:
        return ex.emit("MatMul", [ins[0], wt], [out])
    y = ex.emit("MatMul", [ins[0], wt], hint=f"{out}.mm")
    return ex.emit("Add", [y, ins[2]], [out])


@exporter("linear", handles=())
def _linear_op(ex: Exporter, node: ir.Node) -> None:
    _linear(ex, node, ex.out(node))


@exporter("softmax", "log_softmax", handles=("axis",))
def _softmax(ex: Exporter, node: ir.Node) -> None:
    op = {"softmax": "Softmax", "log_softmax": "LogSoftmax"}[node.op]
    ex.emit(op, ex.ins(node), [ex.out(node)], axis=node.attrs["axis"])


@exporter("gather", handles=("axis",))
def _gather(ex: Exporter, node: ir.Node) -> None:
    ex.emit("Gather", ex.ins(node), [ex.out(node)], axis=node.attrs["axis"])


# ---- shape operators -----------------------------------------------------------------------
@exporter("reshape", handles=("shape",))
def _reshape(ex: Exporter, node: ir.Node) -> None:
    shape = node.output.shape  # resolved: no -1, and 0 means an empty axis (allowzero)
    ex.emit("Reshape", [ex.name(node.inputs[0]), ex.ints(shape, f"{node.name}.shape")],
            [ex.out(node)], **({"allowzero": 1} if 0 in shape else {}))


@exporter("flatten", handles=("axis",))
def _flatten(ex: Exporter, node: ir.Node) -> None:
    rank, axis = node.inputs[0].type.rank, node.attrs["axis"]
    ex.emit("Flatten", ex.ins(node), [ex.out(node)], axis=axis + rank if axis < 0 else axis)


@exporter("transpose", handles=("perm",))
def _transpose(ex: Exporter, node: ir.Node) -> None:
    ex.emit("Transpose", ex.ins(node), [ex.out(node)], perm=list(node.attrs["perm"]))


@exporter("concat", handles=("axis",))
def _concat(ex: Exporter, node: ir.Node) -> None:
    ex.emit("Concat", ex.ins(node), [ex.out(node)], axis=node.attrs["axis"])


@exporter("split", handles=("axis", "sizes"))
def _split(ex: Exporter, node: ir.Node) -> None:
    sizes = ex.ints(node.attrs["sizes"], f"{node.name}.sizes")
    ex.emit("Split", [ex.name(node.inputs[0]), sizes],
            [ex.name(o) for o in node.outputs], axis=node.attrs["axis"])


@exporter("slice", handles=("starts", "ends", "axes", "steps"))
def _slice(ex: Exporter, node: ir.Node) -> None:
    a, shape = node.attrs, node.inputs[0].shape
    axes = a["axes"] or tuple(range(len(a["starts"])))
    steps = a["steps"] or (1,) * len(a["starts"])
    starts, ends = [], []
    for s, e, ax, st in zip(a["starts"], a["ends"], axes, steps):
        dim = shape[ax]
        start, stop, _ = slice(s, e, st).indices(dim)
        starts.append(start)
        ends.append(stop if stop >= 0 else -dim - 1)  # ONNX reads -dim-1 as "before 0"
    h = node.name
    ex.emit("Slice", [ex.name(node.inputs[0]), ex.ints(starts, f"{h}.starts"),
                      ex.ints(ends, f"{h}.ends"), ex.ints(axes, f"{h}.axes"),
                      ex.ints(steps, f"{h}.steps")], [ex.out(node)])


@exporter("pad", handles=("pads", "mode", "value"))
def _pad(ex: Exporter, node: ir.Node) -> None:
    x, a = node.inputs[0], node.attrs
    ins = [ex.name(x), ex.ints(a["pads"], f"{node.name}.pads")]
    if a["mode"] == "constant":
        ins.append(ex.scalar(a["value"], x, f"{node.name}.value"))
    ex.emit("Pad", ins, [ex.out(node)], mode=a["mode"])


# ---- reductions and losses -----------------------------------------------------------------
def _reduce(ex: Exporter, op: str, x: str, axes, keepdims: bool, out: str | None = None,
            hint: str = "r") -> str:
    """A reduction over `axes` (all when empty): axes as an input from opset 18 (13 for
    ReduceSum), as an attribute before."""
    outs = [out] if out else None
    if not axes:
        return ex.emit(op, [x], outs, hint=hint, keepdims=int(keepdims))
    if op == "ReduceSum" or ex.opset >= 18:
        return ex.emit(op, [x, ex.ints(axes, f"{hint}.axes")], outs, hint=hint,
                       keepdims=int(keepdims))
    return ex.emit(op, [x], outs, hint=hint, axes=list(axes), keepdims=int(keepdims))


@exporter("reduce_sum", "reduce_mean", "reduce_max", "reduce_min",
          handles=("axes", "keepdims"))
def _reduction(ex: Exporter, node: ir.Node) -> None:
    op = {"reduce_sum": "ReduceSum", "reduce_mean": "ReduceMean", "reduce_max": "ReduceMax",
          "reduce_min": "ReduceMin"}[node.op]
    _reduce(ex, op, ex.name(node.inputs[0]), node.attrs["axes"], node.attrs["keepdims"],
            ex.out(node), hint=node.name)


@exporter("cross_entropy", handles=("reduction",))
def _cross_entropy(ex: Exporter, node: ir.Node) -> None:
    logits, target = node.inputs
    out, red = ex.out(node), node.attrs["reduction"]
    if target.type.dtype in ("i32", "i64"):
        ex.emit("SoftmaxCrossEntropyLoss", ex.ins(node), [out], reduction=red)
        return
    logp = ex.emit("LogSoftmax", [ex.name(logits)], hint=f"{out}.logp", axis=1)
    prod = ex.emit("Mul", [ex.name(target), logp], hint=f"{out}.tlogp")
    per = ex.emit("Neg", [_reduce(ex, "ReduceSum", prod, [1], False, hint=f"{out}.sum")],
                  [out] if red == "none" else None, hint=f"{out}.per")
    if red != "none":
        _reduce(ex, "ReduceMean" if red == "mean" else "ReduceSum", per, [], False, out)


@exporter("mse_loss", handles=("reduction",))
def _mse_loss(ex: Exporter, node: ir.Node) -> None:
    out, red = ex.out(node), node.attrs["reduction"]
    d = ex.emit("Sub", ex.ins(node), hint=f"{out}.d")
    sq = ex.emit("Mul", [d, d], [out] if red == "none" else None, hint=f"{out}.sq")
    if red != "none":
        _reduce(ex, "ReduceMean" if red == "mean" else "ReduceSum", sq, [], False, out)


# ---- fused operators (ir/ops/fused.py) -----------------------------------------------------
def _epilogue(ex: Exporter, node: ir.Node, y: str, out: str) -> None:
    """+ residual, then the activation, into `out`."""
    act, like = node.attrs["act"], node.output
    if len(node.inputs) == 4:
        y = ex.emit("Add", [y, ex.name(node.inputs[3])],
                    [out] if act == "none" else None, hint=f"{out}.res")
    if act == "none":
        if y != out:
            ex.emit("Identity", [y], [out])
        return
    if act in ("relu", "sigmoid", "tanh"):
        ex.emit(act.capitalize(), [y], [out])
    elif act == "leaky_relu":
        ex.emit("LeakyRelu", [y], [out], alpha=node.attrs["alpha"])
    elif act == "relu6":
        ins = [y, ex.scalar(0.0, like, f"{out}.min"), ex.scalar(6.0, like, f"{out}.max")]
        ex.emit("Clip", ins, [out])
    elif act == "gelu":
        _gelu(ex, y, like, "none", out)
    else:
        raise OnnxExportError(f"%{node.name} ({node.op}): activation {act!r} has no exporter")


@exporter("fused_conv2d", handles=("stride", "pad", "dilation", "groups", "act", "alpha"))
def _fused_conv2d(ex: Exporter, node: ir.Node) -> None:
    out = ex.out(node)
    y = _conv(ex, node, ex.ins(node)[:3], ex.fresh(f"{out}.conv"))
    _epilogue(ex, node, y, out)


@exporter("fused_linear", handles=("act", "alpha"))
def _fused_linear(ex: Exporter, node: ir.Node) -> None:
    out = ex.out(node)
    _epilogue(ex, node, _linear(ex, node, ex.fresh(f"{out}.linear")), out)


@exporter("fused_elementwise", handles=("body",))
def _fused_elementwise(ex: Exporter, node: ir.Node) -> None:
    """The body's nodes, inlined: its parameters read the node's inputs, and its result is
    the node's output."""
    body: ir.Graph = node.attrs["body"]
    out = ex.out(node)
    for p, v in zip(body.inputs, node.inputs):
        ex.names[id(p)] = ex.name(v)
    for n in body.nodes:
        for o in n.outputs:
            ex.names[id(o)] = ex.fresh(f"{out}.{o.name}")
    result = body.outputs[0]
    if result.kind == "node":
        ex.names[id(result)] = out
    for n in body.nodes:
        EXPORTERS[n.op][0](ex, n)
    if result.kind != "node":  # the body returns one of its parameters
        ex.emit("Identity", [ex.name(result)], [out])


# ---- the operators gradients use (ir/ops/backward.py) --------------------------------------
@exporter("equal", "greater", "where", handles=())
def _select(ex: Exporter, node: ir.Node) -> None:
    op = {"equal": "Equal", "greater": "Greater", "where": "Where"}[node.op]
    ex.emit(op, ex.ins(node), [ex.out(node)])


@exporter("broadcast_to", handles=("shape",))
def _broadcast_to(ex: Exporter, node: ir.Node) -> None:
    ex.emit("Expand", [*ex.ins(node), ex.ints(node.attrs["shape"], f"{node.name}.shape")],
            [ex.out(node)])


@exporter("one_hot", handles=("depth", "axis", "dtype"))
def _one_hot(ex: Exporter, node: ir.Node) -> None:
    dt, out = node.output.type.np_dtype, ex.out(node)
    direct = dt != np.bool_  # onnxruntime's OneHot has no bool values: cast from int64
    values = ex.const(np.asarray([0, 1], dt if direct else np.int64), f"{out}.values")
    hot = ex.emit("OneHot", [*ex.ins(node), ex.ints([node.attrs["depth"]],
                                                     f"{out}.depth"), values],
                  [out] if direct else None, hint=f"{out}.i64", axis=node.attrs["axis"])
    if not direct:
        ex.emit("Cast", [hot], [out], to=onnx_dtype(np.bool_))


@exporter("conv2d_grad_input", "conv3d_grad_input",
          handles=("stride", "pad", "dilation", "groups", "shape"))
def _conv2d_grad_input(ex: Exporter, node: ir.Node) -> None:
    """A transposed convolution: ConvTranspose, its output padding reaching `shape`."""
    dy, w = node.inputs
    a = node.attrs
    s, p, d = a["stride"], a["pad"], a["dilation"]
    r = len(s)
    full = [(dy.shape[2 + i] - 1) * s[i] + (w.shape[2 + i] - 1) * d[i] + 1 - p[i] - p[i + r]
            for i in range(r)]
    ex.emit("ConvTranspose", ex.ins(node), [ex.out(node)], strides=list(s), pads=list(p),
            dilations=list(d), group=a["groups"], kernel_shape=list(w.shape[2:]),
            output_padding=[a["shape"][2 + i] - full[i] for i in range(r)])


@exporter("conv2d_grad_weight", handles=("stride", "pad", "dilation", "groups", "kernel"))
def _conv2d_grad_weight(ex: Exporter, node: ir.Node) -> None:
    """A Conv of the input (batch and channels swapped) by the output gradient (likewise),
    its stride and dilation exchanged, cut to the kernel and swapped back."""
    a, out = node.attrs, ex.out(node)
    if a["groups"] != 1:
        raise OnnxExportError(f"%{node.name} (conv2d_grad_weight): groups={a['groups']} has "
                              "no exporter (groups=1 only)")
    x, dy = ex.ins(node)
    xt = ex.emit("Transpose", [x], hint=f"{out}.xt", perm=[1, 0, 2, 3])
    dyt = ex.emit("Transpose", [dy], hint=f"{out}.dyt", perm=[1, 0, 2, 3])
    c = ex.emit("Conv", [xt, dyt], hint=f"{out}.conv", strides=list(a["dilation"]),
                dilations=list(a["stride"]), pads=list(a["pad"]))
    k = ex.emit("Slice", [c, ex.ints([0, 0], f"{out}.zeros"),
                          ex.ints(a["kernel"], f"{out}.kernel"),
                          ex.ints([2, 3], f"{out}.axes")], hint=f"{out}.cut")
    ex.emit("Transpose", [k], [out], perm=[1, 0, 2, 3])


@exporter("max_pool2d_grad", handles=("kernel", "stride", "pad", "dilation", "ceil_mode"))
def _max_pool2d_grad(ex: Exporter, node: ir.Node) -> None:
    """MaxPool's indices (flat over the whole input) scatter dy into zeros."""
    a, out = node.attrs, ex.out(node)
    x, dy = node.inputs
    _, ind = ex.fresh(f"{out}.pool"), ex.fresh(f"{out}.ind")
    ex.emit("MaxPool", [ex.name(x)], [_, ind], kernel_shape=list(a["kernel"]),
            strides=list(a["stride"]), pads=list(a["pad"]), dilations=list(a["dilation"]),
            ceil_mode=int(a["ceil_mode"]))
    flat = ex.ints([-1], f"{out}.flat")
    i = ex.emit("Reshape", [ind, flat], hint=f"{out}.i")
    d = ex.emit("Reshape", [ex.name(dy), flat], hint=f"{out}.d")
    zeros = ex.const(np.zeros(x.type.size, x.type.np_dtype), f"{out}.zeros")
    s = ex.emit("ScatterElements", [zeros, i, d], hint=f"{out}.s", axis=0, reduction="add")
    ex.emit("Reshape", [s, ex.ints(x.shape, f"{out}.shape")], [out])


@exporter("scatter_add", handles=("axis", "size"))
def _scatter_add(ex: Exporter, node: ir.Node) -> None:
    """ScatterND with reduction add into zeros, the scattered axis moved to the front."""
    upd, idx = node.inputs
    out, size = ex.out(node), node.attrs["size"]
    shape = node.output.shape
    a, k = node.attrs["axis"] % len(shape), idx.type.rank
    perm = [*range(a, a + k), *range(a), *range(a + k, upd.type.rank)]
    rows = ex.emit("Transpose", [ex.name(upd)], hint=f"{out}.t", perm=perm)
    rest = [*shape[:a], *shape[a + 1:]]
    rows = ex.emit("Reshape", [rows, ex.ints([idx.type.size, *rest], f"{out}.rows")],
                   hint=f"{out}.u")
    i = ex.emit("Reshape", [ex.name(idx), ex.ints([idx.type.size, 1], f"{out}.col")],
                hint=f"{out}.i")
    size_c = ex.scalar(size, idx, f"{out}.size")
    neg = ex.emit("Less", [i, ex.scalar(0, idx, f"{out}.zero")], hint=f"{out}.neg")
    i = ex.emit("Where", [neg, ex.emit("Add", [i, size_c], hint=f"{out}.wrap"), i],
                hint=f"{out}.idx")
    zeros = ex.const(np.zeros([size, *rest], upd.type.np_dtype), f"{out}.zeros")
    s = ex.emit("ScatterND", [zeros, i, rows], hint=f"{out}.s", reduction="add")
    back = [*range(1, a + 1), 0, *range(a + 1, len(shape))]
    ex.emit("Transpose", [s], [out], perm=back)


@exporter("dropout_seeded", handles=("ratio", "seed"))
def _dropout_seeded(ex: Exporter, node: ir.Node) -> None:
    if node.attrs["ratio"] > 0:
        raise OnnxExportError(f"%{node.name} (dropout_seeded): its mask comes from numpy's "
                              "generator, which onnxruntime cannot reproduce")
    ex.emit("Identity", [ex.name(node.inputs[0])], [ex.out(node)])


@exporter("lstm", "gru", "rnn", handles=("direction", "hidden_size", "linear_before_reset"))
def _recurrent(ex: Exporter, node: ir.Node) -> None:
    """ONNX's LSTM, GRU and RNN: the same layouts, gate order and default activations."""
    ins = ex.ins(node)
    attrs = {"hidden_size": node.attrs["hidden_size"], "direction": node.attrs["direction"]}
    if node.op == "gru":
        attrs["linear_before_reset"] = int(node.attrs["linear_before_reset"])
    states = ["", *ins[4:]] if len(ins) > 4 else []  # sequence_lens left out: full length
    ex.emit({"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[node.op], [*ins[:4], *states],
            [ex.name(o) for o in node.outputs], **attrs)
