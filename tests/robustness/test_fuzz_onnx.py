"""Fuzzing the ONNX importer: the ONNX peers of the IR cases (one small model per operator
and variant), serialised and then corrupted, as bytes (flipped, overwritten, truncated) or
as protobuf (node op types, attributes, input and output names, graph input types and
shapes, initialiser types and dims, the opset). `compiler.load_onnx` must raise an
ir.LaminaError (OnnxImportError) or return a graph, never anything else."""

from __future__ import annotations

import warnings

import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

import ir
from compiler import load_onnx
from tests.ir.cases import CASES

MODELS = [c.onnx_model().SerializeToString() for c in CASES]
OP_TYPES = sorted({n.op_type for m in MODELS for n in onnx.ModelProto.FromString(m).graph.node}
                  | {"Bogus", "If", "Loop", "Scan", "Constant", "Shape", "Reshape", "Expand",
                     "ConstantOfShape", "Range", "Tile", "Gather", "Slice", "Resize"})
INTS = [-1, 0, 1, 2, 7, -(2**40), 2**40]
INT_LISTS = [[], [0], [-1], [1, 1], [2**40], [3, -3, 0, 5], [1] * 8]
SETTINGS = settings(max_examples=800, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _bytes(draw, data: bytes) -> bytes:
    b = bytearray(data)
    kind = draw(st.sampled_from(["truncate", "overwrite", "flip"]))
    if kind == "truncate":
        return bytes(b[: draw(st.integers(0, len(b) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(b) - 1))
        b[i] = draw(st.integers(0, 255)) if kind == "overwrite" else b[i] ^ (
            1 << draw(st.integers(0, 7)))
    return bytes(b)


def _proto(draw, m: onnx.ModelProto) -> None:
    g = m.graph
    nodes = list(g.node)
    pick = lambda seq: draw(st.sampled_from(seq))
    kind = pick(["op_type", "input", "attr_value", "attr_new", "attr_drop", "input_type",
                 "initializer", "drop_node", "output", "opset"])
    node = pick(nodes) if nodes else None
    names = ([i.name for i in g.input] + [t.name for t in g.initializer]
             + [o for n in nodes for o in n.output] + ["", "nowhere"])
    if kind == "op_type" and node:
        node.op_type = pick(OP_TYPES)
    elif kind == "input" and node:
        if node.input and draw(st.booleans()):
            node.input[draw(st.integers(0, len(node.input) - 1))] = pick(names)
        else:
            node.input.append(pick(names))
    elif kind == "attr_value" and node and node.attribute:
        a = pick(list(node.attribute))
        if a.type == onnx.AttributeProto.INT:
            a.i = pick(INTS)
        elif a.type == onnx.AttributeProto.INTS:
            del a.ints[:]
            a.ints.extend(pick(INT_LISTS))
        elif a.type == onnx.AttributeProto.FLOAT:
            a.f = pick([float("nan"), float("inf"), -1.0, 0.0])
        elif a.type == onnx.AttributeProto.STRING:
            a.s = pick([b"", b"bogus", b"\xff"])
        else:
            a.type = pick([onnx.AttributeProto.INT, onnx.AttributeProto.UNDEFINED])
    elif kind == "attr_new" and node:
        node.attribute.append(helper.make_attribute(
            pick(["axis", "bogus", "perm", "pads", "kernel_shape", "to", "mode"]),
            pick([1, -5, [1, 2], 0.5, "x", [0.5, 1.5]])))
    elif kind == "attr_drop" and node and node.attribute:
        del node.attribute[draw(st.integers(0, len(node.attribute) - 1))]
    elif kind == "input_type" and g.input:
        tt = pick(list(g.input)).type.tensor_type
        if draw(st.booleans()):
            tt.elem_type = pick([0, 1, 2, 3, 6, 7, 9, 10, 11, 16, 99])
        elif tt.shape.dim:
            d = pick(list(tt.shape.dim))
            value = pick([0, -1, -5, 2**40, "symbolic"])
            if value == "symbolic":
                d.dim_param = "n"
            else:
                d.dim_value = value
    elif kind == "initializer" and g.initializer:
        t = pick(list(g.initializer))
        if t.dims and draw(st.booleans()):
            t.dims[draw(st.integers(0, len(t.dims) - 1))] = pick([0, 1, 2**20, -1])
        else:
            t.data_type = pick([0, 2, 3, 7, 10, 11, 16, 99])
    elif kind == "drop_node" and nodes:
        del g.node[draw(st.integers(0, len(nodes) - 1))]
    elif kind == "output" and node and node.output:
        node.output[0] = pick(names)
    elif kind == "opset":
        m.opset_import[0].version = pick([1, 7, 9, 13, 30, 0])


@st.composite
def corrupted(draw) -> bytes:
    data = draw(st.sampled_from(MODELS))
    if draw(st.booleans()):
        return _bytes(draw, data)
    m = onnx.ModelProto.FromString(data)
    for _ in range(draw(st.integers(1, 2))):
        _proto(draw, m)
    return m.SerializeToString()


@SETTINGS
@given(corrupted())
def test_load_onnx_raises_only_lamina_errors(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            g = load_onnx(data)
        except ir.LaminaError:
            return
    ir.verify(g)
