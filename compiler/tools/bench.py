"""Latency of a compiled model: median and spread over repeated calls after a warm-up,
beside the reference interpreter running the same optimised graph.

    result = benchmark(model, x, opt_level=3, backend="llvm")
    print(format_bench(result))
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

import ir

from ..compile import to_graph
from .progress import Progress
from .runner import build, example_inputs
from .stepping import resolve, steps


def time_calls(fn, args: Sequence, *, repeat: int = 50, warmup: int = 3, budget_s: float = 5.0,
               progress: Progress | None = None) -> dict:
    """Seconds per call: median, quartiles, min, max, mean, stdev and the number of runs.
    Stops early once `budget_s` is spent (at least 3 timed runs)."""
    for _ in range(warmup):
        fn(*args)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeat and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
        if progress is not None:
            progress.advance()
    a = np.array(times)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "min": float(a.min()),
            "max": float(a.max()), "mean": float(a.mean()), "stdev": float(a.std()),
            "runs": len(times)}


def benchmark(model, *inputs, opt_level: int | str = 2, passes: Sequence | None = None,
              backend: str = "reference", repeat: int = 50, warmup: int = 3,
              budget_s: float = 5.0, compare: bool = True, progress: bool | None = None,
              **backend_options) -> dict:
    """Time `backend` on the optimised graph and, with `compare`, the reference interpreter
    on the same graph (on the unoptimised graph when `backend` is the reference).
    Returns {"rows": [{"backend", ...time_calls keys}], "speedup", "compile_s", "graph"}:
    speedup is the second row's median over the first's."""
    inputs = tuple(np.asarray(x) for x in inputs)
    graph = to_graph(model, *inputs)
    ir.verify(graph)
    args = example_inputs(graph, inputs)
    original = graph
    start = time.perf_counter()
    pipeline = resolve(passes, opt_level)
    with Progress("optimising", total=len(pipeline), enabled=progress) as bar:
        for step in steps(graph, pipeline):
            bar.advance(note=step.name)
            graph = step.after
        bar.set(f"compiling with {backend}")
        fn = build(graph, backend, **backend_options)
    compile_s = time.perf_counter() - start
    targets = [(backend, fn)]
    if compare and backend != "reference":
        targets.append(("reference", build(graph, "reference")))
    elif compare:  # the interpreter against itself on the unoptimised graph
        targets.append(("reference, unoptimised", build(original, "reference")))
    result = time_targets(targets, args, repeat=repeat, warmup=warmup, budget_s=budget_s,
                          progress=progress)
    return {**result, "compile_s": compile_s, "graph": graph}


def time_targets(targets: Sequence, args: Sequence, *, repeat: int = 50, warmup: int = 3,
                 budget_s: float = 5.0, progress: bool | None = None) -> dict:
    """Time each (label, callable) on `args`: {"rows": [{"backend": label, ...time_calls
    keys}], "speedup": first row against the second, or None}."""
    rows = []
    for name, f in targets:
        with Progress(f"timing {name}", total=repeat, enabled=progress) as bar:
            rows.append({"backend": name, **time_calls(f, args, repeat=repeat, warmup=warmup,
                                                       budget_s=budget_s, progress=bar)})
    speedup = rows[1]["median"] / rows[0]["median"] if len(rows) > 1 else None
    return {"rows": rows, "speedup": speedup}


def format_bench(result: dict) -> str:
    head = ("backend", "median ms", "q1..q3 ms", "min..max ms", "stdev ms", "runs")
    cells = [head]
    for r in result["rows"]:
        cells.append((r["backend"], f"{r['median'] * 1e3:.3f}",
                      f"{r['q1'] * 1e3:.3f}..{r['q3'] * 1e3:.3f}",
                      f"{r['min'] * 1e3:.3f}..{r['max'] * 1e3:.3f}",
                      f"{r['stdev'] * 1e3:.3f}", str(r["runs"])))
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if result.get("compile_s") is not None:
        lines.append(f"compile: {result['compile_s'] * 1e3:.1f} ms (passes and backend)")
    if result.get("speedup") is not None:
        lines.append(f"{cells[1][0]} is {result['speedup']:.2f}x as fast as {cells[2][0]} "
                     "(median against median)")
    return "\n".join(lines)
