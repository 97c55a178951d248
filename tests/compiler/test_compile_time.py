"""Compile-time fixes of issue 13, held in structure rather than by timing: an ONNX file is
read once per compile, the cyclic garbage collector is paused during a compile and left as
it was found, the verifier searches for cycles only in a graph out of order, and the GEMM
micro-kernel is compiled once, out of line, however many phases call it. Numerics against
numpy written here."""

import gc
import re

import numpy as np
import pytest

import compiler
import ir
from backends import llvm
from compiler.frontends.onnx import importer

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402


def gemm_relu_model(path, batch="N"):
    """y = relu(x @ w + b) with a symbolic batch dimension; returns (path, w, b)."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((6, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [batch, 6])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [batch, 5])],
        [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path, w, b


def test_onnx_file_is_read_once_per_compile(tmp_path, monkeypatch):
    path, w, b = gemm_relu_model(tmp_path / "m.onnx")
    reads = []
    real = importer._read
    monkeypatch.setattr(importer, "_read", lambda *a, **k: reads.append(a) or real(*a, **k))
    x = np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)
    fn = compiler.compile(str(path), x)
    assert len(reads) == 1  # load_onnx's; signature() reuses what it found
    np.testing.assert_allclose(fn(x), np.maximum(x @ w + b, 0), rtol=1e-5, atol=1e-6)
    x7 = np.ones((7, 6), np.float32)  # the dim_param still makes it dynamic
    np.testing.assert_allclose(fn(x7), np.maximum(x7 @ w + b, 0), rtol=1e-5, atol=1e-6)


def test_signature_of_a_changed_file_is_read_again(tmp_path):
    path, _, _ = gemm_relu_model(tmp_path / "m.onnx")
    importer.load_onnx(str(path), input_shapes=[(2, 6)])
    assert importer.signature(str(path))[0] == {0: {0: "N"}}
    gemm_relu_model(path, batch=4)  # rewritten: a different size (and modification time)
    assert importer.signature(str(path))[0] == {}


def _graph():
    x = np.random.default_rng(3).standard_normal((4, 9)).astype(np.float32)
    g = ir.Graph()
    h = g.call("relu", g.add_input("x", ir.TensorType.of(x)))
    g.outputs = [g.call("exp", h)]
    return g, x


@pytest.mark.parametrize("enabled", [True, False])
def test_compile_leaves_the_collector_as_found(enabled):
    g, x = _graph()
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        fn = compiler.compile(g, x)
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()
    np.testing.assert_allclose(fn(x), np.exp(np.maximum(x, 0)), rtol=1e-6)


def test_collector_is_off_during_a_compile_and_nested_ones(monkeypatch):
    seen = []
    real = llvm.compile_graph

    def spy(graph, **options):
        seen.append(gc.isenabled())
        return real(graph, **options)

    monkeypatch.setattr(compiler.compile.__globals__["backends"], "get", lambda name: spy)
    g, x = _graph()
    with compiler.compile.__globals__["gc_paused"]():
        compiler.compile(g, x)
        assert not gc.isenabled()  # the outer pause still holds
    assert seen == [False] and gc.isenabled()


def test_verify_searches_for_cycles_only_out_of_order(monkeypatch):
    g, _ = _graph()
    monkeypatch.setattr(ir.Graph, "to_networkx", lambda self: pytest.fail("searched"))
    ir.verify(g)  # in order: no cycle possible, no search
    relu, exp = g.nodes
    monkeypatch.undo()
    relu.replace_input(g.inputs[0], exp.outputs[0])
    with pytest.raises(ir.VerifyError, match="cycle"):
        ir.verify(g)


def test_gemm_micro_kernel_is_compiled_once_out_of_line():
    """Three linear layers of different shapes share one micro-kernel function, called, not
    inlined into each phase (which tripled DenseNet-121's optimised code)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 64)).astype(np.float32)
    ws = [rng.standard_normal(s).astype(np.float32) for s in [(48, 64), (80, 48), (33, 80)]]
    g = ir.Graph()
    h = g.add_input("x", ir.TensorType.of(x))
    for i, w in enumerate(ws):
        h = g.call("linear", h, g.add_weight(f"w{i}", w))
    g.outputs = [h]
    model = llvm.compile_graph(g, num_threads=1)
    text = model.llvm_ir
    defined = [line for line in text.splitlines()
               if line.startswith("define") and "gemm.uk" in line]
    calls = re.findall(r"call [^@\n]*@\"?gemm\.uk", text)
    assert len(defined) == 1 and len(calls) >= 3, (defined, calls)
    want = x
    for w in ws:
        want = want @ w.T
    np.testing.assert_allclose(model(x), want, rtol=1e-4, atol=1e-3)
