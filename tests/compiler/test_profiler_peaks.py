"""The profiler's peaks are honest: memory bandwidth measured by a native streaming kernel at
each working-set size, no node above 100% of a peak, every node classified as compute- or
bandwidth-bound by its arithmetic intensity against the machine balance."""

import math

import numpy as np
import pytest

import compiler
import ir
from compiler.tools import profiler

F32 = np.float32


def small_model():
    """A 3x3 conv with 32 channels (about 45 FLOPs per byte: compute-bound), then
    elementwise and data-movement nodes (under 1 FLOP per byte: bandwidth-bound)."""
    rng = np.random.default_rng(0)
    g = ir.Graph("peaks")
    x = g.add_input("x", ir.TensorType((1, 16, 32, 32)))
    w = g.add_weight("w", (0.1 * rng.standard_normal((32, 16, 3, 3))).astype(F32))
    c = g.call("conv2d", x, w, name="conv", pad=(1, 1, 1, 1))
    r = g.call("relu", c, name="relu")
    t = g.call("transpose", r, name="swap", perm=(0, 2, 3, 1))
    g.outputs = [g.call("add", t, t, name="double")]
    return g, rng.standard_normal((1, 16, 32, 32)).astype(F32)


@pytest.fixture(scope="module")
def rows():
    g, x = small_model()
    return compiler.profile(g, x, opt_level=0, backend="llvm", num_threads=1, repeat=3)


def test_no_node_above_a_peak_and_each_classified(rows):
    assert {r["op"] for r in rows} == {"conv2d", "relu", "transpose", "add"}
    for r in rows:
        assert 0 < r["gflops"] / r["peak_gflops"] <= 1.0 or r["flops"] == 0, r
        assert 0 < r["gbps"] / r["peak_gbps"] <= 1.0, r
        assert 0 < r["of_roof"] <= 1.0, r
        balance = r["peak_gflops"] / r["peak_gbps"]
        assert r["bound"] == ("compute" if r["intensity"] >= balance else "memory"), r
    by_op = {r["op"]: r for r in rows}
    conv = by_op["conv2d"]
    assert conv["intensity"] == pytest.approx(2 * 32 * 32 * 32 * 16 * 9 / (
        4 * (16 * 32 * 32 + 32 * 16 * 9 + 32 * 32 * 32)))  # hand-counted FLOPs / bytes
    assert conv["bound"] == "compute"
    assert by_op["transpose"]["bound"] == by_op["add"]["bound"] == "memory"


def test_table_shows_the_bound_and_no_share_above_100_percent(rows):
    table = compiler.format_profile(rows)
    for r in rows:
        line = next(ln for ln in table.splitlines() if ln.startswith(r["node"] + " "))
        assert line.split()[-1] == r["bound"]
        percents = [float(p[:-1]) for p in line.split() if p.endswith("%")]
        assert len(percents) == 3 and max(percents[1:]) <= 100.0  # share, then two peaks
    assert "native streaming add" in table and "bound: compute when" in table


def test_bandwidth_is_measured_by_native_code(monkeypatch):
    built = []

    def spy(graph, backend="reference", **options):
        built.append((backend, [n.op for n in graph.nodes], options))
        return real(graph, backend, **options)

    real = profiler.build
    monkeypatch.setattr(profiler, "build", spy)
    curve = profiler.memory_bandwidth.__wrapped__(threads=1, repeat=1)
    sizes = [size for size, _ in curve]
    assert sizes == sorted(sizes) and sizes[0] <= 192 << 10 and sizes[-1] >= 192 << 20
    assert all(math.isfinite(rate) and rate > 1e8 for _, rate in curve)
    assert all(b == "llvm" and set(ops) == {"add"} and o == {"num_threads": 1}
               for b, ops, o in built)


def test_bandwidth_at_takes_the_rate_of_the_working_set_size():
    curve = ((100, 50.0), (1000, 30.0), (10_000, 35.0), (100_000, 10.0))
    assert profiler.bandwidth_at(curve, 10) == 50.0  # smaller than any measured size
    assert profiler.bandwidth_at(curve, 500) == 50.0  # bounded by the smaller size's rate
    assert profiler.bandwidth_at(curve, 1000) == 35.0  # a larger size's rate corrects noise
    assert profiler.bandwidth_at(curve, 10**9) == 10.0


def test_a_node_beating_a_peak_raises_it_to_100_percent():
    g, _ = small_model()
    n = len(g.nodes)
    curve = ((1, 1e9),)  # 1 GB/s at every size: every node beats it
    conv_flops = profiler.node_flops(g.nodes[0])[0]
    times = [conv_flops / 480e9] + [1e-3] * (n - 1)  # the conv at 480 GFLOP/s on 1 core
    rows = profiler._rows(g, times, 1, curve)
    conv = next(r for r in rows if r["op"] == "conv2d")
    assert conv["gflops"] == pytest.approx(480.0)
    assert all(r["peak_gflops"] == pytest.approx(480.0) and r["peak_raised"] for r in rows)
    for r in rows:
        assert r["gbps"] / r["peak_gbps"] <= 1.0 and r["bandwidth_raised"] == (r["gbps"] > 1)
    table = compiler.format_profile(rows)
    assert "raised from the nominal 240 to the fastest node" in table
    assert "* beat the measured streaming rate" in table


def test_int8_kernels_are_measured_against_the_vnni_peak(rng):
    """A qlinear counts its multiply-adds (2 ops each) and is held to int8's peak, 4x the
    float32 FMA rate: 900 GOP/s on one core is 94% of 960, not 375% of 240."""
    from ir import Graph, TensorType

    g = Graph("q")
    x = g.add_input("x", TensorType((4, 64), "u8"))
    w = g.add_weight("w", rng.integers(-127, 128, (32, 64)).astype(np.int8))
    g.outputs = [g.call("qlinear", x, w, x_scale=0.1, x_zero_point=3, w_scale=[0.01] * 32,
                        y_scale=0.2, y_zero_point=0, dtype="u8")]
    flops, exact = profiler.node_flops(g.nodes[0])
    assert exact and flops == 2 * 4 * 32 * 64
    rows = profiler._rows(g, [flops / 900e9], 1, ((1, 1e12),))
    (r,) = rows
    assert r["peak_gflops"] == pytest.approx(960.0) and not r["peak_raised"]
    assert r["gflops"] / r["peak_gflops"] == pytest.approx(900 / 960)
    assert "960 GFLOP/s (1 core(s), int8)" in compiler.format_profile(rows)
