"""`python -m benchmarks.third_party [--models a,b] [--threads 1,2] [--batch 1,16] [--quick]`:
Lamina against onnxruntime and torch eager on architectures Lamina did not write.

Each model is a torch module, either torchvision's definition (ResNet-50, MobileNetV3,
EfficientNet-B0, ConvNeXt-T, GoogLeNet, SqueezeNet, DenseNet-121, VGG-16, ViT-B/16) or one
in `benchmarks/torch_models.py` (BERT-style encoder, GPT-2-style decoder, LSTM, GRU), built
in eval mode with random weights from a fixed seed (batch-norm statistics randomised too, so
folding them is exercised as in a trained model). `torch.onnx.export` (opset 17, a dynamic
batch axis) writes it once into a cache directory; then, per batch size and thread count,
Lamina compiles that file (`compiler.compile(path, x)`), onnxruntime runs the same file,
and torch eager runs the same module, all in one process with the same thread count.

Each model is measured in a fresh worker process, so compile time is cold (nothing of it in
the in-memory kernel cache; the first batch size also pays for importing onnx and LLVM's
start-up) and a crash in native code costs one row, not the run. Warm compile time is a
second compile of the same file, batch and threads, with its kernels in that cache.

Bench-only dependencies: torch, torchvision (`pip install --no-deps torchvision` with the
version matching torch; its compiled ops are not needed), pillow (torchvision imports it).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import numpy as np

from .timing import geomean, median_seconds, ort_runner, table

SEED = 0
OPSET = 17
TRACE_BATCH = 2  # the batch the exporter traces with; the file's batch axis is dynamic
CACHE = Path(os.environ.get("LAMINA_BENCH_CACHE", Path(__file__).with_name(".cache")))

VISION = {  # name: (torchvision builder, its keyword arguments)
    "resnet50": ("resnet50", {}),
    "mobilenet_v3_large": ("mobilenet_v3_large", {}),
    "efficientnet_b0": ("efficientnet_b0", {}),
    "convnext_tiny": ("convnext_tiny", {}),
    "googlenet": ("googlenet", {"aux_logits": False, "init_weights": True}),
    "squeezenet": ("squeezenet1_0", {}),
    "densenet121": ("densenet121", {}),
    "vgg16": ("vgg16", {}),
    "vit_b_16": ("vit_b_16", {}),
}
SEQUENCE = ("bert", "gpt2", "lstm", "gru")  # benchmarks/torch_models.py
NAMES = (*VISION, *SEQUENCE)


# ---- models and their ONNX files ----------------------------------------------------------
def import_torchvision():
    """torchvision's model definitions, without its compiled ops if those fail to load.

    PyPI's torchvision wheel is built against CUDA torch, so its `_C` extension does not
    load beside torch's CPU build, and `torchvision._meta_registrations` then fails at import
    (it registers fake kernels for operators that were never defined). The model definitions
    are pure Python and need neither: the module is replaced by an empty one, here only."""
    try:
        import torchvision
    except (RuntimeError, OSError):
        for name in [m for m in sys.modules if m.startswith("torchvision")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType(
            "torchvision._meta_registrations")
        import torchvision
    return torchvision


def build_torch(name: str):
    """(the torch module `name` in eval mode with seeded random weights, its input kind)."""
    import torch

    torch.manual_seed(SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name in VISION:
            builder, kwargs = VISION[name]
            model = getattr(import_torchvision().models, builder)(weights=None, **kwargs)
            kind = "image"
        else:
            from . import torch_models

            ctor, kind = torch_models.MODELS[name]
            model = ctor()
    randomize_trivial_parameters(model)
    return model.eval(), kind


def randomize_trivial_parameters(model) -> None:
    """Seeded random values where an initialiser leaves a trivial one, as training would not:
    batch-norm statistics and affine parameters (with mean 0, variance 1, scale 1, shift 0
    folding them is a no-op), and all-zero weight matrices (ViT's zero-initialised head
    would make every output 0, and the comparison with onnxruntime vacuous)."""
    import torch

    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2 and not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)


def make_input(kind: str, batch: int, seed: int = SEED) -> np.ndarray:
    from .torch_models import RNN_FEATURES, RNN_STEPS, SEQ_LEN

    rng = np.random.default_rng(seed)
    if kind == "image":
        return rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
    if kind.startswith("tokens:"):
        return rng.integers(0, int(kind.split(":")[1]), (batch, SEQ_LEN), dtype=np.int64)
    return rng.standard_normal((batch, RNN_STEPS, RNN_FEATURES)).astype(np.float32)


def onnx_file(name: str, model, kind: str, cache: Path = CACHE) -> Path:
    """The model's ONNX file, exported on first use (opset 17, dynamic batch axis)."""
    import torch

    folder = cache / f"torch-{torch.__version__}-opset{OPSET}-seed{SEED}"
    path = folder / f"{name}.onnx"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    x = torch.as_tensor(make_input(kind, TRACE_BATCH))
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    # not under no_grad: torch's fused attention path (nn.MultiheadAttention in eval mode
    # without grad) has no ONNX export
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(tmp), opset_version=OPSET, dynamo=False,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    os.replace(tmp, path)  # a concurrent or interrupted export never leaves half a file
    return path


# ---- one model, measured in a worker process ----------------------------------------------
def torch_runner(model, threads: int):
    import torch

    torch.set_num_threads(threads)

    def run(a):
        with torch.inference_mode():
            return model(torch.as_tensor(a)).numpy()

    return run


def short_error(e: BaseException) -> str:
    lines = str(e).strip().splitlines() or [""]
    return f"{type(e).__name__}: {lines[0][:400]}"


def bench_model(name: str, batches, threads, timing: dict) -> list[dict]:
    """One row per batch size: latencies per runtime and thread count, compile times, errors."""
    import compiler

    t = time.perf_counter()
    model, kind = build_torch(name)
    try:
        path = onnx_file(name, model, kind)
    except Exception as e:  # torch's exporter, not Lamina: say so
        return [{"model": name, "batch": b, "error": f"export: {short_error(e)}"}
                for b in batches]
    print(f"{name}: {path.stat().st_size / 1e6:.0f} MB file ready in "
          f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
    rows = []
    for batch in batches:
        x = make_input(kind, batch, seed=SEED + batch)
        row = {"model": name, "batch": batch}
        y_lam = y_ort = y_torch = None
        for i, n in enumerate(threads):
            if "error" not in row:
                try:
                    start = time.perf_counter()
                    fn = compiler.compile(str(path), x, opt_level=3, backend="llvm",
                                          num_threads=n)
                    row[f"compile_{n}t_s"] = time.perf_counter() - start
                    if i == 0:
                        row["compile_cold_s"] = row[f"compile_{n}t_s"]
                        start = time.perf_counter()
                        compiler.compile(str(path), x, opt_level=3, backend="llvm",
                                         num_threads=n)
                        row["compile_warm_s"] = time.perf_counter() - start
                    y_lam = np.asarray(fn(x))
                    row[f"lamina_{n}t"] = median_seconds(fn, x, **timing)["median"] * 1e3
                    del fn
                except Exception as e:  # a failure is a finding: record it, go on
                    row["error"] = short_error(e)
                    print(f"  {name} b{batch}: Lamina failed: {row['error']}", file=sys.stderr)
            # onnxruntime's session lives only while it is timed: its idle threads spin
            ort = ort_runner(path, n)
            y_ort = ort(x)
            row[f"ort_{n}t"] = median_seconds(ort, x, **timing)["median"] * 1e3
            del ort
            eager = torch_runner(model, n)
            y_torch = eager(x)
            row[f"torch_{n}t"] = median_seconds(eager, x, **timing)["median"] * 1e3
            for other in ("ort", "torch"):
                if f"lamina_{n}t" in row:
                    row[f"vs_{other}_{n}t"] = row[f"lamina_{n}t"] / row[f"{other}_{n}t"]
            time.sleep(0.2)  # let torch's OpenMP threads stop spinning
        scale = float(np.abs(y_ort).max()) or 1.0
        row["err_torch_ort"] = float(np.abs(y_torch - y_ort).max()) / scale
        if y_lam is not None:
            row["err_ort"] = (float(np.abs(y_lam - y_ort).max()) / scale
                              if y_lam.shape == y_ort.shape else float("inf"))
        rows.append(row)
        print(f"  {name} b{batch}: " + ", ".join(
            f"{n}t lamina {row.get(f'lamina_{n}t', float('nan')):.2f} ms / ort "
            f"{row[f'ort_{n}t']:.2f} ms" for n in threads), file=sys.stderr)
    return rows


# ---- the driver ---------------------------------------------------------------------------
def run_worker(name: str, args, module: str = "benchmarks.third_party") -> list[dict]:
    """Measure one model in a fresh process (`python -m module --worker name`, with the
    same --threads, --batch and --quick); a crash becomes an error row per batch."""
    cmd = [sys.executable, "-m", module, "--worker", name,
           "--threads", args.threads, "--batch", args.batch] + (["--quick"] if args.quick else [])
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "rows.json"
        proc = subprocess.Popen([*cmd, "--out", str(out)], cwd=root, stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, text=True)
        tail = collections.deque(maxlen=8)
        for line in proc.stderr:
            if "Warning" not in line and line.strip():
                print(line, end="", file=sys.stderr)
                tail.append(line.rstrip())
        rc = proc.wait()
        if rc == 0 and out.exists():
            return json.loads(out.read_text())
    why = f"worker died (signal {-rc})" if rc < 0 else f"worker exited with {rc}"
    return [{"model": name, "batch": int(b), "error": f"{why}: {' | '.join(tail)}"[-600:]}
            for b in args.batch.split(",")]


def summary(rows: list[dict], threads, others=("ort", "torch")) -> tuple[str, dict]:
    """Geometric means of the rows' vs_{other}_{n}t ratios (Lamina's time over the other's)."""
    lines, out = [], {}
    for n in threads:
        for other in others:
            ratios = [r[f"vs_{other}_{n}t"] for r in rows if f"vs_{other}_{n}t" in r]
            if not ratios:
                continue
            worst = max((r for r in rows if f"vs_{other}_{n}t" in r),
                        key=lambda r: r[f"vs_{other}_{n}t"])
            stats = {"geomean": geomean(ratios), "cases": len(ratios),
                     "slower": sum(q > 1.0 for q in ratios),
                     "above_1.3": sum(q > 1.3 for q in ratios),
                     "worst": f"{worst['model']} b{worst['batch']}",
                     "worst_ratio": worst[f"vs_{other}_{n}t"]}
            out[f"lamina/{other} {n}t"] = stats
            lines.append(f"lamina/{other:<5} {n} thread(s): geometric mean {stats['geomean']:.2f} "
                         f"over {stats['cases']} cases; {stats['slower']} slower, "
                         f"{stats['above_1.3']} above 1.3; worst {stats['worst']} "
                         f"{stats['worst_ratio']:.2f}")
    return "\n".join(lines), out


def columns(threads) -> list[tuple[str, str, str]]:
    cols = [("model", "model", "s"), ("batch", "b", "d")]
    for n in threads:
        cols += [(f"lamina_{n}t", f"lamina {n}t", ".2f"), (f"ort_{n}t", f"ort {n}t", ".2f"),
                 (f"torch_{n}t", f"torch {n}t", ".2f"), (f"vs_ort_{n}t", f"l/ort {n}t", ".2f"),
                 (f"vs_torch_{n}t", f"l/torch {n}t", ".2f")]
    return [*cols, ("compile_cold_s", "compile s", ".2f"),
            ("compile_warm_s", "warm s", ".2f"), ("err_ort", "max rel err", ".1e"),
            ("failed", "error", "s")]


def machine_info() -> dict:
    """The machine, versions (torchvision's too), seed and load before the run; printed."""
    from .__main__ import _cpu_name, _versions

    info = {"machine": _cpu_name(), "cpus": os.cpu_count(), "versions": _versions(),
            "seed": SEED, "load_before": os.getloadavg()[0]}
    with contextlib.suppress(Exception):
        import importlib.metadata as md

        info["versions"]["torchvision"] = md.version("torchvision")
    print(f"machine: {info['machine']}, {info['cpus']} cores, load {info['load_before']:.2f}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    return info


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.third_party", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(NAMES), help="comma-separated, of: "
                   + ", ".join(NAMES))
    p.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    p.add_argument("--batch", default="1,16", help="batch sizes (default 1,16; --quick: 1)")
    p.add_argument("--quick", action="store_true", help="batch 1 (unless --batch is given) "
                   "and short time boxes")
    p.add_argument("--json", default=str(Path(__file__).with_name("third_party.json")))
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: measure one model
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick and "--batch" not in (argv if argv is not None else sys.argv):
        args.batch = "1"
    threads = [int(t) for t in args.threads.split(",")]
    if args.worker:
        timing = ({"warmup": 1, "repeats": 5, "budget_s": 0.5} if args.quick
                  else {"warmup": 2, "repeats": 15, "budget_s": 2.0})
        rows = bench_model(args.worker, [int(b) for b in args.batch.split(",")], threads,
                           timing)
        Path(args.out).write_text(json.dumps(rows))
        return
    names = args.models.split(",")
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    info = {**machine_info(), "opset": OPSET}
    rows = [r for name in names for r in run_worker(name, args)]
    info["load_after"] = os.getloadavg()[0]
    for r in rows:
        if "error" in r:  # in full below the table
            r["failed"] = r["error"][:48] + ("..." if len(r["error"]) > 48 else "")
    text, stats = summary(rows, threads)
    print(f"\nThird-party models (torch.onnx.export, opset {OPSET}); latency medians in ms; "
          "compile: cold, and warm = with its kernels cached")
    print(table(rows, columns(threads)))
    print(text)
    failures = [r for r in rows if "error" in r]
    if failures:
        print("\nFailures (in Lamina, unless marked export):")
        for r in failures:
            print(f"  {r['model']} b{r['batch']}: {r['error']}")
    Path(args.json).write_text(json.dumps({**info, "rows": rows, "summary": stats}, indent=1))


if __name__ == "__main__":
    main()
