"""Where the time goes: per node (per kernel, once fused), its time, share of the total, and
achieved GFLOP/s and GB/s beside the machine's peak.

    rows = compiler.profile(model, x, opt_level=3)      # a list of dicts, slowest first
    print(format_profile(rows))

The graph is run node by node: with the reference backend each node is interpreted alone
(on the values a full run produced); with a native backend each node is cut out as a graph
of its own, compiled and timed, so what is timed is the kernel the backend makes of it.
Times are medians over `repeat` runs after a warm-up. FLOPs are counted here from node
types and shapes (`node_flops`): multiply-adds count 2; elementwise operators one per
output element; operators without a rule fall back to one per output element and are
marked estimated. Bytes are the sizes of a node's distinct inputs (weights included) and
outputs: the traffic of a kernel that touches each once.
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
}


def node_bytes(node: ir.Node) -> int:
    """Bytes a kernel for `node` reads and writes, touching each distinct value once."""
    seen = {id(v): v for v in (*node.inputs, *node.outputs)}
    return sum(v.type.nbytes for v in seen.values())


@functools.cache
def memory_bandwidth(nbytes: int = 64 << 20, repeat: int = 5) -> float:
    """Bytes per second of a large numpy copy (read plus write), best of `repeat`; measured
    once per process."""
    a = np.ones(nbytes // 4, np.float32)
    b = np.empty_like(a)
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return 2 * nbytes / best


# ---- timing -------------------------------------------------------------------------------
def profile(model, *inputs, opt_level: int | str = 2, passes: Sequence | None = None,
            backend: str = "reference", repeat: int = 10, warmup: int = 1,
            cores: int = 1, progress: bool | None = None, **backend_options) -> list[dict]:
    """Per-node timings of the optimised graph, slowest first, as dicts with keys
    node, op, seconds, share, flops, flops_exact, bytes, gflops, gbps, peak_gflops,
    peak_gbps. `cores` scales the compute peak (240 GFLOP/s per core, float32); the memory
    peak is a measured numpy copy. Without inputs a graph gets seeded random ones."""
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
    return _rows(graph, times, cores)


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
        fn = build(sub, backend, **options)
        call_args = [values[v.name] for v in sub_args]
        samples = []
        for r in range(warmup + repeat):
            t = time.perf_counter()
            fn(*call_args)
            if r >= warmup:
                samples.append(time.perf_counter() - t)
        times.append(float(np.median(samples)))
        bar.advance(note=node.name)
    return times


def _value(values, graph, v):
    return graph.weights[v.name] if v.kind == "weight" else values[v.name]


def _rows(graph, times, cores) -> list[dict]:
    total = sum(times) or 1.0
    peak_gflops = PEAK_GFLOPS_PER_CORE * cores
    peak_gbps = memory_bandwidth() / 1e9
    rows = []
    for node, t in zip(graph.nodes, times):
        flops, exact = node_flops(node)
        nbytes = node_bytes(node)
        rows.append({
            "node": node.name, "op": node.op, "seconds": t, "share": t / total,
            "flops": flops, "flops_exact": exact, "bytes": nbytes,
            "gflops": flops / t / 1e9 if t > 0 else 0.0,
            "gbps": nbytes / t / 1e9 if t > 0 else 0.0,
            "peak_gflops": peak_gflops, "peak_gbps": peak_gbps,
        })
    rows.sort(key=lambda r: -r["seconds"])
    return rows


def format_profile(rows: list[dict], top: int | None = None) -> str:
    """The profile as a table, with a total line and the peaks it is measured against."""
    if not rows:
        return "no nodes to profile"
    shown = rows[:top] if top else rows
    head = ("node", "op", "time ms", "share", "GFLOP/s", "% peak", "GB/s", "% peak")
    cells = [head]
    for r in shown:
        gflops = f"{r['gflops']:.2f}" + ("" if r["flops_exact"] else "~")
        cells.append((r["node"], r["op"], f"{r['seconds'] * 1e3:.3f}", f"{r['share']:.1%}",
                      gflops, f"{r['gflops'] / r['peak_gflops']:.1%}", f"{r['gbps']:.2f}",
                      f"{r['gbps'] / r['peak_gbps']:.1%}"))
    total = sum(r["seconds"] for r in rows)
    flops, nbytes = sum(r["flops"] for r in rows), sum(r["bytes"] for r in rows)
    pk, pb = rows[0]["peak_gflops"], rows[0]["peak_gbps"]
    cells.append(("total", f"{len(rows)} nodes", f"{total * 1e3:.3f}", "100.0%",
                  f"{flops / total / 1e9:.2f}", f"{flops / total / 1e9 / pk:.1%}",
                  f"{nbytes / total / 1e9:.2f}", f"{nbytes / total / 1e9 / pb:.1%}"))
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(-1, lines[1])
    if top and len(rows) > top:
        lines.insert(-2, f"... {len(rows) - top} more nodes")
    lines.append(f"peak: {pk:g} GFLOP/s ({pk / PEAK_GFLOPS_PER_CORE:g} core(s), float32), "
                 f"{pb:.1f} GB/s (measured numpy copy); ~ marks an estimated FLOP count")
    return "\n".join(lines)
