"""`python -m benchmarks.int8_gemm [--sizes 256,512,1024] [--threads 1] [--models]`: the int8 GEMM
(`qlinear`, u8 x s8 -> s32 on AVX512-VNNI `vpdpbusd`, requantized to u8) against the float32
GEMM (`linear`) of the same M = N = K, in GOP/s (2*M*N*K operations per call) and as a
ratio. Also the int8 kernel with VNNI masked off (target_features="avx2": the portable
four-byte dot product), to show what the instruction buys. `--models`: an MLP and the
digits CNN, float32 against `compiler.quantize`'s int8 graph, latency at batch 1 and 64.

Peak on a VNNI core is 4x the f32 FMA rate (64 u8*s8 products per 512-bit instruction
against 16 f32 FMAs); the ratio column is to be read against that 4x. The timings are
medians of interleaved calls; on a machine shared with other work they move by 10-30%
between runs, so compare columns of one run only.
"""

from __future__ import annotations

import argparse

import numpy as np

import ir
from backends import llvm

from .timing import median_seconds, table


def f32_graph(m: int, n: int, k: int, rng) -> ir.Graph:
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((m, k)))
    w = g.add_weight("w", rng.standard_normal((n, k)).astype(np.float32))
    g.outputs = [g.call("linear", x, w)]
    return g


def int8_graph(m: int, n: int, k: int, rng) -> ir.Graph:
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((m, k), "u8"))
    w = g.add_weight("w", rng.integers(-128, 128, (n, k)).astype(np.int8))
    b = g.add_weight("b", rng.integers(-1000, 1000, n).astype(np.int32))
    g.outputs = [g.call("qlinear", x, w, b, x_scale=0.02, x_zero_point=128,
                        w_scale=tuple(rng.uniform(1e-3, 2e-3, n).tolist()), y_scale=0.5,
                        y_zero_point=128, dtype="u8")]
    return g


def bench(size: int, threads: int, rng) -> dict:
    m = n = k = size
    ops = 2.0 * m * n * k
    xf = rng.standard_normal((m, k)).astype(np.float32)
    xq = rng.integers(0, 256, (m, k)).astype(np.uint8)
    row = {"size": size}
    runs = {"f32": (f32_graph(m, n, k, rng), xf, None),
            "int8": (int8_graph(m, n, k, rng), xq, None),
            "int8_novnni": (int8_graph(m, n, k, rng), xq, "avx2")}
    for key, (g, x, features) in runs.items():
        fn = llvm.compile_graph(g, num_threads=threads, target_features=features)
        row[key] = ops / median_seconds(fn, x, repeats=20, budget_s=2.0)["median"] / 1e9
    row["ratio"] = row["int8"] / row["f32"]
    return row


def models():
    """(name, model, input shape): an MLP and the digits example's CNN (random weights:
    speed only; accuracy is tests/passes/test_quantize.py's)."""
    from compiler import nn
    from examples.train_digits import DigitsCNN

    nn.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                        nn.Linear(1024, 10))
    return [("mlp-784-1024-1024-10", mlp.eval(), (784,)),
            ("digits-cnn", DigitsCNN().eval(), (1, 8, 8))]


def bench_models(threads: int, batches=(1, 64)) -> list[dict]:
    """Latency of each model compiled float32 and quantized with compiler.quantize."""
    import compiler

    rows = []
    for name, model, shape in models():
        for batch in batches:
            rng = np.random.default_rng(0)
            cal = [rng.uniform(0, 1, (batch, *shape)).astype(np.float32) for _ in range(4)]
            f32 = compiler.compile(model, cal[0], num_threads=threads)
            q = compiler.quantize(model, cal)
            int8 = compiler.compile(q, cal[0], num_threads=threads)
            tf, tq = (median_seconds(fn, cal[0], repeats=30)["median"] for fn in (f32, int8))
            rows.append({"model": name, "batch": batch, "f32": tf * 1e3, "int8": tq * 1e3,
                         "speedup": tf / tq, "sqnr": q.quantization_report.sqnr_db})
    return rows


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="128,256,512,1024")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", action="store_true", help="also whole models, f32 vs int8")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = [bench(int(s), args.threads, rng) for s in args.sizes.split(",")]
    print(f"{llvm.host_target().describe()}, {args.threads} thread(s); M = N = K = size")
    print(table(rows, [("size", "size", "d"), ("f32", "f32 GFLOP/s", ".1f"),
                       ("int8", "int8 GOP/s", ".1f"), ("int8_novnni", "int8 no-VNNI GOP/s",
                                                         ".1f"),
                       ("ratio", "int8/f32", ".2f")]))
    if args.models:
        model_rows = bench_models(args.threads)
        print(table(model_rows, [("model", "model", "s"), ("batch", "batch", "d"),
                                 ("f32", "f32 ms", ".3f"), ("int8", "int8 ms", ".3f"),
                                 ("speedup", "speedup", ".2f"), ("sqnr", "SQNR dB", ".1f")]))
        rows += model_rows
    return rows


if __name__ == "__main__":
    main()
