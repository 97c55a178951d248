"""Bad models, through every front door (IR text, the Graph API, ONNX, layers and tracing,
the backends): each raises an ir.LaminaError whose message names the node, layer, input or
weight at fault; never a bare KeyError, IndexError, ValueError, TypeError or AssertionError.

Single-cause cases the IR tests already hold (tests/ir/test_text.py, test_verify.py) are not
repeated; these are the ones that got through before, and the cross-door ones."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import compiler
import ir
from backends import llvm, reference
from compiler import OnnxImportError, load_onnx
from compiler import nn as lnn
from ir import Graph, TensorType
from tests.compiler.onnx_util import model as onnx_model

N = helper.make_node
X = np.zeros((2, 3), np.float32)


def _raises(fn, *fragments, cls=ir.LaminaError):
    with pytest.raises(cls) as info:
        fn()
    for f in fragments:
        assert f in str(info.value), (f, str(info.value))
    return info.value


# ---- IR text ------------------------------------------------------------------------------
def _graph_text(line: str, sig: str = "%x: f32[2,3]", ret: str = "f32[2,3]") -> str:
    return f"graph @main({sig}) -> ({ret}) {{\n  {line}\n  return %y\n}}"


@pytest.mark.parametrize("text, fragments", [
    (_graph_text("%y: f32[2,3] = relu(%x)", sig="%x: f32[99999999999999999999,3]"),
     ["line 1", "too large"]),
    (_graph_text("%y: f32[2,3] = reshape(%x) {shape=[100000000000000000000]}"),
     ["%y (reshape)", "'shape' must be ints (64-bit)"]),
    (_graph_text("%y: f32[2,3] = pad(%x) {mode=\"edge\", pads=[0,2,0,-5]}"),
     ["%y (pad)", "crop more than axis 1"]),
    (_graph_text("%y: f32[2,3] = relu(%x)", sig="%x: f16[2,3]"), ["unknown dtype 'f16'"]),
    (_graph_text("%y: f32[2,3] = relu(%x)", sig="%x: f32[1099511627776]"),
     ["line 1", "4 TiB", "more than the 1 TiB"]),
])
def test_ir_text(text, fragments):
    _raises(lambda: ir.parse(text), *fragments, cls=ir.ParseError)


def test_weight_data_of_a_dtype_the_ir_lacks_names_the_weight():
    text = ("graph @main(%x: f32[3]) -> (f32[3]) {\n  @w: f32[3]\n"
            "  %y: f32[3] = add(%x, @w)\n  return %y\n}")
    _raises(lambda: ir.parse(text, {"w": np.ones(3, np.float16)}), "weight @w",
            "float16", cls=ir.ParseError)


# ---- the Graph API and the backends -------------------------------------------------------
def _cyclic() -> Graph:
    g = Graph()
    x = g.add_input("x", TensorType((3,)))
    a = g.call("relu", x, name="a")
    b = g.call("neg", a, name="b")
    a.node.replace_input(x, b)  # a reads b, b reads a
    g.outputs = [b]
    return g


def _undefined() -> Graph:
    other = Graph()
    stray = other.add_input("stray", TensorType((3,)))
    g = Graph()
    g.add_input("x", TensorType((3,)))
    g.outputs = [g.call("relu", stray, name="r")]
    return g


@pytest.mark.parametrize("build, fragments", [
    (_cyclic, ["cycle", "%a", "%b"]),
    (_undefined, ["%r (relu)", "%stray", "before it is defined"]),
])
@pytest.mark.parametrize("door", ["verify", "reference", "llvm", "compile"])
def test_broken_graphs_are_refused_at_every_door(build, fragments, door):
    g = build()
    run = {"verify": lambda: ir.verify(g),
           "reference": lambda: compiler.compile(g, opt_level=0)(np.zeros(3, np.float32)),
           "llvm": lambda: llvm.compile_graph(g, num_threads=1),
           "compile": lambda: compiler.compile(g, backend="llvm", num_threads=1)}[door]
    _raises(run, *fragments, cls=ir.VerifyError)


@pytest.mark.parametrize("make, fragments", [
    (lambda: TensorType((2, -1)), ["negative dimension"]),
    (lambda: TensorType((2**48, 2)), ["too large"]),
    (lambda: TensorType((2**40,)), ["[1099511627776] is too large: 4 TiB"]),
    (lambda: TensorType((2**37, 9), "bool"), ["1.12 TiB"]),
    (lambda: TensorType((0, 2**48)), ["below 2**48"]),  # empty, yet no offset fits
    (lambda: TensorType((3,), "f16"), ["unsupported dtype 'f16'"]),
    (lambda: Graph().add_weight("w", np.ones(3, np.complex64)), ["unsupported dtype"]),
])
def test_types(make, fragments):
    _raises(make, *fragments, cls=ir.ShapeError)


def test_mismatched_shapes_and_dtypes_name_the_node():
    g = Graph()
    x = g.add_input("x", TensorType((2, 3)))
    i = g.add_input("i", TensorType((2, 3), "i32"))
    _raises(lambda: g.call("add", x, g.add_input("z", TensorType((4,))), name="s"),
            "%s (add)", "do not broadcast", cls=ir.ShapeError)
    _raises(lambda: g.call("exp", i, name="e"), "%e (exp)", "floating-point",
            cls=ir.ShapeError)
    _raises(lambda: g.call("relu", x, name="r", bogus=1), "%r (relu)", "bogus",
            cls=ir.InvalidAttributeError)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # log of an empty sum
@pytest.mark.parametrize("op, shape, attrs", [
    ("softmax", (3, 0), {}), ("log_softmax", (0, 4), {"axis": 0}), ("relu", (0, 5), {}),
    ("reduce_sum", (3, 0), {"axes": [1]}), ("reduce_max", (0, 3), {"axes": [1]}),
])
def test_zero_sized_tensors_run_on_both_backends(op, shape, attrs):
    g = Graph()
    g.outputs = [g.call(op, g.add_input("x", TensorType(shape)), name="y", **attrs)]
    x = np.zeros(shape, np.float32)
    want = reference.run(g, x)[0]
    got = llvm.compile_graph(g, num_threads=1)(x)
    np.testing.assert_array_equal(got, want)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_cross_entropy_with_no_classes_agrees():
    g = Graph()
    logits = g.add_input("x", TensorType((3, 0)))
    g.outputs = [g.call("cross_entropy", logits, g.add_input("t", TensorType((3, 0))),
                        name="y", reduction="none")]
    args = np.zeros((3, 0), np.float32), np.zeros((3, 0), np.float32)
    np.testing.assert_array_equal(llvm.compile_graph(g, num_threads=1)(*args),
                                  reference.run(g, *args)[0])


def test_pad_cropping_past_the_axis_is_refused():
    g = Graph()
    x = g.add_input("x", TensorType((2, 5)))
    _raises(lambda: g.call("pad", x, pads=[0, 2, 0, -7], name="p"), "%p (pad)",
            "crop more than axis 1", cls=ir.ShapeError)


# ---- ONNX ---------------------------------------------------------------------------------
def _m(nodes, inputs=None, outputs=("y",), inits=None):
    return onnx_model(nodes, {"x": X} if inputs is None else inputs, outputs, inits)


def _invalid_utf8_name() -> bytes:
    data = _m([N("Relu", ["x"], ["y"], name="relu_node")]).SerializeToString()
    return data.replace(b"relu_node", b"relu_\xffode")


def _unreadable_attribute():
    m = _m([N("Constant", [], ["c"], value=helper.make_tensor("v", TensorProto.FLOAT, [2],
                                                              [1.0, 2.0])),
            N("Add", ["x", "c"], ["y"], name="plus")])
    del m.graph.node[0].attribute[0].t.float_data[:]  # dims say 2, data holds none
    m.graph.node[0].name = "const"
    return m


def _negative_input_dim():
    m = _m([N("Relu", ["x"], ["y"])])
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -2
    return m


@pytest.mark.parametrize("make, fragments", [
    (_invalid_utf8_name, ["not UTF-8", "model.graph.node[0].name"]),
    (lambda: _m([N("Relu", ["b"], ["a"], name="A"), N("Relu", ["a"], ["b"], name="B"),
                 N("Add", ["x", "a"], ["y"], name="C")]), ["cycle through node"]),
    (lambda: _m([N("Relu", ["nowhere"], ["y"], name="r")]), ["'r'", "'nowhere'"]),
    (lambda: _m([N("Add", ["x", "z"], ["y"], name="plus")],
                {"x": X, "z": np.zeros(4, np.float32)}), ["'plus'", "do not broadcast"]),
    (lambda: _m([N("Frobnicate", ["x"], ["y"], name="f")]), ["Frobnicate", "'f'"]),
    (lambda: _m([N("Softmax", ["x"], ["y"], name="sm", axis=7)]), ["'sm'", "axis 7"]),
    (lambda: _m([N("Relu", ["x"], ["y"], name="r")], outputs=[""]), ["graph output ''"]),
    (_unreadable_attribute, ["'const'", "attribute 'value'"]),
    (_negative_input_dim, ["input 'x'", "negative dimension"]),
    (lambda: _m([N("Relu", ["x"], ["y"])], {"x": X.astype(np.complex64)}),
     ["input 'x'", "complex64"]),
])
def test_onnx(make, fragments):
    m = make()
    _raises(lambda: load_onnx(m), *fragments, cls=OnnxImportError)


# ---- layers and tracing -------------------------------------------------------------------
@pytest.mark.parametrize("make, fragments", [
    (lambda: lnn.Linear(-1, 3), ["Linear", "in_features", "-1"]),
    (lambda: lnn.Linear(3, 2.5), ["Linear", "out_features"]),
    (lambda: lnn.Conv2d(3, 4, 0), ["Conv2d", "kernel_size"]),
    (lambda: lnn.Conv2d(3, 4, (3, 3, 3)), ["Conv2d", "kernel_size"]),
    (lambda: lnn.Conv2d(4, 4, 3, groups=0), ["Conv2d", "groups"]),
    (lambda: lnn.Embedding(10, -4), ["Embedding", "embedding_dim"]),
    (lambda: lnn.BatchNorm2d(None), ["BatchNorm2d", "num_features"]),
    (lambda: lnn.LayerNorm(2.5), ["LayerNorm", "normalized_shape"]),
    (lambda: lnn.LSTM(3, 4, num_layers=10**20), ["LSTM", "num_layers"]),
    (lambda: lnn.MultiheadAttention("8", 2), ["MultiheadAttention", "embed_dim"]),
])
def test_layer_sizes(make, fragments):
    _raises(make, *fragments, cls=ir.ShapeError)


def test_tracing_names_the_layer_and_the_input():
    class Net(lnn.Module):
        def __init__(self):
            super().__init__()
            self.fc = lnn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x)

    _raises(lambda: compiler.trace(Net(), np.zeros((2, 5), np.float32)), "layer 'fc'",
            "%fc (linear)", cls=ir.ShapeError)
    _raises(lambda: compiler.trace(Net(), np.zeros((2, 4), np.float16)),
            "example input 'x'", "float16", cls=ir.ShapeError)
    _raises(lambda: compiler.trace(Net(), [[1.0, 2.0], [3.0]]), "example input 'x'",
            cls=compiler.TraceError)
    _raises(lambda: compiler.compile(Net(), [[1.0, 2.0], [3.0]]), cls=ir.InputError)
