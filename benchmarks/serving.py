"""`python -m benchmarks.serving [--quick]`: throughput of one compiled model called from 1, 2
and 4 Python threads at once.

Each call of a compiled model runs in an arena of its own (artifact.NativeCall's pool, at
most `max_concurrent_calls` arenas, by default the CPUs this process may use) and ctypes
releases the GIL during the native call, so concurrent callers really run at once.
"serialised" is the same model behind one lock, callers queueing for it (how every call
ran before the pool: one arena per model). Throughput is inferences per second over a fixed
number of calls shared among the callers, the median of a few repeats, the two ways and the
caller counts interleaved so that a noisy neighbour hits them alike; every caller's last
result is checked bitwise against a lone call's. CPU/wall is the CPU time of this process
(callers and pool workers, spinning included) per second of the pooled rounds: how many
cores the calls kept busy.
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time

import compiler
from backends.artifact import available_cpus

from .models import build
from .timing import table

CALLERS = (1, 2, 4)
MODELS = {"lenet": 1, "resnet18": 1}  # benchmark model -> batch


def _round(fn, x, callers: int, calls: int, want: bytes) -> tuple[float, float]:
    """(inferences per second, CPU seconds of this process per second) of `callers` threads
    sharing `calls` calls, started together."""
    start = threading.Barrier(callers + 1)
    wrong = []

    def caller(n):
        start.wait()
        for _ in range(n - 1):
            fn(x)
        if fn(x).tobytes() != want:
            wrong.append(1)

    threads = [threading.Thread(target=caller, args=(calls // callers,))
               for _ in range(callers)]
    for t in threads:
        t.start()
    start.wait()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if wrong:
        raise AssertionError(f"{len(wrong)} concurrent callers got a wrong result")
    return callers * (calls // callers) * x.shape[0] / seconds, cpu / seconds


def _calls_for(fn, x, seconds: float) -> int:
    """Calls that take about `seconds` on one caller: a multiple of every caller count."""
    fn(x)
    t = time.perf_counter()
    fn(x)
    one = max(time.perf_counter() - t, 1e-6)
    step = 4  # lcm(CALLERS)
    return max(step, round(seconds / one / step) * step)


def serialised(fn):
    """`fn` behind one lock: one call at a time, as with a single arena."""
    lock = threading.Lock()

    def call(x):
        with lock:
            return fn(x)

    return call


def bench(name: str, batch: int, threads: int | None, seconds: float, repeats: int) -> list:
    model, x = build(name, batch)
    options = {} if threads is None else {"num_threads": threads}
    fn = compiler.compile(model, x, **options)
    calls = _calls_for(fn, x, seconds)
    want = fn(x).tobytes()
    ways = {"pool": fn, "serial": serialised(fn)}
    rates = {(w, c): [] for w in ways for c in CALLERS}
    for _ in range(repeats):
        for c in CALLERS:
            for w, call in ways.items():
                rates[w, c].append(_round(call, x, c, calls, want))
    med = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}  # by throughput
    return [{"model": f"{name} b{batch}", "threads": fn.num_threads, "callers": c,
             "pool": med["pool", c][0], "scaling": med["pool", c][0] / med["pool", 1][0],
             "cores": med["pool", c][1], "serial": med["serial", c][0],
             "vs_serial": med["pool", c][0] / med["serial", c][0],
             "arenas": len(fn._arenas)} for c in CALLERS]


COLUMNS = [("model", "model", ""), ("threads", "num_threads", "d"),
           ("callers", "callers", "d"), ("pool", "inf/s", ".1f"),
           ("scaling", "vs 1 caller", ".2f"), ("cores", "CPU/wall", ".2f"),
           ("serial", "serialised inf/s", ".1f"),
           ("vs_serial", "pool/serialised", ".2f"), ("arenas", "arenas", "d")]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter rounds, fewer repeats")
    ap.add_argument("--models", default=",".join(MODELS),
                    help="comma-separated benchmark models (benchmarks/models.py)")
    args = ap.parse_args(argv)
    seconds, repeats = (0.25, 3) if args.quick else (0.6, 5)
    load = os.getloadavg()[0]  # other processes on the machine take cores from these runs
    rows = []
    for name in args.models.split(","):
        for threads in (1, None):  # a one-thread build, then the default
            rows += bench(name, MODELS.get(name, 1), threads, seconds, repeats)
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}; "
          f"load {load:.2f} before, {os.getloadavg()[0]:.2f} after; max_concurrent_calls "
          f"{available_cpus()} (default); median of {repeats} rounds")
    print(table(rows, COLUMNS))


if __name__ == "__main__":
    main()
