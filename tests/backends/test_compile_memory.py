"""Compiling many different models does not grow the process without bound: each model's
LLVM context and engine go with it, the optimisation pipeline is freed after each run, and
the in-process code cache is bounded."""

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest

from backends import llvm
from backends.llvm import cache
from ir import Graph, TensorType

ROOT = Path(__file__).resolve().parents[2]
MODELS, WARMUP = 200, 20
# Measured here (llvmlite 0.50): about 0.09 MB per model before the fixes (0.24 MB for small
# CNNs), about 0.01 MB after; what remains is allocator slack and cache entries.
LIMIT_MB_PER_MODEL = 0.05

SCRIPT = r"""
import ctypes, gc, os, sys
import numpy as np
from backends import llvm
from ir import Graph, TensorType

def rss_mb():
    gc.collect()
    try:  # glibc: return freed heap, so that RSS shows what is still held
        ctypes.CDLL(None).malloc_trim(0)
    except AttributeError:
        pass
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

def compile_and_run(i):
    # a different shape each time: a different module, never a cache hit
    g = Graph()
    x = g.add_input("x", TensorType((2, i + 1)))
    w = g.add_weight("w", np.full((2, i + 1), 0.5, np.float32))
    g.outputs = [g.call("tanh", g.call("mul", g.call("add", x, w), x))]
    model = llvm.compile_graph(g, num_threads=2)
    assert model(np.ones((2, i + 1), np.float32)).shape == (2, i + 1)

models, warmup = int(sys.argv[1]), int(sys.argv[2])
for i in range(warmup):
    compile_and_run(i)
before = rss_mb()
for i in range(warmup, models):
    compile_and_run(i)
print((rss_mb() - before) / (models - warmup))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_rss_growth_per_compiled_model_is_bounded():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(MODELS), str(WARMUP)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    per_model = float(done.stdout.split()[-1])
    assert per_model < LIMIT_MB_PER_MODEL, f"{per_model:.3f} MB retained per compiled model"


def _graph(n: int) -> Graph:
    g = Graph()
    g.outputs = [g.call("relu", g.add_input("x", TensorType((n,))))]
    return g


def test_a_dropped_model_frees_its_engine_and_context():
    model = llvm.compile_graph(_graph(5), num_threads=1)
    code = weakref.ref(model._code)
    context = model._code.context
    np.testing.assert_array_equal(model(np.array([-1, 2, -3, 4, 0], np.float32)),
                                  [0, 2, 0, 4, 0])
    del model
    gc.collect()
    assert code() is None and context.closed


def test_memory_cache_is_bounded_by_entries_and_bytes(monkeypatch):
    monkeypatch.setattr(cache, "_memory", type(cache._memory)())
    monkeypatch.setattr(cache, "MEMORY_ENTRIES", 3)
    monkeypatch.setattr(cache, "MEMORY_BYTES", 1000)
    for i in range(5):
        cache.put(f"k{i}", b"o" * 100, "t" * 100, None)
    assert list(cache._memory) == ["k2", "k3", "k4"]  # the least recently used went first
    cache.put("big", b"o" * 400, "t" * 300, None)  # 700 bytes: only k4 can stay beside it
    assert list(cache._memory) == ["k4", "big"]
    cache.put("huge", b"o" * 2000, "", None)  # larger than the whole budget: not kept
    assert "huge" not in cache._memory and cache.get("huge", None) is None
    assert cache.get("k4", None) == (b"o" * 100, "t" * 100)
