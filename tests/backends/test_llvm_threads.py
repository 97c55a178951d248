"""num_threads: results are identical for every thread count (work is split only over
independent outputs), and big phases really go through the thread pool."""

import numpy as np
import pytest

from backends import llvm
from ir import Graph, TensorType

from .helpers import randn


@pytest.fixture(scope="module")
def cnn():
    g = Graph()
    x = g.add_input("x", TensorType((2, 8, 32, 32)))
    h = g.call("fused_conv2d", x, g.add_weight("w1", randn(32, 8, 3, 3)),
               g.add_weight("b1", randn(32)), pad=[1, 1, 1, 1], act="relu", name="c1")
    h = g.call("fused_conv2d", h, g.add_weight("w2", randn(32, 1, 3, 3)),
               g.add_weight("b2", randn(32)), pad=[1, 1, 1, 1], groups=32, name="dw")
    h = g.call("avg_pool2d", h, kernel=[2, 2], stride=[2, 2], name="p")
    h = g.call("flatten", h, name="f")
    h = g.call("linear", h, g.add_weight("w3", randn(64, h.shape[1])), name="fc")
    h = g.call("layer_norm", h, name="ln")
    g.outputs = [g.call("softmax", h, name="s"), g.call("reduce_sum", h, axes=[1], name="r")]
    return g


def test_thread_counts_agree_bitwise(cnn):
    x = randn(2, 8, 32, 32)
    outs = {}
    for t in (1, 2, 3):
        model = llvm.compile_graph(cnn, num_threads=t)
        outs[t] = model(x)
        if t > 1:
            assert "lamina_parallel_for" in model.llvm_ir
    for t in (2, 3):
        for a, b in zip(outs[1], outs[t]):
            np.testing.assert_array_equal(a, b)


def test_deep_layer_splits_rows_and_agrees():
    """Few columns, many rows (a 7x7 ResNet layer): rows are split, B is packed once."""
    g = Graph()
    x = g.add_input("x", TensorType((1, 64, 7, 7)))
    g.outputs = [g.call("fused_conv2d", x, g.add_weight("w", randn(512, 64, 3, 3)),
                        g.add_weight("b", randn(512)), pad=[1, 1, 1, 1], act="relu")]
    x = randn(1, 64, 7, 7)
    one = llvm.compile_graph(g, num_threads=1)(x)
    np.testing.assert_array_equal(llvm.compile_graph(g, num_threads=2)(x), one)


def test_repeated_parallel_calls_are_stable(cnn):
    model = llvm.compile_graph(cnn, num_threads=2)
    x = randn(2, 8, 32, 32)
    first = model(x)
    for _ in range(20):
        for a, b in zip(first, model(x)):
            np.testing.assert_array_equal(a, b)


def test_one_thread_never_calls_the_pool(cnn):
    assert "lamina_parallel_for" not in llvm.compile_graph(cnn, num_threads=1).llvm_ir


def test_models_on_concurrent_python_threads(cnn):
    """The pool serves one job at a time; a model whose caller finds it busy runs its tasks
    on its own thread, with the same results."""
    import threading

    x = randn(2, 8, 32, 32)
    models = [llvm.compile_graph(cnn, num_threads=2) for _ in range(3)]
    want = models[0](x)
    bad = []

    def hammer(m):
        for _ in range(30):
            for a, b in zip(m(x), want):
                if not np.array_equal(a, b):
                    bad.append(1)

    threads = [threading.Thread(target=hammer, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad
