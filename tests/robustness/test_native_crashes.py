"""Crash findings of issue 20, each run in a child process (isolate.py) so that a crash, an
abort or a hang fails one test instead of pytest: concurrent first compiles (the thread-pool
runtime), target features the CPU lacks (SIGILL), and odd entries or directories in the disk
cache (LLVM aborts, segfaults, a FIFO that blocks). The `child_*` functions run in the child."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import llvmlite.binding as llvm_binding
import numpy as np
import pytest

import ir
from backends import llvm, reference
from backends.llvm import cache
from backends.llvm.target import TargetError
from ir import Graph, TensorType

from .isolate import run_isolated


def _matmul_graph(n: int = 64, op: str = "tanh") -> Graph:
    """x @ w, then `op`: big enough for the thread pool, so the object imports its entry."""
    g = Graph()
    x = g.add_input("x", TensorType((n, n)))
    w = (np.random.default_rng(n).standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    g.outputs = [g.call(op, g.call("matmul", x, g.add_weight("w", w)))]
    return g


def _check(model, g: Graph) -> None:
    """The model agrees with the reference interpreter on random inputs."""
    args = [np.random.default_rng(1).standard_normal(v.type.shape).astype(np.float32)
            for v in g.inputs]
    np.testing.assert_allclose(model(*args), reference.run(g, *args)[0], rtol=1e-4, atol=1e-5)


# ---- 1. two threads compile at once: one runtime, no crash at exit -----------------------
def _small_graph(n: int) -> Graph:
    g = Graph()
    g.outputs = [g.call("tanh", g.call("relu", g.add_input("x", TensorType((4, n)))))]
    return g


def _compile_together(graphs: list[Graph]) -> list:
    """Compile each graph on its own thread, all starting at once."""
    models: list = [None] * len(graphs)
    start = threading.Barrier(len(graphs))

    def compile_one(i: int) -> None:
        start.wait()
        models[i] = llvm.compile_graph(graphs[i], num_threads=2)

    threads = [threading.Thread(target=compile_one, args=(i,)) for i in range(len(graphs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return models


def child_concurrent_compiles(rounds: int = 3) -> None:
    for r in range(rounds):
        # alike graphs, so both threads reach the runtime's creation at about the same time
        graphs = [_small_graph(5 + 2 * r), _small_graph(6 + 2 * r)]
        for model, g in zip(_compile_together(graphs), graphs):
            _check(model, g)
    print("concurrent ok")


def test_concurrent_first_compiles_share_one_runtime():
    """Two threads that compile at once built two pool runtimes; the loser's code was freed
    while its exit hook still pointed into it: a segfault at exit. A race, so several
    fresh processes."""
    for _ in range(3):
        assert "concurrent ok" in run_isolated(
            "from tests.robustness.test_native_crashes import child_concurrent_compiles\n"
            "child_concurrent_compiles()", timeout=120)


# ---- 2. target features: refuse what the host lacks, narrow as before --------------------
def _absent_feature() -> str:
    """A feature LLVM knows and this CPU lacks ("ndd", an APX extension, where absent)."""
    llvm_binding.initialize_native_target()
    host = llvm_binding.get_host_cpu_features()
    absent = sorted(name for name, on in host.items() if not on)
    return "ndd" if "ndd" in absent else absent[0]


def child_target_features() -> None:
    g = _matmul_graph(32)
    feature = _absent_feature()
    try:
        llvm.compile_graph(g, num_threads=1, target_features=f"+{feature}")
        raise AssertionError(f"+{feature} was accepted on a CPU without it")
    except TargetError as e:
        assert isinstance(e, ir.LaminaError) and isinstance(e, ValueError)
        assert repr(feature) in str(e), str(e)
    model = llvm.compile_graph(g, num_threads=1, target_features="-avx512f")
    assert model.target.vector_bytes <= 32 and "-avx512f" in model.target.features
    _check(model, g)
    print(f"refused +{feature}; -avx512f ok")


def test_absent_feature_refused_and_narrowing_works():
    out = run_isolated("from tests.robustness.test_native_crashes import child_target_features\n"
                       "child_target_features()", timeout=120)
    assert "-avx512f ok" in out


def test_feature_string_checks():
    host = llvm_binding.get_host_cpu_features()
    present = next(name for name, on in host.items() if on)
    assert f"+{present}" in llvm.host_target(f"+{present}").features  # no change: allowed
    with pytest.raises(TargetError, match="unknown target feature 'no-such-feature'"):
        llvm.host_target("-no-such-feature")
    with pytest.raises(TargetError, match="target_features must be"):
        llvm.host_target(5)


# ---- 3. the disk cache: odd entries are rebuilt, unusable directories are typed errors ----
def _rewrite(path: Path, payload: bytes) -> None:
    """Replace an entry's payload, updating its digest (as an entry we wrote would have)."""
    path.write_bytes(hashlib.sha256(payload).digest() + payload)


def _tamper(case: str, d: Path, k: str) -> None:
    obj = d / f"{k}.o"
    payload = obj.read_bytes()[32:]
    if case == "truncated":
        _rewrite(obj, payload[:len(payload) // 2])
    elif case == "renamed_entry":
        assert b"lamina_main\0" in payload
        _rewrite(obj, payload.replace(b"lamina_main\0", b"lamina_maim\0"))
    elif case == "renamed_import":
        assert b"lamina_parallel_for\0" in payload
        _rewrite(obj, payload.replace(b"lamina_parallel_for\0", b"lamina_parallel_fox\0"))
    elif case == "fifo":
        for path in (obj, d / f"{k}.ll"):
            path.unlink()
            os.mkfifo(path, 0o600)
    else:
        raise AssertionError(case)


def child_cache_entry(case: str, directory: str) -> None:
    d, g = Path(directory), _matmul_graph()
    cache.clear_memory()
    llvm.compile_graph(g, num_threads=2, cache_dir=d)
    (obj,) = d.glob("*.o")
    k = obj.stem
    _tamper(case, d, k)
    cache.clear_memory()
    assert cache.get(k, d) is None, "a damaged entry was loaded"
    _check(llvm.compile_graph(g, num_threads=2, cache_dir=d), g)
    assert stat.S_ISREG(obj.lstat().st_mode)
    cache.clear_memory()
    assert cache.get(k, d) is not None, "the entry was not rebuilt"
    print("rebuilt")


@pytest.mark.parametrize("case", ["truncated", "renamed_entry", "renamed_import", "fifo"])
def test_damaged_cache_entry_is_rebuilt(tmp_path, case):
    """Entries with a valid digest that MCJIT cannot load (LLVM aborted, or the entry point
    was null), and a FIFO where an entry would be (compile blocked reading it): each is a
    miss, compiled again and overwritten."""
    out = run_isolated("from tests.robustness.test_native_crashes import child_cache_entry\n"
                       f"child_cache_entry({case!r}, {str(tmp_path)!r})", timeout=120)
    assert "rebuilt" in out


def child_cache_dir(case: str, directory: str) -> None:
    tmp = Path(directory)
    (tmp / "file").write_text("not a directory")
    cache_dir = {"is_file": tmp / "file", "under_file": tmp / "file" / "sub",
                 "read_only": tmp / "ro", "wrong_type": 5}[case]
    if case == "read_only":
        cache_dir.mkdir(mode=0o500)
    g = _matmul_graph(16)
    try:
        llvm.compile_graph(g, num_threads=1, cache_dir=cache_dir)
        raise AssertionError(f"cache_dir {cache_dir!r} was accepted")
    except ir.LaminaError as e:
        named = "cache_dir" if case == "wrong_type" else str(cache_dir)
        assert named in str(e), str(e)
        assert case == "wrong_type" or isinstance(e, cache.CacheError), type(e)
        assert case == "wrong_type" or isinstance(e, OSError), type(e)
        print(type(e).__name__)


@pytest.mark.parametrize("case", ["is_file", "under_file", "read_only", "wrong_type"])
def test_unusable_cache_dir_is_a_typed_error(tmp_path, case):
    """Not raw IsADirectoryError, FileExistsError, PermissionError or TypeError."""
    if case == "read_only" and os.getuid() == 0:
        pytest.skip("root writes to a read-only directory")
    out = run_isolated("from tests.robustness.test_native_crashes import child_cache_dir\n"
                       f"child_cache_dir({case!r}, {str(tmp_path)!r})", timeout=120)
    assert ("LaminaError" if case == "wrong_type" else "CacheError") in out
