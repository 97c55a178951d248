"""The LLVM backend's driver: the call contract, refusals, outputs, FP mode, inspection."""

import math

import numpy as np
import pytest

import ir
from backends import llvm, reference
from ir import Graph, TensorType
from ir.ops import registry

from .helpers import check_graph, op_graph, randn


@pytest.fixture(scope="module")
def chain():
    """x -> linear -> relu -> softmax, plus the relu output: two outputs."""
    g = Graph()
    x = g.add_input("x", TensorType((4, 17)))
    h = g.call("linear", x, g.add_weight("w", randn(33, 17)), g.add_weight("b", randn(33)),
               name="h")
    r = g.call("relu", h, name="r")
    g.outputs = [g.call("softmax", r, name="s"), r]
    return g, llvm.compile_graph(g, num_threads=1)


def test_call_returns_tuple_and_matches(chain):
    g, model = chain
    x = randn(4, 17)
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 2
    for a, b in zip(out, reference.run(g, x)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert model.graph is g and model.num_threads == 1 and model.fp_mode == "strict"


@pytest.mark.parametrize("args, match", [
    ((), r"takes 1 input\(s\).*got 0"),
    ((randn(4, 17), randn(4, 17)), "got 2"),
    ((randn(4, 16),), r"expects f32\[4,17\], got f32\[4,16\]"),
    ((randn(4, 17, dtype=np.float64),), r"expects f32\[4,17\], got f64\[4,17\]"),
    ((np.zeros((4, 17), np.int32),), "got i32"),
    ((np.zeros((4, 17), np.complex64),), "expects f32"),
])
def test_wrong_inputs_raise_input_error(chain, args, match):
    with pytest.raises(ir.InputError, match=match):
        chain[1](*args)


def test_non_contiguous_inputs(chain):
    g, model = chain
    big = randn(8, 34)
    x = big[::2, ::2]
    assert not x.flags.c_contiguous
    np.testing.assert_allclose(model(x)[0], reference.run(g, np.ascontiguousarray(x))[0],
                               rtol=1e-4, atol=1e-5)
    xt = np.asfortranarray(randn(4, 17))
    np.testing.assert_allclose(model(xt)[1], reference.run(g, xt)[1], rtol=1e-4, atol=1e-5)


def test_operator_without_lowering_is_refused(monkeypatch):
    op = registry.OpDef(name="mystery", infer=lambda x: x, compute=lambda x: x)
    monkeypatch.setitem(registry.OPERATORS, "mystery", op)
    g = Graph()
    g.outputs = [g.call("mystery", g.add_input("x", TensorType((3,))), name="m")]
    with pytest.raises(ir.LaminaError, match=r"%m \(mystery\).*no lowering"):
        llvm.compile_graph(g)


def test_training_dropout_draws_numpys_mask():
    x = randn(7, 33)
    g = op_graph("dropout", {"x": x}, ratio=0.5, training=True, seed=11)
    _, (y,) = check_graph(g, [x], rtol=0, atol=0, num_threads=1)
    assert 0.3 < np.mean(y == 0) < 0.7
    with pytest.raises(ir.LaminaError, match="seed must be >= 0"):
        llvm.compile_graph(op_graph("dropout", {"x": x}, ratio=0.5, training=True, seed=-1))


def test_outputs_that_are_inputs_weights_or_repeated():
    g = Graph()
    x = g.add_input("x", TensorType((3, 17)))
    w = g.add_weight("w", randn(3, 17))
    y = g.call("add", x, w, name="y")
    g.outputs = [y, x, w, y]
    _, got = check_graph(g, [randn(3, 17)], num_threads=1)
    np.testing.assert_array_equal(got[0], got[3])
    assert got[0] is not got[3]


def test_runtime_index_error_raises_and_model_survives():
    d = randn(10, 5)
    g = op_graph("gather", {"d": d, "i": np.zeros(3, np.int64)})
    model = llvm.compile_graph(g, num_threads=1)
    with pytest.raises(ir.LaminaError, match=r"%y \(gather\).*out of range \[-10, 10\)"):
        model(d, np.array([0, 10, 1]))
    np.testing.assert_array_equal(model(d, np.array([0, -1, 2])), d[[0, -1, 2]])


def test_strict_mode_propagates_nan_and_inf():
    x = np.array([math.nan, math.inf, -math.inf, 0.0, 1.0] * 4, np.float32)
    g = Graph()
    v = g.add_input("x", TensorType.of(x))
    outs = [g.call(op, v, name=op) for op in ("relu", "exp", "tanh", "sigmoid", "log", "sqrt")]
    outs.append(g.call("maximum", v, g.call("neg", v, name="n"), name="mx"))
    outs.append(g.call("reduce_max", v, name="rmax"))
    g.outputs = outs
    model, got = check_graph(g, [x], rtol=1e-6, atol=0, num_threads=1)
    assert np.isnan(got[0][0]) and got[1][1] == math.inf and got[1][2] == 0
    assert np.isnan(got[-1])
    assert "fp_mode = strict" in model.llvm_ir and " fast " not in model.llvm_ir


def test_fast_math_is_recorded_and_close():
    x = randn(4, 17)
    g = op_graph("softmax", {"x": x})
    model = llvm.compile_graph(g, fast_math=True, num_threads=1)
    assert model.fp_mode == "fast" and "fp_mode = fast" in model.llvm_ir
    assert "fast" in model.llvm_ir.split("define", 1)[1]
    np.testing.assert_allclose(model(x), reference.run(g, x)[0], rtol=1e-4, atol=1e-6)


def test_inspection(chain):
    _, model = chain
    assert "define" in model.llvm_ir and "lamina_main" in model.llvm_ir
    assert "lamina_main:" in model.asm
    names = model.kernel_names()
    assert any(n.startswith("linear.") for n in names)
    assert "fmuladd" in model.llvm_ir or "fma" in model.asm
    assert "define" in model.kernel_ir(names[0])
    gemm = next(n for n in names if n.startswith("linear."))
    assert "vfmadd" in model.kernel_asm(gemm) or "vfmadd" in model.asm


def _conv_stack(layers: int) -> Graph:
    g = Graph()
    h = g.add_input("x", TensorType((1, 8, 12, 12)))
    for i in range(layers):
        w, b = g.add_weight(f"w{i}", randn(8, 8, 3, 3)), g.add_weight(f"b{i}", randn(8))
        h = g.call("conv2d", h, w, b, pad=[1, 1, 1, 1], name=f"c{i}")
    g.outputs = [h]
    return g


def test_identical_layers_share_kernels():
    one = llvm.compile_graph(_conv_stack(1), num_threads=1)
    model, _ = check_graph(_conv_stack(3), [randn(1, 8, 12, 12)], rtol=1e-3, atol=1e-3,
                           num_threads=1)
    assert len(model.kernel_names()) == len(one.kernel_names())


def test_bad_options():
    g = op_graph("relu", {"x": randn(3)})
    with pytest.raises(ir.LaminaError, match="num_threads"):
        llvm.compile_graph(g, num_threads=0)
    with pytest.raises(ir.LaminaError, match="target feature"):
        llvm.compile_graph(g, target_features="avx2,bogus")


def test_compiler_compile_uses_llvm():
    from compiler import compile as lamina_compile

    g = op_graph("gelu", {"x": randn(3, 17)})
    fn = lamina_compile(g, backend="llvm", num_threads=1)
    assert isinstance(fn, llvm.CompiledModel)
    x = randn(3, 17)
    np.testing.assert_allclose(fn(x), reference.run(g, x)[0], rtol=1e-4, atol=1e-6)


def test_object_cache(tmp_path):
    from backends.llvm import cache

    g = _conv_stack(2)
    x = randn(1, 8, 12, 12)
    first = llvm.compile_graph(g, num_threads=1, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.o"))) == 1
    cache.clear_memory()  # the next compile must come from the disk entry
    second = llvm.compile_graph(g, num_threads=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(first(x), second(x))
    assert second.llvm_ir == first.llvm_ir
    assert len(list(tmp_path.glob("*.o"))) == 1
