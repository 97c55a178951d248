"""`python -m benchmarks.compile_time [--models resnet50,densenet121] [--repeats 2]`: how long
`compiler.compile` takes on benchmarks/third_party.py's ONNX files (one thread, batch 1),
cold and warm, as process CPU seconds and wall seconds (benchmarks/COMPILE_TIME.md).

Each repeat of each model runs in a fresh process: `onnx` is imported first (as the
third-party benchmark has done before it compiles), then the cold compile (nothing in the
in-memory compile cache, no cache_dir) and the warm one (the same file and options again,
its kernels now in that cache). CPU time is what a busy machine inflates least; wall time
is what third_party.py reports. The files are exported on first use (torch, torchvision)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

MODELS = ("resnet50", "densenet121", "vgg16", "convnext_tiny", "vit_b_16", "gpt2")


def measure(name: str) -> str:
    """One cold and one warm compile of `name` in this (fresh) process."""
    from . import third_party as tp

    model, kind = tp.build_torch(name)
    path = tp.onnx_file(name, model, kind)
    del model
    x = tp.make_input(kind, 1, seed=tp.SEED + 1)
    import onnx  # noqa: F401

    import compiler

    cells = []
    keep = []  # the cold model stays alive during the warm compile, as in third_party.py
    for _ in ("cold", "warm"):
        wall, cpu = time.perf_counter(), time.process_time()
        keep.append(compiler.compile(str(path), x, opt_level=3, backend="llvm", num_threads=1))
        cells.append(f"{time.process_time() - cpu:.2f} ({time.perf_counter() - wall:.2f})")
    return f"| {name} | {cells[0]} | {cells[1]} |"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compile_time", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(measure(args.worker))
        return
    print("| model | cold: CPU s (wall s) | warm: CPU s (wall s) |\n|---|---|---|")
    root = Path(__file__).resolve().parent.parent
    for name in args.models.split(","):
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, "-m", "benchmarks.compile_time", "--worker",
                                  name], cwd=root, capture_output=True, text=True)
            lines = out.stdout.strip().splitlines()
            print(lines[-1] if out.returncode == 0 and lines else
                  f"| {name} | failed: {out.stderr.strip().splitlines()[-1:]} | |", flush=True)


if __name__ == "__main__":
    main()
