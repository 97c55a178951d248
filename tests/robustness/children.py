"""Checks that run in a child process (see isolate.py): they call native code in ways that
could crash the process if the backend were wrong. Each raises AssertionError on a finding
and prints what it measured."""

from __future__ import annotations

import contextlib
import threading

import numpy as np

import ir
from backends import llvm, reference
from ir import Graph, TensorType


def _chain(n: int = 17, dtype: str = "f32", threads: int = 1):
    """x, y -> (relu(x) * y, softmax(x)): two inputs, two outputs, a vector remainder."""
    g = Graph()
    x = g.add_input("x", TensorType((3, n), dtype))
    y = g.add_input("y", TensorType((3, n), dtype))
    g.outputs = [g.call("mul", g.call("relu", x), y), g.call("softmax", x)]
    return g, llvm.compile_graph(g, num_threads=threads)


def _expect_input_error(model, *args, match: str = "") -> None:
    try:
        model(*args)
    except ir.InputError as e:
        assert match in str(e), (match, str(e))
        return
    raise AssertionError(f"no InputError for {[getattr(a, 'shape', a) for a in args]}")


def _check(model, g, *args) -> None:
    got = model(*args)
    want = reference.run(g, *[np.ascontiguousarray(a) for a in args])
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def bad_calls() -> None:
    g, model = _chain()
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((3, 17)).astype(np.float32) for _ in range(2))
    # refused: count, shapes, dtypes, things that are not arrays
    _expect_input_error(model, match="takes 2 input(s)")
    _expect_input_error(model, x, match="got 1")
    _expect_input_error(model, x, y, x, match="got 3")
    _expect_input_error(model, x[:, :16], y, match="expects f32[3,17], got f32[3,16]")
    _expect_input_error(model, x.reshape(17, 3), y, match="got f32[17,3]")
    _expect_input_error(model, x[None], y, match="got f32[1,3,17]")
    _expect_input_error(model, x.astype(np.float64), y, match="got f64[3,17]")
    _expect_input_error(model, x.astype(">f4"), y, match="expects f32[3,17]")  # big-endian
    _expect_input_error(model, x.astype(np.float16), y, match="float16")
    _expect_input_error(model, x.astype(np.complex64), y, match="complex64")
    _expect_input_error(model, x.astype(object), y, match="object")
    _expect_input_error(model, None, y, match="%x")
    _expect_input_error(model, "x", y, match="%x")
    _expect_input_error(model, [[1.0, 2.0], [3.0]], y, match="%x")  # ragged
    # Python lists: converted by np.asarray, so floats arrive as f64 and f32 refuses them
    _expect_input_error(model, x.tolist(), y, match="got f64[3,17]")
    g64, model64 = _chain(dtype="f64")
    _check(model64, g64, x.astype(np.float64).tolist(), y.astype(np.float64).tolist())
    gi = Graph()
    gi.outputs = [gi.call("neg", gi.add_input("i", TensorType((5,), "i64")))]
    np.testing.assert_array_equal(llvm.compile_graph(gi, num_threads=1)([1, 2, 3, 4, 5]),
                                  [-1, -2, -3, -4, -5])
    # handled: non-contiguous, reversed, transposed, broadcast (stride 0), misaligned views
    big = rng.standard_normal((6, 40)).astype(np.float32)
    _check(model, g, big[::2, 3:37:2], big[1::2, ::-2][:, :17])
    _check(model, g, np.asfortranarray(x), big.T[:17, :3].T)
    _check(model, g, np.broadcast_to(x[:1], (3, 17)), y)
    raw = np.zeros(x.nbytes + 1, np.uint8)
    odd = np.frombuffer(raw.data, np.float32, x.size, offset=1).reshape(3, 17)
    odd[...] = x
    assert not odd.flags.aligned
    _check(model, g, odd, y)
    # read-only inputs are read in place and never written
    xr, yr = x.copy(), y.copy()
    xr.setflags(write=False)
    yr.setflags(write=False)
    _check(model, g, xr, yr)
    np.testing.assert_array_equal(xr, x)
    # aliasing: one array as both inputs, an output fed back; outputs are always new arrays
    _check(model, g, x, x)
    out = model(x, y)
    _check(model, g, out[0], out[0])
    again = model(out[0], out[1])
    assert not any(np.shares_memory(a, b) for a in again for b in (*out, x, y))
    ident = Graph()
    v = ident.add_input("x", TensorType((3, 17)))
    ident.outputs = [v, v]
    m = llvm.compile_graph(ident, num_threads=1)
    a, b = m(x)
    assert not np.shares_memory(a, x) and not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, x)
    # the raw entry counts its addresses
    try:
        model.run_raw([x.ctypes.data])
        raise AssertionError("run_raw took one address")
    except ir.InputError:
        pass
    # after all that, the model still computes the right thing
    _check(model, g, x, y)
    print("bad calls ok")


def _pool_models():
    """Three models whose matmul phases are big enough to go through the thread pool."""
    rng = np.random.default_rng(1)
    out = []
    for n, k in [(64, 64), (48, 80), (40, 96)]:
        g = Graph()
        h = g.add_input("x", TensorType((n, k)))
        for i in range(8):
            w = (rng.standard_normal((k, k)) / np.sqrt(k)).astype(np.float32)
            h = g.call("matmul", h, g.add_weight(f"w{i}", w))
        g.outputs = [h]
        model = llvm.compile_graph(g, num_threads=2)
        assert "lamina_parallel_for" in model.llvm_ir
        out.append(model)
    return out


def _job(model, rng):
    """(model, its arguments, the bytes of its outputs from a lone call)."""
    args = [rng.standard_normal(v.shape).astype(np.float32) for v in model.graph.inputs]
    return model, args, _bytes(model(*args))


def _bytes(out) -> list[bytes]:
    return [o.tobytes() for o in (out if isinstance(out, tuple) else (out,))]


def _hammer(jobs, calls: int) -> int:
    """Run each job in its own thread, all at once, `calls` times; count wrong results."""
    bad = []

    def loop(model, args, want):
        for _ in range(calls):
            if _bytes(model(*args)) != want:
                bad.append(1)

    threads = [threading.Thread(target=loop, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(bad)


def threads(calls: int = 2000) -> None:
    rng = np.random.default_rng(2)
    pool_models = _pool_models()
    # several models at once: they share the thread pool
    bad = _hammer([_job(m, rng) for m in pool_models], calls)
    assert bad == 0, f"{bad} of {3 * calls} concurrent calls of three models were wrong"
    # one model from four threads at once (an arena per call), each with its own inputs
    for model in (_chain(n=257)[1], pool_models[0]):
        bad = _hammer([_job(model, rng) for _ in range(4)], calls // 2)
        assert bad == 0, f"{bad} wrong results from {model} called by four threads"
    print("threads ok")


def _rss_bytes() -> int:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory(calls: int = 20000) -> None:
    """Repeated calls must not grow the process: a leak of one 4 KiB output per call would
    add 80 MB over `calls`; the bound is 8 MiB."""
    g = Graph()
    x = g.add_input("x", TensorType((1024,)))
    g.outputs = [g.call("tanh", g.call("relu", x))]
    model = llvm.compile_graph(g, num_threads=1)
    data = np.random.default_rng(0).standard_normal(2048).astype(np.float32)
    strided, wrong = data[::2], data[:1000]
    for _ in range(2000):  # warm up: allocator pools, caches
        model(strided)
    before = _rss_bytes()
    for i in range(calls):
        model(strided if i % 2 else data[:1024])
        if i % 4 == 0:
            with contextlib.suppress(ir.InputError):
                model(wrong)
    grown = _rss_bytes() - before
    print(f"rss growth over {calls} calls: {grown / 1024:.0f} KiB")
    assert grown < 8 << 20, f"RSS grew {grown / 2**20:.1f} MiB over {calls} calls"
