"""`python -m benchmarks [--quick] [--only models,gemm,conv]`: the performance tables.

Every comparison is measured side by side in this one process run: Lamina's LLVM backend,
Lamina's reference interpreter, onnxruntime on the ONNX file Lamina exports for the same
weights, and numpy's OpenBLAS (with its AVX-512 kernel: the environment's OPENBLAS_CORETYPE
forces AVX2, so that measurement runs in a subprocess with it unset).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import compiler

from .models import build, torch_twin
from .timing import median_seconds, ort_runner, table

THREADS = 2


def ort_session(model_or_graph, x, threads=THREADS):
    with tempfile.TemporaryDirectory() as d:  # the session keeps the model in memory
        path = Path(d) / "m.onnx"
        compiler.save_onnx(model_or_graph, path, example_inputs=(x,))
        return ort_runner(path, threads)


def torch_eager(name, model, x):
    """torch eager on the same architecture and weights (None where torch is missing);
    its output must equal Lamina's reference."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(THREADS)
    twin = torch_twin(name, model)

    def run(a):
        with torch.inference_mode():
            return twin(torch.as_tensor(a)).numpy()

    return run


def bench_models(names, batches, quick):
    rows = []
    for name in names:
        for batch in batches:
            model, x = build(name, batch)
            t = time.perf_counter()
            fn = compiler.compile(model, x, opt_level=3, backend="llvm", num_threads=THREADS)
            compile_s = time.perf_counter() - t
            y = fn(x)
            repeats = 5 if quick else 20
            lam = median_seconds(fn, x, repeats=repeats)["median"]
            # onnxruntime's session only exists while it is timed: its idle worker threads
            # spin and would take a core from whichever runtime is timed beside them
            ort = ort_session(model, x)
            y_ort = ort(x)
            rt = median_seconds(ort, x, repeats=repeats)["median"]
            del ort
            eager = torch_eager(name, model, x)
            te = median_seconds(eager, x, repeats=repeats)["median"] if eager else None
            y_eager = eager(x) if eager else None
            # the reference interpreter runs last, for the same reason: after each numpy
            # matmul OpenBLAS's threads spin for a while (a 0.63 ms model measured 0.86 ms
            # right after it)
            ref = compiler.compile(model, x, opt_level=0, backend="reference")
            y_ref = ref(x)
            scale = np.abs(y_ref).max()
            rf = median_seconds(ref, x, repeats=3 if quick else 5, warmup=1)["median"]
            err_torch = float(np.abs(y_eager - y_ref).max() / scale) if eager else None
            rows.append({"model": name, "batch": batch, "lamina_ms": lam * 1e3,
                         "ort_ms": rt * 1e3, "ref_ms": rf * 1e3, "vs_ort": lam / rt,
                         "torch_ms": te and te * 1e3, "vs_torch": te and lam / te,
                         "vs_ref": lam / rf, "compile_s": compile_s,
                         "err_ref": float(np.abs(y - y_ref).max() / scale),
                         "err_ort": float(np.abs(y - y_ort).max() / scale),
                         "err_torch": err_torch})
            print(f"  {name} b{batch}: {lam * 1e3:.2f} ms (ort {rt * 1e3:.2f})", file=sys.stderr)
    return rows


def _graph_of(op_builder):
    import ir

    g = ir.Graph("bench")
    out = op_builder(g)
    g.outputs = [out]
    return g


def bench_gemm(quick):
    import ir

    shapes = [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (1, 512, 512),
              (1, 4096, 4096), (16, 1024, 1024), (16, 4096, 4096)]
    if quick:
        shapes = shapes[:2] + shapes[3:5]
    rng = np.random.default_rng(0)
    rows = []
    for m, k, n in shapes:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)

        def build_graph(g, a=a, b=b):
            x = g.add_input("a", ir.TensorType.of(a))
            return g.call("matmul", x, g.add_weight("b", b))

        flops = 2 * m * k * n
        row = {"shape": f"{m}x{k}x{n}"}
        for threads in (1, 2):
            fn = compiler.compile(_graph_of(build_graph), a, opt_level=0, backend="llvm",
                                  num_threads=threads)
            row[f"lamina_{threads}t"] = flops / median_seconds(fn, a)["median"] / 1e9
        row.update(_openblas_gflops(m, k, n))
        row["vs_blas"] = row["lamina_1t"] / row["blas_1t"]
        row["scaling"] = row["lamina_2t"] / row["lamina_1t"]
        rows.append(row)
    return rows


_BLAS_SNIPPET = """
import json, sys, time
import numpy as np
m, k, n, threads = map(int, sys.argv[1:5])
from threadpoolctl import threadpool_info, threadpool_limits
a = np.random.rand(m, k).astype(np.float32); b = np.random.rand(k, n).astype(np.float32)
with threadpool_limits(threads):
    for _ in range(3): a @ b
    ts = []
    for _ in range(15):
        t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
info = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
print(json.dumps({"gflops": 2*m*k*n / sorted(ts)[len(ts)//2] / 1e9,
                  "kernel": info[0].get("architecture") if info else "unknown"}))
"""


def _openblas_gflops(m, k, n) -> dict:
    """numpy's OpenBLAS with OPENBLAS_CORETYPE/L2_SIZE unset: its AVX-512 kernel."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    out = {}
    for threads in (1, 2):
        res = subprocess.run([sys.executable, "-c", _BLAS_SNIPPET, str(m), str(k), str(n),
                              str(threads)], env=env, capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(f"OpenBLAS measurement failed (needs threadpoolctl): "
                               f"{res.stderr[-300:]}")
        data = json.loads(res.stdout)
        out[f"blas_{threads}t"], out["blas_kernel"] = data["gflops"], data["kernel"]
    return out


CONVS = [  # name, (N, C, H, W), (O, C/groups, KH, KW), stride, pad, groups
    ("stem 7x7/2", (1, 3, 224, 224), (64, 3, 7, 7), 2, 3, 1),
    ("3x3/1 64", (1, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
    ("3x3/2 128", (1, 64, 56, 56), (128, 64, 3, 3), 2, 1, 1),
    ("3x3/1 256", (1, 256, 14, 14), (256, 256, 3, 3), 1, 1, 1),
    ("1x1/2 down", (1, 64, 56, 56), (128, 64, 1, 1), 2, 0, 1),
    ("dw 3x3 144", (1, 144, 24, 24), (144, 1, 3, 3), 1, 1, 144),
]


def bench_conv(quick):
    import ir

    rng = np.random.default_rng(0)
    rows = []
    for name, xs, ws, stride, pad, groups in CONVS[: 3 if quick else None]:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)

        def build_graph(g, x=x, w=w, stride=stride, pad=pad, groups=groups):
            v = g.add_input("x", ir.TensorType.of(x))
            return g.call("conv2d", v, g.add_weight("w", w), stride=(stride, stride),
                          pad=(pad,) * 4, groups=groups)

        graph = _graph_of(build_graph)
        out = graph.outputs[0].shape
        flops = 2 * np.prod(out) * ws[1] * ws[2] * ws[3]
        row = {"conv": name}
        for threads in (1, 2):
            fn = compiler.compile(graph, x, opt_level=0, backend="llvm", num_threads=threads)
            row[f"lamina_{threads}t"] = flops / median_seconds(fn, x)["median"] / 1e9
            ort = ort_session(graph, x, threads)
            row[f"ort_{threads}t"] = flops / median_seconds(ort, x)["median"] / 1e9
            del ort  # its spinning threads must not overlap the next measurement
        row["vs_ort"] = row["lamina_1t"] / row["ort_1t"]
        row["of_peak"] = row["lamina_1t"] / 240.0
        rows.append(row)
    return rows


_COMPILE_SNIPPET = """
import sys, time
sys.path.insert(0, {root!r})
from benchmarks.models import build
import compiler
model, x = build("resnet18", 1)
t = time.perf_counter()
compiler.compile(model, x, opt_level=3, backend="llvm", num_threads=2, cache_dir={cache!r})
print(time.perf_counter() - t)
"""


def bench_overheads() -> dict:
    """The fixed cost of one call (a one-element model) and ResNet-18's compile time, cold
    and with its kernels in the disk cache (each in a fresh process)."""
    import ir

    g = ir.Graph("tiny")
    g.outputs = [g.call("relu", g.add_input("x", ir.TensorType((1,))))]
    x = np.ones(1, np.float32)
    fn = compiler.compile(g, x, opt_level=0, backend="llvm", num_threads=1)
    calls = 2000

    def many(a):
        for _ in range(calls):
            fn(a)

    per_call = median_seconds(many, x, repeats=15)["median"] / calls
    out = {"call_us": per_call * 1e6}
    root = str(Path(__file__).resolve().parent.parent)
    with tempfile.TemporaryDirectory() as cache:
        for label in ("compile_cold_s", "compile_cached_s"):
            res = subprocess.run([sys.executable, "-c", _COMPILE_SNIPPET.format(
                root=root, cache=cache)], capture_output=True, text=True, check=True)
            out[label] = float(res.stdout.split()[-1])
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict:
    import importlib.metadata as md

    import llvmlite.binding as llvm

    out = {"python": platform.python_version()}
    for pkg in ("numpy", "llvmlite", "onnxruntime", "torch"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "absent"
    out["LLVM"] = ".".join(map(str, llvm.llvm_version_info))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer shapes and repeats")
    p.add_argument("--only", default="overhead,models,gemm,conv")
    p.add_argument("--models", default="resnet18,mobilenetv2,transformer,lstm,mlp,lenet")
    p.add_argument("--json", default=str(Path(__file__).with_name("results.json")))
    args = p.parse_args(argv)
    parts = args.only.split(",")
    results = {"machine": _cpu_name(), "threads": THREADS, "cpus": os.cpu_count(),
               "versions": _versions()}
    print(f"machine: {results['machine']}, {results['cpus']} cores; whole models on "
          f"{THREADS} threads")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
    if "overhead" in parts:
        results["overhead"] = o = bench_overheads()
        print(f"\nfixed cost per call (one-element model, 1 thread): {o['call_us']:.2f} us")
        print(f"ResNet-18 compile (O3, llvm, fresh process): {o['compile_cold_s']:.2f} s cold, "
              f"{o['compile_cached_s']:.2f} s with its kernels in the disk cache")
    if "gemm" in parts:
        results["gemm"] = rows = bench_gemm(args.quick)
        print("\nGEMM float32, GFLOP/s (blas = numpy OpenBLAS, AVX-512 kernel "
              f"'{rows[0]['blas_kernel']}')")
        print(table(rows, [("shape", "M x K x N", "s"), ("lamina_1t", "lamina 1t", ".1f"),
                           ("lamina_2t", "lamina 2t", ".1f"), ("blas_1t", "blas 1t", ".1f"),
                           ("blas_2t", "blas 2t", ".1f"), ("vs_blas", "lamina/blas 1t", ".2f"),
                           ("scaling", "2t/1t", ".2f")]))
    if "conv" in parts:
        results["conv"] = rows = bench_conv(args.quick)
        print("\nConv2d float32, GFLOP/s (peak ~240/core)")
        print(table(rows, [("conv", "layer", "s"), ("lamina_1t", "lamina 1t", ".1f"),
                           ("lamina_2t", "lamina 2t", ".1f"), ("ort_1t", "ort 1t", ".1f"),
                           ("ort_2t", "ort 2t", ".1f"), ("vs_ort", "lamina/ort", ".2f"),
                           ("of_peak", "of peak", ".0%")]))
    if "models" in parts:
        batches = (1,) if args.quick else (1, 16)
        results["models"] = rows = bench_models(args.models.split(","), batches, args.quick)
        print(f"\nWhole models, {THREADS} threads, latency medians (ms)")
        print(table(rows, [("model", "model", "s"), ("batch", "batch", "d"),
                           ("lamina_ms", "lamina", ".2f"), ("ort_ms", "onnxruntime", ".2f"),
                           ("ref_ms", "reference", ".1f"), ("torch_ms", "torch eager", ".2f"),
                           ("vs_ort", "lamina/ort", ".2f"), ("vs_torch", "lamina/torch", ".2f"),
                           ("vs_ref", "lamina/ref", ".3f"), ("compile_s", "compile s", ".2f"),
                           ("err_ort", "max rel err", ".1e")]))
        ratios = [r["vs_ort"] for r in rows]
        print(f"geometric mean lamina/onnxruntime: {np.exp(np.mean(np.log(ratios))):.2f}")
    Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
