"""ONNX export: an ir.Graph (or a compiler.nn model, traced) with its weights -> `.onnx`.

    save_onnx(model, "model.onnx", example_inputs=(x,))

Every registered operator has one exporter function (in export_ops.py, registered
with `@exporter`) that writes the ONNX node(s) computing the same thing (default opset 18;
17 to 21 work).
The file runs in onnxruntime with the outputs the reference interpreter gives, which is
what the benchmarks rely on to run the very same model there. An operator with no exporter,
or with an attribute value its exporter does not translate, is refused with one
`OnnxExportError` listing every such node. The `onnx` package is imported lazily.
"""

from __future__ import annotations

import os

import numpy as np

import ir
from ir.ops import registry
from ir.ops.registry import attr_key

from . import (  # noqa: F401  (the exporter functions register)
    export_bf16,
    export_math,
    export_narrow,
    export_ops,
    export_quant,
)
from .emitter import DEFAULT_OPSET, EXPORTERS, Exporter, OnnxExportError, onnx_dtype


# ---- the driver ----------------------------------------------------------------------------
def save_onnx(graph_or_model, path=None, example_inputs=None, *, opset: int = DEFAULT_OPSET):
    """Write `graph_or_model` (an ir.Graph, or a compiler.nn model traced on
    `example_inputs`) with its weights as an ONNX model at `path` (skipped when None);
    returns the onnx.ModelProto."""
    import onnx

    if not 17 <= opset <= 21:
        raise OnnxExportError(f"opset {opset} is not supported; choose 17 to 21")
    graph = _graph(graph_or_model, example_inputs)
    ir.verify(graph)
    _check_exportable(graph, opset)
    ex = Exporter(graph, opset)
    for node in graph.nodes:
        EXPORTERS[node.op][0](ex, node)
    outputs, seen = [], set()
    for v in graph.outputs:
        name = ex.name(v)
        if v.kind != "node" or name in seen:  # an ONNX output must be produced by a node
            name = ex.emit("Identity", [name], [ex.fresh(f"{v.name}_out")])
        seen.add(name)
        outputs.append(_value_info(name, v.type))
    g = onnx.helper.make_graph(ex.nodes, graph.name,
                               [_value_info(v.name, v.type) for v in graph.inputs], outputs,
                               ex.initializers)
    ids = [onnx.helper.make_opsetid("", opset)]
    model = onnx.helper.make_model(g, opset_imports=ids, producer_name="lamina",
                                   ir_version=onnx.helper.find_min_ir_version_for(ids))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise OnnxExportError(f"the exported model does not pass the ONNX checker: {e}") from None
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model


def _graph(graph_or_model, example_inputs) -> ir.Graph:
    if isinstance(graph_or_model, ir.Graph):
        return graph_or_model
    if example_inputs is None:
        raise OnnxExportError("save_onnx of a model needs example_inputs to trace it with")
    from ..tracing import trace

    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    return trace(graph_or_model, *(np.asarray(x) for x in example_inputs))


def _check_exportable(graph: ir.Graph, opset: int) -> None:
    problems = []
    for node in _all_nodes(graph):
        if node.op not in EXPORTERS:
            problems.append(f"%{node.name} ({node.op}): no ONNX exporter for {node.op}")
            continue
        handles = EXPORTERS[node.op][1]
        specs = registry.get(node.op).attrs
        for key, value in node.attrs.items():
            if key not in handles and attr_key(value) != attr_key(specs[key].default):
                problems.append(f"%{node.name} ({node.op}): attribute {key}={value!r} has no "
                                "ONNX translation")
    if problems:
        raise OnnxExportError(f"cannot export @{graph.name} to ONNX (opset {opset}): "
                              + "; ".join(problems))


def _all_nodes(graph: ir.Graph):
    for node in graph.nodes:
        yield node
        body = node.attrs.get("body")
        if isinstance(body, ir.Graph):
            yield from _all_nodes(body)


def _value_info(name: str, t: ir.TensorType):
    import onnx

    return onnx.helper.make_tensor_value_info(name, onnx_dtype(t.np_dtype), list(t.shape))
