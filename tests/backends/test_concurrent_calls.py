"""One compiled model called from many threads at once: every call runs in an arena of its
own (artifact.NativeCall's pool), so results equal the numpy reference interpreter's on the
same input, whatever the interleaving. JIT-compiled builds with 1 and 2 threads (the latter
through the shared thread pool, which runs one job at a time) and a saved, loaded model.

The model keeps several sizeable intermediates (and convolution scratch) in its arena, the
threads start together at a barrier and each cycles through inputs of its own: calls sharing
one arena would overwrite each other's intermediates and give wrong results."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from backends import artifact, llvm, reference
from ir import Graph, InputError, LaminaError, TensorType

from .helpers import randn

THREADS, CALLS, INPUTS = 8, 25, 2
SHAPE = (2, 8, 24, 24)


def _graph() -> Graph:
    """conv-relu, conv-relu, pool, linear, softmax: intermediates of 36-74 KB in the arena."""
    g = Graph()
    x = g.add_input("x", TensorType(SHAPE))
    h = g.call("fused_conv2d", x, g.add_weight("w1", randn(16, 8, 3, 3, scale=0.3)),
               g.add_weight("b1", randn(16)), pad=[1, 1, 1, 1], act="relu", name="c1")
    h = g.call("fused_conv2d", h, g.add_weight("w2", randn(16, 16, 3, 3, scale=0.2)),
               g.add_weight("b2", randn(16)), pad=[1, 1, 1, 1], act="relu", name="c2")
    h = g.call("avg_pool2d", h, kernel=[2, 2], stride=[2, 2], name="p")
    h = g.call("flatten", h, name="f")
    h = g.call("linear", h, g.add_weight("w3", randn(10, h.shape[1], scale=0.02)), name="fc")
    g.outputs = [g.call("softmax", h, name="s"), h]
    return g


@pytest.fixture(scope="module")
def graph() -> Graph:
    return _graph()


@pytest.fixture(scope="module")
def cases(graph):
    """Per thread: its inputs and the reference interpreter's outputs for them."""
    rng = np.random.default_rng(7)
    out = []
    for _ in range(THREADS):
        xs = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(INPUTS)]
        out.append([(x, reference.run(graph, x)) for x in xs])
    return out


def _hammer(model, cases) -> list[str]:
    """Each thread calls `model` CALLS times on its own inputs, all released together;
    returns a description of every wrong result or exception."""
    start = threading.Barrier(len(cases))
    wrong: list[str] = []

    def caller(k, mine):
        start.wait()
        for i in range(CALLS):
            x, want = mine[i % len(mine)]
            try:
                got = model(x)
                for a, b in zip(got, want):
                    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
            except (AssertionError, LaminaError) as e:
                wrong.append(f"thread {k} call {i}: {' '.join(str(e).split())[:200]}")

    threads = [threading.Thread(target=caller, args=(k, c)) for k, c in enumerate(cases)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wrong


def _check_concurrent(model, cases) -> None:
    model.max_concurrent_calls = THREADS
    wrong = _hammer(model, cases)
    assert not wrong, f"{len(wrong)} wrong results, first: {wrong[0]}"
    assert model.arena_canary_intact()
    assert 1 < len(model._arenas) <= THREADS  # calls really overlapped, within the bound
    assert model._free.qsize() == len(model._arenas)  # every arena given back


@pytest.mark.parametrize("threads", [1, 2])
def test_many_threads_call_one_compiled_model(graph, cases, threads):
    model = llvm.compile_graph(graph, num_threads=threads)
    assert model.arena_bytes > 64 << 10
    assert ("lamina_parallel_for" in model.llvm_ir) == (threads > 1)
    _check_concurrent(model, cases)


def test_many_threads_call_one_loaded_model(graph, cases, tmp_path):
    saved = llvm.compile_graph(graph, num_threads=2).save(tmp_path / "m.lamina")
    loaded = artifact.load(saved)
    assert loaded.metadata["uses_pool"]
    _check_concurrent(loaded, cases)


def test_arenas_stay_within_the_bound(graph, cases):
    model = llvm.compile_graph(graph, num_threads=1)
    model.max_concurrent_calls = 2
    wrong = _hammer(model, cases)
    assert not wrong, wrong[0]
    assert len(model._arenas) <= 2


def test_a_call_waits_for_a_free_arena():
    """At the bound, a caller waits until an arena is given back (here: held by the test)."""
    g = Graph()
    g.outputs = [g.call("relu", g.add_input("x", TensorType((16,))))]
    model = llvm.compile_graph(g, num_threads=1)
    model.max_concurrent_calls = 1
    done = []
    held = model._take()
    caller = threading.Thread(target=lambda: done.append(model(-np.ones(16, np.float32))))
    caller.start()
    caller.join(0.2)
    assert caller.is_alive() and not done
    model._free.put(held)
    caller.join(10)
    assert len(done) == 1 and not done[0].any()


def test_failing_calls_give_their_arena_back():
    """Calls that fail (a bad index: the code returns an error status; a wrong input: refused
    before the call) interleaved with good ones: errors stay typed, arenas all come back."""
    d = randn(10, 5)
    g = Graph()
    g.outputs = [g.call("gather", g.add_weight("d", d), g.add_input("i", TensorType((3,), "i64")),
                        name="y")]
    model = llvm.compile_graph(g, num_threads=1)
    model.max_concurrent_calls = 4
    start, wrong = threading.Barrier(4), []

    def caller(k):
        start.wait()
        for j in range(300):
            idx = np.array([k, (j % 10) - 10, 9], np.int64)
            try:
                if (j + k) % 3 == 0:
                    model(np.array([0, 10, 1]))
                    wrong.append("no error for index 10")
                elif (j + k) % 3 == 1:
                    model(np.zeros(4, np.int64))
                    wrong.append("no error for a wrong shape")
                elif not np.array_equal(model(idx), d[idx]):
                    wrong.append(f"wrong rows for {idx}")
            except InputError:
                if (j + k) % 3 != 1:
                    wrong.append(f"InputError for {idx}")
            except LaminaError as e:
                if (j + k) % 3 != 0 or "out of range" not in str(e):
                    wrong.append(f"{e} for {idx}")

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong, wrong[:3]
    assert model._free.qsize() == len(model._arenas) <= 4
