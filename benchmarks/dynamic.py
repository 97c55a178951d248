"""`python -m benchmarks.dynamic [--models resnet18,mobilenetv2,...]`: a dynamic-batch compile
(`dynamic={"x": {0: "N"}}`) against static compiles of the same model, at batch 1 and 16.

A dynamic callable runs, for each size, the build a static compile of that size makes; what
it adds per call is binding the symbols from the inputs' shapes and a dictionary lookup. The
table shows latency medians of both and their ratio, and the one-off cost of the first call
at a new size (a compile).
"""

from __future__ import annotations

import argparse
import time

import compiler

from .models import MODELS, build
from .timing import geomean, table


def interleaved(a, b, x, calls: int = 30, budget_s: float = 4.0) -> tuple[float, float]:
    """Medians of a(x) and b(x) timed in alternation, so that the machine's noise falls on
    both alike."""
    a(x), b(x)
    times: tuple[list, list] = ([], [])
    start = time.perf_counter()
    while len(times[0]) < calls and (len(times[0]) < 5 or time.perf_counter() - start < budget_s):
        for fn, out in zip((a, b), times):
            t = time.perf_counter()
            fn(x)
            out.append(time.perf_counter() - t)
    return tuple(sorted(t)[len(t) // 2] for t in times)


def bench(name: str, batches=(1, 16)) -> list[dict]:
    model, _ = build(name, 1)
    first = build(name, 2)[1]
    dynamic = compiler.compile(model, first, dynamic={0: {0: "N"}})
    rows = []
    for batch in batches:
        x = build(name, batch)[1]
        static = compiler.compile(model, x)
        t = time.perf_counter()
        dynamic(x)  # the first call at this size compiles its build
        first_call = time.perf_counter() - t
        s, d = interleaved(static, dynamic, x)
        rows.append({"model": name, "batch": batch, "static_ms": s * 1e3,
                     "dynamic_ms": d * 1e3, "ratio": d / s, "first_s": first_call})
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet18,mobilenetv2,transformer,mlp")
    args = p.parse_args(argv)
    rows = [r for name in args.models.split(",") if name in MODELS for r in bench(name)]
    print(table(rows, [("model", "model", "s"), ("batch", "batch", "d"),
                       ("static_ms", "static ms", ".3f"), ("dynamic_ms", "dynamic ms", ".3f"),
                       ("ratio", "dynamic/static", ".3f"),
                       ("first_s", "first call at a new size, s", ".2f")]))
    print(f"\ngeometric mean dynamic/static: {geomean(r['ratio'] for r in rows):.3f}")


if __name__ == "__main__":
    main()
