"""Medians over repeated calls after warm-up: the machine is noisy, so never a single run."""

from __future__ import annotations

import math
import time


def median_seconds(fn, *args, warmup: int = 2, repeats: int = 10, budget_s: float = 3.0) -> dict:
    """Median and spread of fn(*args); stops early once `budget_s` is spent (min 3 runs)."""
    for _ in range(warmup):
        fn(*args)
    times = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    times.sort()
    return {"median": times[len(times) // 2], "min": times[0], "max": times[-1],
            "runs": len(times)}


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A plain text table: columns are (key, header, format)."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append([("" if r.get(k) is None else format(r[k], f)) for k, _, f in columns])
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def geomean(values) -> float:
    """Geometric mean: the average of ratios (a 2x and a 0.5x cancel out)."""
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def ort_runner(path, threads: int):
    """onnxruntime on the ONNX file at `path` with `threads` intra-op threads, as a function
    of the single input array returning the first output."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda a: sess.run(None, {name: a})[0]
