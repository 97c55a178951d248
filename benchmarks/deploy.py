"""`python -m benchmarks.deploy [--model resnet50] [--runs 5]`: loading a saved compiled model.

A torchvision model (exported to ONNX by benchmarks.third_party's cached export) is compiled
once and saved as a `.lamina` file; then each run starts a fresh Python process that imports
Lamina and times `compiler.load(path)` (the page cache is warm after the first run) with and
without `verify=True`'s hashing of the weights, the first call, and checks that llvmlite's
compiler was never imported. Medians over the runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import compiler

from .third_party import build_torch, make_input, onnx_file
from .timing import table

CHILD = """
import json, sys, time
import numpy as np
import compiler
path, verify = sys.argv[1], sys.argv[2] == "1"
x = np.load(sys.argv[3])
t0 = time.perf_counter()
fn = compiler.load(path, verify=verify)
t1 = time.perf_counter()
fn(x)
t2 = time.perf_counter()
print(json.dumps({"load_ms": (t1 - t0) * 1e3, "first_call_ms": (t2 - t1) * 1e3,
                  "llvmlite_binding": "llvmlite.binding" in sys.modules}))
"""


def measure(name: str, runs: int) -> list[dict]:
    model, kind = build_torch(name)
    x = make_input(kind, 1)
    path = onnx_file(name, model, kind)
    t = time.perf_counter()
    fn = compiler.compile(str(path), x)
    compile_s = time.perf_counter() - t
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        saved, inputs = Path(tmp) / f"{name}.lamina", Path(tmp) / "x.npy"
        fn.specialize(x).save(saved)  # the batch-1 build (a saved model serves one size)
        np.save(inputs, x)
        for verify in (False, True):
            results = [json.loads(subprocess.run(
                [sys.executable, "-c", CHILD, str(saved), str(int(verify)), str(inputs)],
                capture_output=True, text=True, check=True).stdout) for _ in range(runs)]
            rows.append({"model": name, "verify": verify,
                         "size_mb": saved.stat().st_size / 2**20, "compile_s": compile_s,
                         "load_ms": statistics.median(r["load_ms"] for r in results),
                         "first_ms": statistics.median(r["first_call_ms"] for r in results),
                         "llvm": any(r["llvmlite_binding"] for r in results)})
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args(argv)
    rows = measure(args.model, args.runs)
    print(table(rows, [("model", "model", "s"), ("size_mb", "file MiB", ".1f"),
                       ("compile_s", "compile s", ".1f"), ("verify", "verify", ""),
                       ("load_ms", "load ms (median)", ".1f"),
                       ("first_ms", "first call ms", ".1f"),
                       ("llvm", "imported llvmlite.binding", "")]))


if __name__ == "__main__":
    main()
