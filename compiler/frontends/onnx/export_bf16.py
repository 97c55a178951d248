"""ONNX writers of bf16_linear and bf16_conv2d (ir/ops/bf16.py): x through Cast to BFLOAT16
and back (onnxruntime rounds to nearest even, as the operators do, though it keeps the
float32 subnormals they flush to zero), the weight as a BFLOAT16 initialiser of its
unpacked shape cast to float, then MatMul by its transpose and Add, or Conv: the same
products, summed in float32."""

from __future__ import annotations

import numpy as np

import ir

from .emitter import Exporter, OnnxExportError, exporter


def _weight(ex: Exporter, node: ir.Node, shape: tuple) -> str:
    """The weight's words as a float tensor of `shape`: a BFLOAT16 initialiser and a Cast."""
    import ml_dtypes  # an onnx dependency: present wherever onnx is
    from onnx import TensorProto

    w = node.inputs[1]
    if w.kind != "weight" or w.name not in ex.graph.weights:
        raise OnnxExportError(f"node %{node.name} ({node.op}): its weight must be a graph "
                              "weight to be written as a BFLOAT16 initialiser")
    words = np.ascontiguousarray(ex.graph.weights[w.name], np.int32)
    k = int(np.prod(shape[1:]))
    bits = words.view(np.uint16).reshape(shape[0], -1)[:, :k]  # little-endian: low half first
    wb = ex.const(np.ascontiguousarray(bits).view(ml_dtypes.bfloat16).reshape(shape),
                  f"{w.name}.bf16")
    return ex.emit("Cast", [wb], hint=f"{ex.out(node)}.weight", to=TensorProto.FLOAT)


def _rounded_x(ex: Exporter, node: ir.Node) -> str:
    from onnx import TensorProto

    out = ex.out(node)
    xb = ex.emit("Cast", [ex.name(node.inputs[0])], hint=f"{out}.x_bf16",
                 to=TensorProto.BFLOAT16)
    return ex.emit("Cast", [xb], hint=f"{out}.x_rounded", to=TensorProto.FLOAT)


@exporter("bf16_linear", handles=())
def _bf16_linear(ex: Exporter, node: ir.Node) -> None:
    out = ex.out(node)
    n, k = node.inputs[1].type.shape[0], node.inputs[0].type.shape[-1]
    wt = ex.emit("Transpose", [_weight(ex, node, (n, k))], hint=f"{out}.wT", perm=[1, 0])
    has_bias = len(node.inputs) == 3
    y = ex.emit("MatMul", [_rounded_x(ex, node), wt], None if has_bias else [out],
                hint=f"{out}.xw")
    if has_bias:
        ex.emit("Add", [y, ex.name(node.inputs[2])], [out])


@exporter("bf16_conv2d", handles=("kernel", "stride", "pad", "dilation"))
def _bf16_conv2d(ex: Exporter, node: ir.Node) -> None:
    a = node.attrs
    shape = (node.inputs[1].type.shape[0], node.inputs[0].type.shape[1], *a["kernel"])
    ins = [_rounded_x(ex, node), _weight(ex, node, shape)]
    ins += [ex.name(node.inputs[2])] if len(node.inputs) == 3 else []
    ex.emit("Conv", ins, [ex.out(node)], kernel_shape=list(a["kernel"]),
            strides=list(a["stride"]), pads=list(a["pad"]), dilations=list(a["dilation"]))
