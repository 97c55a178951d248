"""`python -m benchmarks.int8_models [--models resnet50,bert] [--threads 1,2] [--batch 1,16]
[--quick] [--profile]`: post-training int8 on whole third-party models, Lamina against
onnxruntime, each quantizing the same float ONNX file on the same calibration data.

The models are those of `benchmarks/third_party.py` (torchvision's ResNet-50, the BERT-style
encoder of `benchmarks/torch_models.py`; seeded random weights), exported once by its cache.
Calibration: `CAL_BATCHES` batches of `CAL_SIZE` inputs of the suite's seeded input
distribution (standard normal images; uniform token ids). Lamina quantizes with
`compiler.quantize(path, batches, per_channel=True)` (u8 activations, i8 symmetric
per-channel weights); onnxruntime with `quantize_static(..., QuantFormat.QDQ,
per_channel=True)`, u8 activations and i8 weights as well (the VNNI form), into a QDQ file.

Per batch size and thread count, four runtimes are timed in one process, interleaved: rounds
of a short block of calls each, the latency being the median of the block medians (the
machine is shared: a load change then hits all four alike). Lamina float32 is
`compiler.compile(path, x, opt_level=3)`, Lamina int8 the quantized graph compiled the same
way; onnxruntime runs the float file and its QDQ file. Reported: int8/f32 latency for each
(target for Lamina <= 0.5), Lamina int8 over onnxruntime int8 (target <= 1.0), and, per
model, the SQNR in dB of each runtime's int8 outputs against its own float32 outputs and
the top-1 agreement (argmax of the last axis) on `AGREE` fresh inputs of the calibration
distribution. With random weights the logits are close to flat, so a tiny error can change
an argmax: low agreement with a good SQNR says that, not that quantization broke.

`--profile`: where the int8 time goes instead of the table: `compiler.profile` of Lamina's
quantized and float graphs (each node compiled and timed alone, batch = the first --batch,
1 thread), totals per operator and the slowest nodes, beside onnxruntime's own per-operator
profile of its two files.

Each model runs in a fresh worker process (`third_party.run_worker`), so a crash costs one
model. The JSON goes beside this file (int8_models.json).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .third_party import (
    SEED,
    build_torch,
    machine_info,
    make_input,
    onnx_file,
    run_worker,
    short_error,
)
from .timing import median_seconds, ort_runner, table

NAMES = ("resnet50", "bert")
CAL_BATCHES, CAL_SIZE = 4, 4  # calibration: the same inputs for both quantizers
AGREE = 256  # fresh inputs for SQNR and top-1 agreement (--quick: 64)
RUNTIMES = ("lamina_f32", "lamina_int8", "ort_f32", "ort_int8")


# ---- data and the two quantizers ----------------------------------------------------------
def calibration(kind: str) -> list[np.ndarray]:
    return [make_input(kind, CAL_SIZE, seed=SEED + 100 + i) for i in range(CAL_BATCHES)]


def ort_quantize(path: Path, batches, out: Path) -> Path:
    """onnxruntime's static QDQ quantization of the float file `path` into `out`."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": b} for b in batches])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(path), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return out


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    noise = float(np.sum((ref - got) ** 2))
    return math.inf if noise == 0 else 10 * math.log10(float(np.sum(ref * ref)) / noise)


def accuracy(runs: dict, kind: str, batch: int, count: int) -> dict:
    """SQNR and top-1 agreement of int8 against float32, per runtime, on `count` fresh
    inputs (in batches of `batch`, with the builds for that batch size)."""
    outs = collections.defaultdict(list)
    for i in range(math.ceil(count / batch)):
        x = make_input(kind, batch, seed=SEED + 1000 + i)
        for key, fn in runs.items():
            outs[key].append(np.asarray(fn(x)))
    y = {k: np.concatenate(v)[:count] for k, v in outs.items()}
    row = {"agree_inputs": count}
    for who in ("lamina", "ort"):
        f, q = y.get(f"{who}_f32"), y.get(f"{who}_int8")
        if f is None or q is None:
            continue
        row[f"sqnr_{who}"] = sqnr_db(f, q)
        row[f"top1_{who}"] = float(np.mean(f.argmax(-1) == q.argmax(-1)))
        # how flat the float logits are: the mean gap between the two largest, in units
        # of the int8 error's standard deviation (below ~1, argmax flips are expected)
        top2 = np.sort(f, axis=-1)[..., -2:]
        row[f"margin_{who}"] = float(np.mean(top2[..., 1] - top2[..., 0]) /
                                     (np.std(f - q) or 1.0))
    return row


# ---- timing -------------------------------------------------------------------------------
def interleaved(runs: dict, x, rounds: int, repeats: int) -> dict:
    """Median over `rounds` of each runner's median over a block of `repeats` calls, the
    runners taking turns block by block (warmed once first)."""
    blocks = collections.defaultdict(list)
    for fn in runs.values():
        fn(x)
    for _ in range(rounds):
        for key, fn in runs.items():
            blocks[key].append(median_seconds(fn, x, warmup=0, repeats=repeats,
                                              budget_s=0.0)["median"])
            time.sleep(0.02)  # onnxruntime's idle workers spin for a moment after a run
    return {k: float(np.median(v)) for k, v in blocks.items()}


def lamina_builds(path: Path, qgraphs: dict, batch: int, x, threads: int, row: dict) -> dict:
    import compiler

    runs = {}
    for key, model in (("lamina_f32", str(path)), ("lamina_int8", qgraphs.get(batch))):
        if model is None:
            continue
        try:
            start = time.perf_counter()
            runs[key] = compiler.compile(model, x, opt_level=3, backend="llvm",
                                         num_threads=threads)
            row[f"compile_{key}_s"] = time.perf_counter() - start
        except Exception as e:  # a failure is a finding: record it, go on
            row[f"error_{key}"] = short_error(e)
            print(f"  {key} b{batch}: {row[f'error_{key}']}", file=sys.stderr)
    return runs


def bench_model(name: str, batches, threads, timing: dict, agree: int) -> list[dict]:
    import compiler

    model, kind = build_torch(name)
    path = onnx_file(name, model, kind)
    del model
    cal = calibration(kind)
    rows, info = [], {"model": name}
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        qdq = ort_quantize(path, cal, Path(d) / f"{name}.qdq.onnx")
        info["ort_quantize_s"] = time.perf_counter() - start
        qgraphs = {}
        for b in batches:  # the graph is static: one per batch size, same calibration
            try:
                start = time.perf_counter()
                qgraphs[b] = compiler.quantize(str(path), cal, per_channel=True,
                                               example_inputs=(make_input(kind, b),),
                                               progress=False)
                info[f"lamina_quantize_b{b}_s"] = time.perf_counter() - start
            except Exception as e:
                info["error_lamina_quantize"] = short_error(e)
        if qgraphs:
            report = next(iter(qgraphs.values())).quantization_report
            info["lamina_quantized_layers"] = len(report.quantized)
            info["lamina_kept_float"] = [f"{n} ({op}): {why}" for n, op, why in report.kept_float]
            info["lamina_other_float"] = report.other_float
        print(f"{name}: quantized (onnxruntime {info['ort_quantize_s']:.0f} s, Lamina "
              f"{sum(v for k, v in info.items() if k.startswith('lamina_quantize')):.0f} s)",
              file=sys.stderr)
        for batch in batches:
            x = make_input(kind, batch, seed=SEED + batch)
            row = {"model": name, "batch": batch}
            for n in threads:
                runs = lamina_builds(path, qgraphs, batch, x, n, row)
                runs["ort_f32"], runs["ort_int8"] = ort_runner(path, n), ort_runner(qdq, n)
                for key, t in interleaved(runs, x, **timing).items():
                    row[f"{key}_{n}t"] = t * 1e3
                ratio(row, n)
                if batch == max(batches) and n == max(threads):
                    info.update(accuracy(runs, kind, batch, agree))
                del runs
            rows.append(row)
            print(f"  {name} b{batch}: " + ", ".join(
                f"{k} {row[f'{k}_{n}t']:.1f} ms" for n in threads for k in RUNTIMES
                if f"{k}_{n}t" in row), file=sys.stderr)
    return [{**r, **info, "model": name} for r in rows]


def ratio(row: dict, n: int) -> None:
    """The ratios the targets are stated in (time over time, per thread count)."""
    pairs = {"l8_lf": ("lamina_int8", "lamina_f32"), "o8_of": ("ort_int8", "ort_f32"),
             "l8_o8": ("lamina_int8", "ort_int8"), "lf_of": ("lamina_f32", "ort_f32")}
    for key, (a, b) in pairs.items():
        if f"{a}_{n}t" in row and f"{b}_{n}t" in row:
            row[f"{key}_{n}t"] = row[f"{a}_{n}t"] / row[f"{b}_{n}t"]


# ---- per-node profile ---------------------------------------------------------------------
def by_op(rows, key="op", seconds="seconds") -> list[dict]:
    total = sum(r[seconds] for r in rows) or 1.0
    agg = collections.defaultdict(lambda: {"count": 0, "ms": 0.0})
    for r in rows:
        agg[r[key]]["count"] += 1
        agg[r[key]]["ms"] += r[seconds] * 1e3
    out = [{"op": op, **v, "share": v["ms"] / 1e3 / total} for op, v in agg.items()]
    return sorted(out, key=lambda r: -r["ms"])


def ort_profile(path: Path, x, runs: int = 5) -> list[dict]:
    """onnxruntime's own per-node kernel times (1 thread), as (op, seconds) per node,
    medians over `runs` calls."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as d:
        opts.profile_file_prefix = str(Path(d) / "ort")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(runs + 1):
            sess.run(None, feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    times = collections.defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            times[(e["name"], e["args"]["op_name"])].append(e["dur"] * 1e-6)
    return [{"node": n, "op": op, "seconds": float(np.median(t[1:] or t))}
            for (n, op), t in times.items()]


def gemm_shape(node) -> tuple[int, int, int] | None:
    """(M, N, K) of the integer GEMM a qconv2d (groups 1) or qlinear node runs."""
    if node.op not in ("qconv2d", "qlinear"):
        return None
    out, w = node.outputs[0].type.shape, node.inputs[1].type.shape
    if node.op == "qconv2d" and node.attrs["groups"] == 1:
        return out[0] * out[2] * out[3], w[0], math.prod(w[1:])
    if node.op == "qlinear":
        return math.prod(out[:-1]), w[0], w[1]
    return None


def gemm_alone(graph, rows: list[dict], repeat: int) -> list[dict]:
    """Each int8 layer's time beside that of its GEMM alone (a qlinear of the same M, N, K
    on a u8 matrix, `int8_gemm.int8_graph`): the rest is what the layer adds around the GEMM
    (for qconv2d: the NCHW -> NHWC bytes, im2col, and the NHWC -> NCHW result)."""
    from backends import llvm

    from .int8_gemm import int8_graph

    rng, seconds = np.random.default_rng(SEED), {r["node"]: r["seconds"] for r in rows}
    out = []
    for node in graph.nodes:
        mnk = gemm_shape(node)
        if mnk is None or node.name not in seconds:
            continue
        m, n, k = mnk
        fn = llvm.compile_graph(int8_graph(m, n, k, rng), num_threads=1)
        t = median_seconds(fn, rng.integers(0, 256, (m, k)).astype(np.uint8),
                           repeats=repeat, budget_s=0.5)["median"]
        ops = 2.0 * m * n * k
        out.append({"node": node.name, "op": node.op, "M": m, "N": n, "K": k,
                    "seconds": seconds[node.name], "gemm_s": t,
                    "gops": ops / seconds[node.name] / 1e9, "gemm_gops": ops / t / 1e9})
    return out


def profile_model(name: str, batch: int, repeat: int) -> dict:
    import compiler
    import passes

    model, kind = build_torch(name)
    path = onnx_file(name, model, kind)
    del model
    cal, x = calibration(kind), make_input(kind, batch, seed=SEED + batch)
    q = compiler.quantize(str(path), cal, per_channel=True, example_inputs=(x,), progress=False)
    out = {"model": name, "batch": batch, "report": str(q.quantization_report)}
    for key, m in (("lamina_int8", q), ("lamina_f32", str(path))):
        rows = compiler.profile(m, x, opt_level=3, backend="llvm", repeat=repeat, cores=1,
                                num_threads=1, progress=False)
        out[key] = {"ops": by_op(rows), "nodes": [
            {k: r[k] for k in ("node", "op", "seconds")} for r in rows[:15]]}
        if key == "lamina_int8":
            out["gemm_alone"] = gemm_alone(passes.optimize(q, 3), rows, repeat)
    with tempfile.TemporaryDirectory() as d:
        qdq = ort_quantize(path, cal, Path(d) / f"{name}.qdq.onnx")
        for key, p in (("ort_int8", qdq), ("ort_f32", path)):
            out[key] = {"ops": by_op(ort_profile(p, x, repeat))}
    return out


def print_profile(p: dict) -> None:
    print(f"\n{p['model']} b{p['batch']}, 1 thread: per-operator totals (each node timed "
          "alone; medians)")
    print(p["report"])
    cols = [("op", "op", "s"), ("count", "n", "d"), ("ms", "ms", ".2f"), ("share", "share", ".2f")]
    for key in ("lamina_int8", "lamina_f32", "ort_int8", "ort_f32"):
        total = sum(r["ms"] for r in p[key]["ops"])
        print(f"\n{key}: {total:.1f} ms in all")
        print(table(p[key]["ops"], cols))
    print("\nlamina_int8: slowest nodes")
    print(table(p["lamina_int8"]["nodes"], [("node", "node", "s"), ("op", "op", "s"),
                                           ("seconds", "s", ".5f")]))
    layers = p["gemm_alone"]
    if layers:
        t, g = sum(r["seconds"] for r in layers), sum(r["gemm_s"] for r in layers)
        print(f"\nint8 layers against their GEMM alone: {t * 1e3:.1f} ms in the layers, "
              f"{g * 1e3:.1f} ms in GEMMs of their sizes ({1 - g / t:.0%} spent around them)")
        print(table(layers, [("node", "node", "s"), ("op", "op", "s"), ("M", "M", "d"),
                             ("N", "N", "d"), ("K", "K", "d"), ("seconds", "layer s", ".5f"),
                             ("gemm_s", "GEMM s", ".5f"), ("gops", "layer GOP/s", ".0f"),
                             ("gemm_gops", "GEMM GOP/s", ".0f")]))


# ---- the driver ---------------------------------------------------------------------------
def columns(threads) -> list[tuple[str, str, str]]:
    cols = [("model", "model", "s"), ("batch", "b", "d")]
    for n in threads:
        cols += [(f"lamina_f32_{n}t", f"lam f32 {n}t", ".1f"),
                 (f"lamina_int8_{n}t", f"lam i8 {n}t", ".1f"),
                 (f"ort_f32_{n}t", f"ort f32 {n}t", ".1f"),
                 (f"ort_int8_{n}t", f"ort i8 {n}t", ".1f"),
                 (f"l8_lf_{n}t", f"lam i8/f32 {n}t", ".2f"),
                 (f"o8_of_{n}t", f"ort i8/f32 {n}t", ".2f"),
                 (f"l8_o8_{n}t", f"lam/ort i8 {n}t", ".2f")]
    return [*cols, ("sqnr_lamina", "SQNR lam dB", ".1f"), ("sqnr_ort", "SQNR ort dB", ".1f"),
            ("top1_lamina", "top1 lam", ".3f"), ("top1_ort", "top1 ort", ".3f"),
            ("margin_lamina", "margin/noise", ".2f")]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.int8_models", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(NAMES), help="comma-separated, of: "
                   + ", ".join(NAMES))
    p.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    p.add_argument("--batch", default="1,16", help="batch sizes (default 1,16)")
    p.add_argument("--quick", action="store_true", help="short time boxes and 64 inputs "
                   f"for the agreement (else {AGREE})")
    p.add_argument("--profile", action="store_true", help="per-operator profile of the int8 "
                   "and float graphs (first --batch, 1 thread) instead of the table")
    p.add_argument("--json", default=str(Path(__file__).with_name("int8_models.json")))
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: measure one model
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batch.split(",")]
    names = args.models.split(",")
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    if args.worker:
        timing = {"rounds": 3, "repeats": 2} if args.quick else {"rounds": 7, "repeats": 5}
        rows = bench_model(args.worker, batches, threads, timing, 64 if args.quick else AGREE)
        Path(args.out).write_text(json.dumps(rows))
        return
    info = machine_info()
    if args.profile:
        profiles = [profile_model(n, batches[0], 3 if args.quick else 10) for n in names]
        for prof in profiles:
            print_profile(prof)
        out = Path(args.json).with_name(Path(args.json).stem + "_profile.json")
        out.write_text(json.dumps({**info, "profiles": profiles}, indent=1))
        return
    rows = [r for name in names for r in run_worker(name, args, "benchmarks.int8_models")]
    info["load_after"] = os.getloadavg()[0]
    print("\nint8 post-training quantization, same float file and calibration data; latency "
          "medians in ms (interleaved); ratios are time over time")
    print(table(rows, columns(threads)))
    for r in rows:
        errors = {k: v for k, v in r.items() if k.startswith("error")}
        if errors:
            print(f"  {r['model']} b{r['batch']}: {errors}")
    Path(args.json).write_text(json.dumps({**info, "calibration": f"{CAL_BATCHES} x "
                                           f"{CAL_SIZE}", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
