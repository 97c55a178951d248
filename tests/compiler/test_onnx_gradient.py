"""ONNX's ai.onnx.preview.training Gradient operator: the gradients come from Lamina's own
autodiff, checked against derivatives written out by hand in numpy."""

import numpy as np
import pytest
from onnx import TensorProto, helper

import compiler
from compiler import OnnxImportError, load_onnx

from .onnx_util import info

TRAINING = "ai.onnx.preview.training"


def _model(nodes, inputs: dict, outputs):
    graph = helper.make_graph(nodes, "g", [info(k, a) for k, a in inputs.items()],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                               for o in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid(TRAINING, 1)])


def test_gradient_of_a_sigmoid_product_matches_the_hand_derivation(rng):
    a, b = (rng.standard_normal((3, 4)).astype(np.float32) for _ in range(2))
    m = _model([helper.make_node("Mul", ["a", "b"], ["p"]),
                helper.make_node("Sigmoid", ["p"], ["s"]),  # y = sum(sigmoid(a * b))
                helper.make_node("Gradient", ["a", "b"], ["da", "db"], domain=TRAINING,
                                 xs=["a", "b"], y="s")],
               {"a": a, "b": b}, ["s", "da", "db"])
    fn = compiler.compile(load_onnx(m), a, b, backend="llvm")
    s, da, db = fn(a, b)
    sig = 1 / (1 + np.exp(-(a.astype(np.float64) * b)))
    np.testing.assert_allclose(s, sig, rtol=1e-6)
    np.testing.assert_allclose(da, sig * (1 - sig) * b, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(db, sig * (1 - sig) * a, rtol=1e-5, atol=1e-7)


def test_gradient_naming_an_unknown_value_is_refused_by_name():
    x = np.ones((2,), np.float32)
    m = _model([helper.make_node("Relu", ["x"], ["r"]),
                helper.make_node("Gradient", ["x"], ["dx"], domain=TRAINING, xs=["x"],
                                 y="nowhere", name="grad")], {"x": x}, ["dx"])
    with pytest.raises(OnnxImportError, match=r"grad.*nowhere"):
        load_onnx(m)
