"""`python -m benchmarks.torch_compile [--models a,b] [--threads 1,2] [--quick]`:
`torch.compile(backend="lamina")` beside torch eager and `torch.compile(backend="inductor")`.

The models, weights and inputs are those of the third-party suite (benchmarks/third_party.py:
torchvision's image models and the BERT/GPT-2/LSTM/GRU of benchmarks/torch_models.py), at
batch 1. Per thread count (torch.set_num_threads; Lamina's `options={"num_threads": n,
"opt_level": 3}`), each model runs eagerly, then through each backend compiled afresh
(`torch._dynamo.reset()` between them): compile time is the first call (dynamo's capture, the
backend's compile and one run), then the latency median of later calls, all under
`torch.inference_mode()`. "direct" is the same model through `compiler.compile(model, x)`
with the same options: Lamina's own latency with no dynamo in between, so the difference to
"lamina" is what the backend's call path costs.

Inductor's on-disk caches point at a fresh directory per thread count (its code bakes the
thread count in), so its compile time is cold, as Lamina's is (each model is measured in a
fresh worker process). Dynamo does not capture nn.LSTM/nn.GRU by default (then every backend
runs them eagerly); `torch._dynamo.config.allow_rnn` is set so that both backends get them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .third_party import (
    NAMES,
    SEED,
    build_torch,
    machine_info,
    make_input,
    run_worker,
    short_error,
    summary,
    torch_runner,
)
from .timing import median_seconds, table

BACKENDS = ("inductor", "lamina")


def lamina_options(threads: int) -> dict:
    return {"num_threads": threads, "opt_level": 3}  # as the third-party suite compiles


def compiled(torch, model, backend: str, threads: int):
    """torch.compile(model) for `backend`, from a clean dynamo state."""
    torch._dynamo.reset()
    if backend == "inductor":
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
        return torch.compile(model, backend="inductor")
    return torch.compile(model, backend="lamina", options=lamina_options(threads))


def first_call(torch, run, x) -> tuple[np.ndarray, float, dict]:
    """(output, seconds, notes) of the call that captures and compiles."""
    from torch._dynamo.utils import counters

    counters.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        y = run(x)
        seconds = time.perf_counter() - start
    notes = {"graphs": counters["stats"]["unique_graphs"],
             "breaks": sum(counters["graph_break"].values())}
    fallbacks = [str(w.message) for w in caught if "backend='lamina'" in str(w.message)]
    if fallbacks:
        notes["fallback"] = " | ".join(fallbacks)[:300]
    return y, seconds, notes


def rel_err(y, ref) -> float:
    if y.shape != ref.shape:
        return float("inf")
    return float(np.abs(y - ref).max()) / (float(np.abs(ref).max()) or 1.0)


def bench_model(name: str, threads, timing: dict) -> list[dict]:
    """One row: eager, inductor, lamina and direct latencies per thread count, compile
    times, graph counts and errors against eager. Inductor compiles once, with its thread
    count read at run time (cpp.dynamic_threads); Lamina's is a compile option, so it
    compiles per thread count."""
    import torch

    torch._dynamo.config.allow_rnn = True
    torch._inductor.config.cpp.dynamic_threads = True
    model, kind = build_torch(name)
    x = make_input(kind, 1, seed=SEED + 1)
    row = {"model": name, "batch": 1}
    refs = {}
    for n in threads:
        eager = torch_runner(model, n)
        refs[n] = eager(x)
        row[f"eager_{n}t"] = median_seconds(eager, x, **timing)["median"] * 1e3
    for backend in BACKENDS:
        try:
            model_c, compiling = None, False
            for n in threads:
                if model_c is None or backend == "lamina":
                    model_c = compiled(torch, model, backend, n)
                    compiling = True
                run = torch_runner(model_c, n)
                if compiling:
                    y, seconds, notes = first_call(torch, run, x)
                    row[f"compile_{backend}_{n}t_s"] = seconds
                    row.update({f"{k}_{backend}": v for k, v in notes.items()})
                    compiling = False
                else:
                    y = run(x)
                row[f"err_{backend}"] = max(row.get(f"err_{backend}", 0.0), rel_err(y, refs[n]))
                row[f"{backend}_{n}t"] = median_seconds(run, x, **timing)["median"] * 1e3
                time.sleep(0.2)  # let torch's OpenMP threads stop spinning
        except Exception as e:  # a failure is a finding: record it, go on
            row[f"error_{backend}"] = short_error(e)
            print(f"  {name}: {backend} failed: {row[f'error_{backend}']}", file=sys.stderr)
    torch._dynamo.reset()
    for n in threads:
        ms = direct_ms(torch, model, x, n, timing)
        if ms is not None:
            row[f"direct_{n}t"] = ms
        for other in ("eager", "inductor"):
            if f"lamina_{n}t" in row and f"{other}_{n}t" in row:
                row[f"vs_{other}_{n}t"] = row[f"lamina_{n}t"] / row[f"{other}_{n}t"]
        print(f"  {name} {n}t: " + ", ".join(
            f"{k} {row[f'{k}_{n}t']:.2f} ms" for k in ("eager", *BACKENDS, "direct")
            if f"{k}_{n}t" in row), file=sys.stderr)
    return [row]


def direct_ms(torch, model, x, threads: int, timing: dict) -> float | None:
    """Lamina's latency without dynamo: compiler.compile(model, x), the same options."""
    import compiler

    try:
        fn = compiler.compile(model, torch.as_tensor(x), **lamina_options(threads))
    except Exception as e:
        print(f"  direct compile failed: {short_error(e)}", file=sys.stderr)
        return None
    return median_seconds(fn, x, **timing)["median"] * 1e3


def columns(threads) -> list[tuple[str, str, str]]:
    cols = [("model", "model", "s")]
    for n in threads:
        cols += [(f"eager_{n}t", f"eager {n}t", ".2f"), (f"inductor_{n}t", f"inductor {n}t",
                                                          ".2f"),
                 (f"lamina_{n}t", f"lamina {n}t", ".2f"), (f"direct_{n}t", f"direct {n}t",
                                                           ".2f"),
                 (f"vs_eager_{n}t", f"l/eager {n}t", ".2f"),
                 (f"vs_inductor_{n}t", f"l/ind {n}t", ".2f")]
    first = threads[0]
    return [*cols, (f"compile_inductor_{first}t_s", "ind compile s", ".1f"),
            (f"compile_lamina_{first}t_s", "lam compile s", ".1f"),
            ("graphs_lamina", "graphs", "d"), ("err_inductor", "ind err", ".1e"),
            ("err_lamina", "lam err", ".1e"), ("failed", "error", "s")]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.torch_compile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(NAMES), help="comma-separated, of: "
                   + ", ".join(NAMES))
    p.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    p.add_argument("--quick", action="store_true", help="short time boxes")
    p.add_argument("--json", default=str(Path(__file__).with_name("torch_compile.json")))
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: measure one model
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--batch", default="1", help=argparse.SUPPRESS)  # run_worker passes it
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    if args.worker:
        timing = ({"warmup": 1, "repeats": 5, "budget_s": 0.5} if args.quick
                  else {"warmup": 2, "repeats": 15, "budget_s": 2.0})
        Path(args.out).write_text(json.dumps(bench_model(args.worker, threads, timing)))
        return
    names = args.models.split(",")
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    info = machine_info()
    rows = [r for name in names for r in run_worker(name, args, "benchmarks.torch_compile")]
    info["load_after"] = os.getloadavg()[0]
    for r in rows:
        errors = [f"{k}: {r[k]}" for k in ("error", "error_inductor", "error_lamina") if k in r]
        if errors:
            r["failed"] = errors[0][:48] + ("..." if len(errors[0]) > 48 else "")
    text, stats = summary(rows, threads, others=("eager", "inductor"))
    print("\ntorch.compile backends at batch 1; latency medians in ms (direct: "
          "compiler.compile, no dynamo); compile: the first call, cold")
    print(table(rows, columns(threads)))
    print(text)
    for r in rows:
        for k in ("error", "error_inductor", "error_lamina", "fallback_lamina"):
            if k in r:
                print(f"  {r['model']} {k}: {r[k]}")
    Path(args.json).write_text(json.dumps({**info, "rows": rows, "summary": stats}, indent=1))


if __name__ == "__main__":
    main()
