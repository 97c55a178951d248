"""`python -m benchmarks.bf16_gemm [--shapes 256x1024x1024,16x4096x4096,1x4096x4096]
[--convs 64x64x56x3,256x256x14x3,128x512x28x1] [--threads 1]`: the bfloat16 GEMM
(`bf16_linear`: f32 activations converted to bf16, bf16 weights, f32 sums with AVX512-BF16
`vdpbf16ps`) against the float32 GEMM (`linear`) of the same M x N x K, in GFLOP/s
(2*M*N*K per call) and as a ratio; also the bf16 kernel with the instruction masked off
(target_features="-avx512bf16": the portable widen, multiply and add
path, which gives the same bits). `--convs` (C x O x size x kernel, batch 1, "same"
padding): `bf16_conv2d` (NHWC words, im2col, the same GEMM, a transpose) against the
float32 `conv2d`. `--models`: an MLP and a transformer encoder layer, float32 against
`compiler.quantize(..., dtype="bfloat16")`, latency at batch 1 and 64.

Peak on a BF16 core is 2x the f32 FMA rate (32 bf16 products per 512-bit instruction
against 16 f32 FMAs); at M = 1 or 16 both kernels stream their weights from memory and
the bf16 one reads half the bytes. Timings are medians of interleaved calls; on a shared
machine they move by 10-30% between runs, so compare columns of one run only.
"""

from __future__ import annotations

import argparse

import numpy as np

import ir
from backends import llvm
from ir.ops.bf16 import pack_pairs

from .timing import median_seconds, table

SHAPES = "256x1024x1024,16x4096x4096,1x4096x4096"
CONVS = "64x64x56x3,256x256x14x3,128x512x28x1"


def graphs(m: int, n: int, k: int, rng) -> tuple[ir.Graph, ir.Graph]:
    """linear and bf16_linear of one random [N, K] weight and bias, input [M, K]."""
    w = rng.standard_normal((n, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    out = []
    for op, data in (("linear", w), ("bf16_linear", pack_pairs(w))):
        g = ir.Graph()
        x = g.add_input("x", ir.TensorType((m, k)))
        g.outputs = [g.call(op, x, g.add_weight("w", data), g.add_weight("b", bias))]
        out.append(g)
    return out[0], out[1]


def bench(m: int, n: int, k: int, threads: int, rng, budget_s: float = 2.0) -> dict:
    flops = 2.0 * m * n * k
    x = rng.standard_normal((m, k)).astype(np.float32)
    f32, bf16 = graphs(m, n, k, rng)
    row = {"shape": f"{m}x{n}x{k}"}
    for key, g, features in (("f32", f32, None), ("bf16", bf16, None),
                             ("bf16_portable", bf16, "-avx512bf16")):
        fn = llvm.compile_graph(g, num_threads=threads, target_features=features)
        row[key] = flops / median_seconds(fn, x, repeats=20, budget_s=budget_s)["median"] / 1e9
    row["ratio"] = row["bf16"] / row["f32"]
    return row


def conv_graphs(c: int, o: int, size: int, k: int, rng) -> tuple[ir.Graph, ir.Graph]:
    """conv2d and bf16_conv2d of one random [O, C, k, k] weight and bias, "same" padding."""
    w = rng.standard_normal((o, c, k, k)).astype(np.float32)
    bias = rng.standard_normal(o).astype(np.float32)
    out = []
    for op, data, attrs in (("conv2d", w, {}),
                            ("bf16_conv2d", pack_pairs(w.reshape(o, -1)), {"kernel": (k, k)})):
        g = ir.Graph()
        x = g.add_input("x", ir.TensorType((1, c, size, size)))
        g.outputs = [g.call(op, x, g.add_weight("w", data), g.add_weight("b", bias),
                            pad=(k // 2,) * 4, **attrs)]
        out.append(g)
    return out[0], out[1]


def bench_conv(c: int, o: int, size: int, k: int, threads: int, rng) -> dict:
    flops = 2.0 * o * c * k * k * size * size
    x = rng.standard_normal((1, c, size, size)).astype(np.float32)
    row = {"shape": f"conv {c}->{o} {size}x{size} k{k}"}
    for key, g in zip(("f32", "bf16"), conv_graphs(c, o, size, k, rng)):
        fn = llvm.compile_graph(g, num_threads=threads)
        row[key] = flops / median_seconds(fn, x, repeats=20, budget_s=2.0)["median"] / 1e9
    row["ratio"] = row["bf16"] / row["f32"]
    return row


def bench_models(threads: int, batches=(1, 64)) -> list[dict]:
    """Latency of an MLP and a transformer encoder layer compiled float32 and with
    compiler.quantize(..., dtype="bfloat16") (random weights: speed only)."""
    import compiler
    from compiler import nn

    nn.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                        nn.Linear(1024, 10)).eval()
    enc = nn.TransformerEncoderLayer(512, 8, 2048, batch_first=True).eval()
    rows = []
    for name, model, shape in (("mlp-784-1024-1024-10", mlp, (784,)),
                               ("encoder-512-h8-ff2048 (seq 32)", enc, (32, 512))):
        for batch in batches:
            x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
            q = compiler.quantize(model, [x], dtype="bfloat16")
            f32, bf16 = (compiler.compile(m, x, num_threads=threads) for m in (model, q))
            tf, tb = (median_seconds(fn, x, repeats=20)["median"] for fn in (f32, bf16))
            rows.append({"model": name, "batch": batch, "f32": tf * 1e3, "bf16": tb * 1e3,
                         "speedup": tf / tb, "sqnr": q.quantization_report.sqnr_db})
    return rows


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default=SHAPES, help="MxNxK,... (M rows, N outputs, K inputs)")
    ap.add_argument("--convs", default=CONVS, help="CxOxSIZExK,...; '' for none")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--models", action="store_true", help="also whole models, f32 vs bf16")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = [bench(*map(int, s.split("x")), args.threads, rng) for s in args.shapes.split(",")]
    rows += [bench_conv(*map(int, s.split("x")), args.threads, rng)
             for s in filter(None, args.convs.split(","))]
    print(f"{llvm.host_target().describe()}, {args.threads} thread(s)")
    print(table(rows, [("shape", "M x N x K", "s"), ("f32", "f32 GFLOP/s", ".1f"),
                       ("bf16", "bf16 GFLOP/s", ".1f"),
                       ("bf16_portable", "bf16 portable GFLOP/s", ".1f"),
                       ("ratio", "bf16/f32", ".2f")]))
    if args.models:
        model_rows = bench_models(args.threads)
        print(table(model_rows, [("model", "model", "s"), ("batch", "batch", "d"),
                                 ("f32", "f32 ms", ".3f"), ("bf16", "bf16 ms", ".3f"),
                                 ("speedup", "speedup", ".2f"), ("sqnr", "SQNR dB", ".1f")]))
        rows += model_rows
    return rows


if __name__ == "__main__":
    main()
