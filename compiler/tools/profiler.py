"""Where the time goes: per node (per kernel, once fused), its time, share of the total, and
achieved GFLOP/s and GB/s beside the machine's peak.

    rows = compiler.profile(model, x, opt_level=3)      # a list of dicts, slowest first
    print(format_profile(rows))

The graph is run node by node: with the reference backend each node is interpreted alone
(on the values a full run produced); with a native backend each node is cut out as a graph
of its own, compiled and timed, so what is timed is the kernel the backend makes of it.
Times are medians over `repeat` runs after a warm-up (native kernels are called on
preallocated outputs, so what is timed is the kernel, not the allocation). FLOPs are counted
here from node types and shapes (`node_flops`): multiply-adds count 2; elementwise operators
one per output element; operators without a rule fall back to one per output element and
are marked estimated. Bytes are the sizes of a node's distinct inputs (weights included) and
outputs: the traffic of a kernel that touches each once.

The peaks a node is measured against: compute, 240 GFLOP/s per core (the nominal float32
FMA rate); memory, the bandwidth of a native streaming kernel (`memory_bandwidth`) at the
node's working-set size, since a node whose data fits in a cache is fed from that cache
(its repeated runs keep it there). A node is compute-bound when its arithmetic intensity
(FLOPs per byte) reaches the machine balance (peak FLOP/s over that bandwidth), else
bandwidth-bound. No node shows more than 100% of a peak: one that beats a peak (a clock
above nominal, or noise in the bandwidth measurement) raises that peak to its own rate, and
the table says so.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence

import numpy as np

import ir
from backends import reference
from ir.ops.registry import Fusion

from ..compile import to_graph
from .progress import Progress
from .runner import build, example_inputs
from .stepping import resolve, steps
from .subgraph import single_node

PEAK_GFLOPS_PER_CORE = 240.0  # float32 FMA peak of one core of this machine class


# ---- FLOPs and bytes ----------------------------------------------------------------------
def node_flops(node: ir.Node) -> tuple[int, bool]:
    """(floating-point operations of `node`, whether that count is exact by a rule here)."""
    out = node.outputs[0].type
    rule = _RULES.get(node.op)
    if rule is not None:
        return int(rule(node, out)), True
    kind = node.opdef.fusion
    if kind in (Fusion.ELEMENTWISE, Fusion.BROADCAST):
        return out.size, True
    if kind == Fusion.INJECTIVE:
        return 0, True  # data movement only
    if kind == Fusion.REDUCTION:
        return node.inputs[0].type.size, True
    return out.size, False


def _epilogue(node, out) -> int:
    extra = out.size  # the bias
    if len(node.inputs) > 3:
        extra += out.size  # the residual
    if node.attrs.get("act", "none") != "none":
        extra += out.size
    return extra


def _conv(node, out) -> int:
    w = node.inputs[1].type.shape  # [O, C/groups, kh, kw]
    return 2 * out.size * math.prod(w[1:])


def _linear(node, out) -> int:
    return 2 * out.size * node.inputs[0].type.shape[-1]


_RULES = {
    "conv2d": lambda n, o: _conv(n, o) + (o.size if len(n.inputs) > 2 else 0),
    "fused_conv2d": lambda n, o: _conv(n, o) + _epilogue(n, o),
    "linear": lambda n, o: _linear(n, o) + (o.size if len(n.inputs) > 2 else 0),
    "fused_linear": lambda n, o: _linear(n, o) + _epilogue(n, o),
    "matmul": lambda n, o: 2 * o.size * n.inputs[0].type.shape[-1],
    "fused_elementwise": lambda n, o: o.size * max(1, len(n.attrs["body"].nodes)),
    "batch_norm": lambda n, o: 2 * o.size,  # scale and shift, per element
    "layer_norm": lambda n, o: 8 * o.size,
    "softmax": lambda n, o: 4 * o.size,
    "log_softmax": lambda n, o: 4 * o.size,
    "max_pool2d": lambda n, o: o.size * math.prod(n.attrs.get("kernel", (1,))),
    "avg_pool2d": lambda n, o: o.size * math.prod(n.attrs.get("kernel", (1,))),
    "global_avg_pool": lambda n, o: n.inputs[0].type.size,
    # integer and bfloat16 kernels: their multiply-adds counted as 2 ops, as floats are
    "qconv2d": _conv,
    "qlinear": _linear,
    "qmatmul": lambda n, o: 2 * o.size * n.inputs[0].type.shape[-1],
    "bf16_linear": _linear,
    "bf16_conv2d": lambda n, o: 2 * o.size * n.inputs[0].type.shape[1]
    * math.prod(n.attrs["kernel"]),
}
# Operators whose kernels have a higher compute peak than float32 FMA: int8 on AVX512-VNNI
# (vpdpbusd, 4 products per 32-bit lane) and bfloat16 (vdpbf16ps, 2 per lane). Each is
# measured against its own precision's peak, never float32's.
PEAK_SCALE = {"qconv2d": 4, "qlinear": 4, "qmatmul": 4, "bf16_linear": 2, "bf16_conv2d": 2}
PRECISION = {4: "int8", 2: "bfloat16", 1: "float32"}


def node_bytes(node: ir.Node) -> int:
    """Bytes a kernel for `node` reads and writes, touching each distinct value once."""
    seen = {id(v): v for v in (*node.inputs, *node.outputs)}
    return sum(v.type.nbytes for v in seen.values())


STREAM_ARRAY_BYTES = tuple((64 << 10) * 4 ** i for i in range(6))  # 64 KB .. 64 MB


@functools.cache
def memory_bandwidth(threads: int = 1, repeat: int = 5) -> tuple[tuple[int, float], ...]:
    """The streaming bandwidth of this machine by working-set size, as ((bytes, bytes per
    second), ...) with sizes ascending, from 192 KB (three 64 KB arrays: L2) to 192 MB
    (DRAM). Measured once per process and thread count.

    The kernel is native code: the llvm backend's `c = a + b` over float32 arrays (two
    reads and a write per element, the traffic of STREAM's add and triad) on `threads`
    threads, best of `repeat` calls on preallocated arrays whose pages are all touched. On
    small arrays one call chains several adds, so that a call's microseconds of overhead
    are spread over megabytes; the chain keeps up to five arrays of the size warm (a, b,
    two intermediates in the arena, c), not the three a size is labelled with, which makes
    the small sizes' rates slightly conservative (a node beating one raises its own)."""
    return tuple((3 * nbytes, _stream_rate(nbytes // 4, threads, repeat))
                 for nbytes in STREAM_ARRAY_BYTES)


def _stream_rate(n: int, threads: int, repeat: int) -> float:
    chain = max(1, min(16, (32 << 20) // (12 * n)))
    g = ir.Graph("stream")
    y = g.add_input("a", ir.TensorType((n,)))
    b = g.add_input("b", ir.TensorType((n,)))
    for _ in range(chain):
        y = g.call("add", y, b)
    g.outputs = [y]
    call = _raw_call(build(g, "llvm", num_threads=threads),
                     [np.ones(n, np.float32), np.ones(n, np.float32)])
    best = math.inf
    for _ in range(repeat + 1):  # the first call is a warm-up
        t = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t)
    return 12 * n * chain / best


def bandwidth_at(curve: Sequence[tuple[int, float]], nbytes: int) -> float:
    """Peak bandwidth for a working set of `nbytes`: the best rate measured at a size no
    smaller than the largest measured size <= nbytes (between two measured sizes the
    smaller one's rate is an upper bound; a larger size can only be slower, so its rate
    corrects a noisy low one)."""
    start = max([i for i, (size, _) in enumerate(curve) if size <= nbytes], default=0)
    return max(rate for _, rate in curve[start:])


def _raw_call(fn, args):
    """A zero-argument call of compiled `fn` on `args`. A native model runs on raw addresses
    with its outputs allocated once here (no per-call checks, copies or page faults); other
    callables are called as they are."""
    if not hasattr(fn, "run_raw"):
        return lambda: fn(*args)
    fn(*args)  # checked once: types, shapes, and any error the kernel reports
    arrays = [np.require(a, requirements="CA") for a in args]
    outs = [np.empty(v.type.shape, v.type.np_dtype) for v in fn.graph.outputs]
    addresses = [a.ctypes.data for a in (*arrays, *outs)]

    def call():
        if fn.run_raw(addresses):
            fn(*args)  # raises the kernel's error with its message

    call.keep = (arrays, outs)  # the addresses point into these
    return call


# ---- timing -------------------------------------------------------------------------------
def profile(model, *inputs, opt_level: int | str = 2, passes: Sequence | None = None,
            backend: str = "reference", repeat: int = 10, warmup: int = 1,
            cores: int = 1, progress: bool | None = None, **backend_options) -> list[dict]:
    """Per-node timings of the optimised graph, slowest first, as dicts with keys
    node, op, seconds, share, flops, flops_exact, bytes, gflops, gbps, intensity (FLOPs per
    byte), peak_gflops, peak_gbps (at the node's working-set size), bound ("compute" or
    "memory"), of_roof (share of its roofline bound), and peak_raised/bandwidth_raised (a
    peak lifted to what the node reached). `cores`, the cores the peaks are for, scales the
    compute peak (240 GFLOP/s per core, float32) and is the thread count of the streaming
    kernel that measures the memory peaks: pass the backend's num_threads (the CLI does).
    Without inputs a graph gets seeded random ones."""
    inputs = tuple(np.asarray(x) for x in inputs)
    graph = to_graph(model, *inputs)
    ir.verify(graph)
    args = example_inputs(graph, inputs)
    for step in steps(graph, resolve(passes, opt_level)):
        graph = step.after
    _, values = reference.run(graph, *args, keep=True)
    values.update({v.name: a for v, a in zip(graph.inputs, args)})
    with Progress(f"profiling ({backend})", total=len(graph.nodes), enabled=progress) as bar:
        if backend == "reference":
            times = _time_reference(graph, values, repeat, warmup, bar)
        else:
            times = _time_compiled(graph, values, backend, backend_options, repeat, warmup, bar)
    return _rows(graph, times, cores, memory_bandwidth(cores))


def _time_reference(graph, values, repeat, warmup, bar) -> list[float]:
    samples: list[list[float]] = [[] for _ in graph.nodes]
    operands = [[_value(values, graph, v) for v in n.inputs] for n in graph.nodes]
    for i, node in enumerate(graph.nodes):
        for r in range(warmup + repeat):
            t = time.perf_counter()
            reference.run_node(node, operands[i])
            if r >= warmup:
                samples[i].append(time.perf_counter() - t)
        bar.advance(note=node.name)
    return [float(np.median(s)) for s in samples]


def _time_compiled(graph, values, backend, options, repeat, warmup, bar) -> list[float]:
    times = []
    for node in graph.nodes:
        sub, sub_args = single_node(node)
        call = _raw_call(build(sub, backend, **options), [values[v.name] for v in sub_args])
        samples = []
        for r in range(warmup + repeat):
            t = time.perf_counter()
            call()
            if r >= warmup:
                samples.append(time.perf_counter() - t)
        times.append(float(np.median(samples)))
        bar.advance(note=node.name)
    return times


def _value(values, graph, v):
    return graph.weights[v.name] if v.kind == "weight" else values[v.name]


def _rows(graph, times, cores, curve) -> list[dict]:
    total = sum(times) or 1.0
    rows = []
    for node, t in zip(graph.nodes, times):
        flops, exact = node_flops(node)
        nbytes = node_bytes(node)
        rows.append({
            "node": node.name, "op": node.op, "seconds": t, "share": t / total,
            "flops": flops, "flops_exact": exact, "bytes": nbytes,
            "gflops": flops / t / 1e9 if t > 0 else 0.0,
            "gbps": nbytes / t / 1e9 if t > 0 else 0.0,
            "intensity": flops / nbytes if nbytes else math.inf,
            "cores": cores, "peak_gbps": bandwidth_at(curve, nbytes) / 1e9,
            "memory_curve": curve,
        })
    _settle_peaks(rows, PEAK_GFLOPS_PER_CORE * cores)
    rows.sort(key=lambda r: -r["seconds"])
    return rows


def _settle_peaks(rows: list[dict], peak_gflops: float) -> None:
    """Set each row's peaks, never below what a node reached, and classify it: the compute
    peak is one machine-wide figure (raised to the fastest node if one beats the nominal
    rate); a bandwidth peak belongs to a working-set size, so a node that beats the
    measured streaming rate at its size (noise) raises its own. Then the roofline: a node is
    compute-bound when its FLOPs per byte reach the machine balance at its size."""
    fastest: dict[int, float] = {}  # per precision (PEAK_SCALE)
    for r in rows:
        scale = r["peak_scale"] = PEAK_SCALE.get(r["op"], 1)
        fastest[scale] = max(fastest.get(scale, 0.0), r["gflops"])
    for r in rows:
        nominal, best = peak_gflops * r["peak_scale"], fastest[r["peak_scale"]]
        r["peak_gflops"] = max(nominal, best)
        r["peak_raised"] = best > nominal
        if r["gbps"] > r["peak_gbps"]:
            r["peak_gbps"], r["bandwidth_raised"] = r["gbps"], True
        else:
            r["bandwidth_raised"] = False
        balance = r["peak_gflops"] / r["peak_gbps"]
        r["bound"] = "compute" if r["intensity"] >= balance else "memory"
        # time >= max(flops / compute peak, bytes / bandwidth): how close it is to its roof
        r["of_roof"] = max(r["gflops"] / r["peak_gflops"], r["gbps"] / r["peak_gbps"])


def format_profile(rows: list[dict], top: int | None = None) -> str:
    """The profile as a table, with a total line and the peaks it is measured against."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ir.errors.OptionTypeError(f"format_profile takes the rows profile() returns, got "
                                        f"{type(rows).__name__}")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ir.errors.OptionError(f"format_profile: top must be a positive integer or None, "
                                    f"got {top!r}")
    if not rows:
        return "no nodes to profile"
    shown = rows[:top] if top else rows
    head = ("node", "op", "time ms", "share", "GFLOP/s", "% peak", "GB/s", "% peak",
            "flop/B", "bound")
    cells = [head]
    for r in shown:
        gflops = f"{r['gflops']:.2f}" + ("" if r["flops_exact"] else "~")
        gbps = f"{r['gbps']:.2f}" + ("*" if r["bandwidth_raised"] else "")
        cells.append((r["node"], r["op"], f"{r['seconds'] * 1e3:.3f}", f"{r['share']:.1%}",
                      gflops, f"{r['gflops'] / r['peak_gflops']:.1%}", gbps,
                      f"{r['gbps'] / r['peak_gbps']:.1%}", f"{r['intensity']:.2f}",
                      r["bound"]))
    total = sum(r["seconds"] for r in rows)
    flops, nbytes = sum(r["flops"] for r in rows), sum(r["bytes"] for r in rows)
    # the whole run against the time each node's work would take at its own peak
    at_peak_f = sum(r["flops"] / (r["peak_gflops"] * 1e9) for r in rows)
    at_peak_b = sum(r["bytes"] / (r["peak_gbps"] * 1e9) for r in rows)
    memory_bound = sum(r["seconds"] for r in rows if r["bound"] == "memory") / total
    cells.append(("total", f"{len(rows)} nodes", f"{total * 1e3:.3f}", "100.0%",
                  f"{flops / total / 1e9:.2f}", f"{at_peak_f / total:.1%}",
                  f"{nbytes / total / 1e9:.2f}", f"{at_peak_b / total:.1%}",
                  f"{flops / nbytes:.2f}" if nbytes else "", f"{memory_bound:.0%} memory"))
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i in (0, 1, 9) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(-1, lines[1])
    if top and len(rows) > top:
        lines.insert(-2, f"... {len(rows) - top} more nodes")
    return "\n".join(lines + _peak_notes(rows))


def _peak_notes(rows: list[dict]) -> list[str]:
    r0, cores = rows[0], rows[0]["cores"]
    peaks = []
    for scale in sorted({r["peak_scale"] for r in rows}):
        r = next(r for r in rows if r["peak_scale"] == scale)
        raised = (f", raised from the nominal {PEAK_GFLOPS_PER_CORE * cores * scale:g} to the "
                  "fastest node" if r["peak_raised"] else "")
        peaks.append(f"{r['peak_gflops']:g} GFLOP/s ({cores:g} core(s), "
                     f"{PRECISION[scale]}{raised})")
    curve = ", ".join(f"{rate / 1e9:.0f} at {_size(size)}" for size, rate in r0["memory_curve"])
    notes = [f"peak: {'; '.join(peaks)}; memory, GB/s by "
             f"working-set size (a native streaming add, 2 reads + 1 write): {curve}",
             "each node against the bandwidth at its own size; bound: compute when flop/B >= "
             "peak GFLOP/s / GB/s there, else memory; ~ marks an estimated FLOP count"]
    if any(r["bandwidth_raised"] for r in rows):
        notes.append("* beat the measured streaming rate at its size: that peak is raised to "
                     "the node's own rate (100%)")
    return notes


def _size(nbytes: int) -> str:
    return f"{nbytes >> 20} MB" if nbytes >= 1 << 20 else f"{nbytes >> 10} KB"
