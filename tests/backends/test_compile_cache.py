"""The compile cache is keyed by the graph's structure and the options, before any LLVM IR is
built: a hit does not lower, runs the same code bit for bit, and computes with the weights
of the graph being compiled (weight-derived arrays are recomputed by their recipes). The
reference interpreter is the oracle for the numbers."""

import os

import numpy as np
import pytest

import compiler
from backends import llvm, reference
from backends.llvm import cache, driver
from compiler.tools import aot
from ir import Graph, TensorType
from tests.robustness.isolate import run_isolated


def model(seed: int = 0, hidden: int = 16, size: int = 12) -> Graph:
    """Every kind of weight-derived array: a conv's packed weight (GEMM A), a linear's (B),
    a matmul's weight B, an LSTM's gathered weights; and structure-only tables."""
    rng = np.random.default_rng(seed)

    def w(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    g = Graph("cached")
    x = g.add_input("x", TensorType((2, 4, size, size)))
    h = g.call("fused_conv2d", x, g.add_weight("cw", w(8, 4, 3, 3)), g.add_weight("cb", w(8)),
               pad=[1, 1, 1, 1], act="relu", name="c")
    p = g.call("max_pool2d", h, kernel=[2, 2], stride=[2, 2], name="p")
    f = g.call("flatten", p, name="f")
    y = g.call("linear", f, g.add_weight("lw", w(hidden, f.shape[1], scale=0.05)), name="fc")
    m = g.call("matmul", y, g.add_weight("mw", w(hidden, 12)), name="mm")
    seq = g.call("reshape", m, shape=[3, 2, 4], name="seq")
    lstm = g.call("lstm", seq, g.add_weight("lw_x", w(1, 4 * 5, 4)),
                  g.add_weight("lw_h", w(1, 4 * 5, 5)), g.add_weight("lb", w(1, 2 * 4 * 5)),
                  hidden_size=5, name="rnn")
    g.outputs = [g.call("tanh", m, name="t"), lstm[0]]
    return g


def x_of(size: int = 12) -> np.ndarray:
    return np.random.default_rng(7).standard_normal((2, 4, size, size)).astype(np.float32)


def check(fn, g: Graph, x: np.ndarray) -> None:
    for got, want in zip(fn(x), reference.run(g, x)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.fixture
def lowered(monkeypatch):
    """How many times the driver lowered a graph to LLVM IR."""
    calls = []
    build = driver.EntryBuilder.build
    monkeypatch.setattr(driver.EntryBuilder, "build",
                        lambda self: (calls.append(self.graph.name), build(self))[1])
    cache.clear_memory()
    yield calls
    cache.clear_memory()


def test_warm_compile_does_not_lower_and_is_bit_identical(lowered):
    g, x = model(), x_of()
    cold = llvm.compile_graph(g, num_threads=1)
    warm = llvm.compile_graph(g, num_threads=1)
    assert len(lowered) == 1
    for a, b in zip(cold(x), warm(x)):
        np.testing.assert_array_equal(a, b)
    assert warm.llvm_ir == cold.llvm_ir and warm.arena_bytes == cold.arena_bytes
    assert warm.fp_mode == "strict" and warm.num_threads == 1
    check(warm, g, x)


def test_other_weights_share_the_code_and_compute_with_their_own(lowered):
    x = x_of()
    first = llvm.compile_graph(model(seed=0), num_threads=2)
    g = model(seed=1)
    second = llvm.compile_graph(g, num_threads=2)
    assert len(lowered) == 1  # the second graph reused the first one's code
    check(second, g, x)
    assert not np.allclose(first(x)[0], second(x)[0])
    check(first, model(seed=0), x)  # and the first model still has its own weights


@pytest.mark.parametrize("change", [
    {"fast_math": True}, {"num_threads": 2}, {"target_features": "sse"}, {"size": 16},
    {"hidden": 24}, {"name": "other"}])
def test_a_changed_option_or_structure_misses(lowered, change):
    options = {k: v for k, v in change.items() if k in ("fast_math", "num_threads",
                                                         "target_features")}
    shape = {k: v for k, v in change.items() if k in ("size", "hidden")}
    llvm.compile_graph(model(), num_threads=1)
    g = model(**shape)
    if "name" in change:
        g.name = change["name"]
    fn = llvm.compile_graph(g, **{"num_threads": 1, **options})
    assert len(lowered) == 2
    check(fn, g, x_of(shape.get("size", 12)))


def test_a_changed_code_generator_misses(lowered, monkeypatch):
    g = model()
    llvm.compile_graph(g, num_threads=1)
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "an edited lowering")
    llvm.compile_graph(g, num_threads=1)
    assert len(lowered) == 2


def test_lowering_that_reads_weight_values_is_not_shared(lowered):
    """conv3d folds its weight into a compile-time array outside a recipe: such a
    compilation is cached by its LLVM text only, so other weights get their own arrays."""
    def g3(seed):
        rng = np.random.default_rng(seed)
        g = Graph("vol")
        x = g.add_input("x", TensorType((1, 2, 4, 5, 5)))
        wt = g.add_weight("w", rng.standard_normal((3, 2, 2, 2, 2)).astype(np.float32))
        g.outputs = [g.call("conv3d", x, wt, name="c")]
        return g

    x = np.random.default_rng(3).standard_normal((1, 2, 4, 5, 5)).astype(np.float32)
    for seed in (0, 1):
        g = g3(seed)
        np.testing.assert_allclose(llvm.compile_graph(g, num_threads=1)(x),
                                   reference.run(g, x)[0], rtol=1e-4, atol=1e-5)
    assert len(lowered) == 2


CHILD = """
import sys, numpy as np
from backends import llvm, reference
from backends.llvm import driver
from tests.backends.test_compile_cache import model, x_of
calls = []
build = driver.EntryBuilder.build
driver.EntryBuilder.build = lambda self: (calls.append(1), build(self))[1]
g = model(seed={seed})
fn = llvm.compile_graph(g, num_threads=2, cache_dir={d!r})
x = x_of()
for got, want in zip(fn(x), reference.run(g, x)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
print("lowered", len(calls))
"""


def test_disk_entry_survives_a_new_process(tmp_path):
    out = run_isolated(CHILD.format(seed=0, d=str(tmp_path)))
    assert "lowered 1" in out
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".ll", ".meta", ".o"]
    out = run_isolated(CHILD.format(seed=1, d=str(tmp_path)))  # other weights, same code
    assert "lowered 0" in out


def _entry(tmp_path) -> str:
    cache.clear_memory()
    llvm.compile_graph(model(), num_threads=1, cache_dir=tmp_path)
    cache.clear_memory()
    (meta,) = tmp_path.glob("*.meta")
    return meta.stem


def _rewrite(path, payload: bytes) -> None:
    """Replace a file's payload with a matching digest, as this user would write it."""
    import hashlib

    path.write_bytes(hashlib.sha256(payload).digest() + payload)


@pytest.mark.parametrize("tamper", ["flip_meta", "garbage_meta_with_digest", "wrong_shape",
                                    "unknown_recipe", "foreign_meta", "missing_meta"])
def test_damaged_or_foreign_metadata_is_a_miss(lowered, tmp_path, tamper):
    k = _entry(tmp_path)
    meta = tmp_path / f"{k}.meta"
    if tamper == "flip_meta":
        data = bytearray(meta.read_bytes())
        data[-1] ^= 0xFF
        meta.write_bytes(bytes(data))
    elif tamper == "garbage_meta_with_digest":
        _rewrite(meta, b"not an npz")
    elif tamper in ("wrong_shape", "unknown_recipe"):
        doc, arrays = cache.unpack_meta(meta.read_bytes()[32:])
        item = next(e for e in doc["extras"] if "recipe" in e)
        if tamper == "wrong_shape":
            item["shape"] = [1]
        else:
            item["recipe"] = "os.system"
        _rewrite(meta, cache.pack_meta(doc, arrays))
    elif tamper == "foreign_meta":
        meta.chmod(0o666)
    else:
        meta.unlink()
    g, x = model(seed=2), x_of()
    fn = llvm.compile_graph(g, num_threads=1, cache_dir=tmp_path)
    assert len(lowered) == 2  # compiled again
    check(fn, g, x)
    if tamper != "foreign_meta":  # rebuilt and overwritten: the next process hits
        cache.clear_memory()
        llvm.compile_graph(g, num_threads=1, cache_dir=tmp_path)
        assert len(lowered) == 2


def test_artifacts_from_a_cache_hit(lowered, tmp_path):
    """llvm_ir, asm, save() (run by compiler.load) and `lamina compile`'s files all come
    out of a model that was never lowered in this process."""
    g, x = model(seed=0), x_of()
    llvm.compile_graph(model(seed=5), num_threads=2)
    fn = llvm.compile_graph(g, num_threads=2)
    assert len(lowered) == 1
    assert "define" in fn.llvm_ir and "lamina_main" in fn.asm
    assert fn.kernel_names() and fn.calls_thread_pool
    loaded = compiler.load(fn.save(tmp_path / "m.lamina"))
    for got, want in zip(loaded(x), reference.run(g, x)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    aot.write(tmp_path / "aot", g, fn, "stats")
    names = set(os.listdir(tmp_path / "aot"))
    assert {"model.ll", "model.s", "model.o", "model.h", "model.weights.bin"} <= names
    blob = (tmp_path / "aot" / "model.weights.bin").read_bytes()
    packed = fn.constant_arrays[0].tobytes()  # the conv's packed weight, of these weights
    assert packed in blob


def test_models_dropped_in_a_reference_cycle_are_freed_safely():
    """The collector finalises a cycle's objects in any order: a model's LLVM context must
    not be disposed before its engine (it segfaulted), for built and cached code alike."""
    out = run_isolated("""
        import gc
        from backends import llvm
        from tests.backends.test_compile_cache import model, x_of
        for i in range(6):
            fn = llvm.compile_graph(model(seed=i), num_threads=1)  # a miss, then hits
            fn(x_of())
            cycle = [fn]
            cycle.append(cycle)
            del fn, cycle
            gc.collect()
        print("freed")
    """)
    assert "freed" in out
