"""Verbs that compile and run: compile, run, bench, profile."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import ir
from backends import artifact
from ir.errors import OptionError

from ..tools import aot
from ..tools.bench import format_bench, time_targets
from ..tools.profiler import format_profile, profile
from ..tools.runner import build, outputs
from .common import (
    Formatter,
    add_backend,
    add_inputs,
    add_model,
    add_repro,
    amount,
    backend,
    compile_graph,
    count,
    load_graph,
    out,
    output_dir,
    progress_enabled,
    writing,
)


# ---- compile ------------------------------------------------------------------------------
def cmd_compile(args) -> None:
    output_dir("-o", args.output)
    graph, inputs = load_graph(args)
    name, options = backend(args)
    if args.shared:
        shared_possible(name)
    optimised, model, stats = compile_graph(args, graph, inputs, name, options,
                                            progress_enabled(args))
    with writing("-o", args.output):
        written, notes = aot.write(args.output, optimised, model, stats, args.name,
                                   shared=args.shared)
    out(stats)
    out(f"compiled with {name}; wrote to {args.output}:")
    for p in written:
        out(f"  {p.name}")
    for note in notes:
        out(f"note: {note}")


def shared_possible(backend_name: str) -> None:
    """--shared asks for a library: refuse, before compiling, where none can be built."""
    if backend_name != "llvm":
        raise OptionError(f"--shared builds native code: it needs --backend llvm, not "
                          f"{backend_name}")
    if artifact.c_compiler() is None:
        raise OptionError("--shared needs a C compiler (cc, gcc or clang) on PATH to build "
                          "the library; without it, compile without --shared for the object "
                          "file and header")


def add_compile(sub) -> None:
    c = sub.add_parser(
        "compile", help="optimise and compile, writing IR, LLVM IR, assembly, object code",
        description="Optimise MODEL and compile it. DIR receives NAME.ir (optimised IR), "
                    "NAME.npz (the optimised graph with weights, usable as MODEL), passes.txt "
                    "(time and rewrites per pass) and, with the llvm backend, NAME.ll (LLVM "
                    "IR), NAME.s (assembly), NAME.o (object file), NAME.weights.bin, NAME.h "
                    "(a C header for the entry point) and NAME.so when a C compiler is "
                    "installed. --shared also builds libNAME.so, the model behind a small "
                    "C API (create / run / destroy, its inputs and outputs, error codes; "
                    "weights built in) that NAME.h then declares and documents: see "
                    "examples/c_api. If a pass or the backend fails, a reproducer is written.",
        epilog="examples:\n  lamina compile examples/small_cnn.py:build -O 3 -o build/cnn\n"
               "  lamina compile examples/small_cnn.py:build --shared -o build/cnn",
        formatter_class=Formatter)
    add_model(c)
    c.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    c.add_argument("--name", default="model", type=base_name,
                   help="base name of the files (default: model)")
    c.add_argument("--shared", action="store_true",
                   help="also build libNAME.so with the C API declared in NAME.h (needs the "
                        "llvm backend and a C compiler)")
    add_inputs(c)
    add_backend(c, "auto")
    add_repro(c, "if a pass or the backend fails")
    c.set_defaults(fn=cmd_compile)


# ---- run ----------------------------------------------------------------------------------
def cmd_run(args) -> None:
    graph, inputs = load_graph(args)
    name, options = backend(args)
    _, model, _ = compile_graph(args, graph, inputs, name, options, progress_enabled(args))
    outs = outputs(model, inputs)
    for i, o in enumerate(outs):
        out(f"output {i}: {ir.TensorType.of(o)}  mean={o.mean():.6g} std={o.std():.6g}")
    if args.output:
        path = output_file(args.output, len(outs))
        with writing("-o", args.output), open(path, "wb") as f:
            np.savez(f, *outs) if path.suffix == ".npz" else np.save(f, outs[0])
        out(f"saved to {path}")


def output_file(given: str, n_outputs: int) -> Path:
    """Where `run -o` writes: a .npy for one output, a .npz for several (or when asked for);
    into a folder when `given` is one; the suffix added when missing."""
    path = Path(given)
    suffix = ".npy" if n_outputs == 1 else ".npz"
    if path.is_dir():
        return path / f"outputs{suffix}"
    if path.suffix == ".npy" and n_outputs > 1:
        raise OptionError(f"-o {given}: the model has {n_outputs} outputs, which a .npy "
                          "cannot hold; name a .npz file")
    return path if path.suffix in (".npy", ".npz") else path.with_name(path.name + suffix)


def base_name(text: str) -> str:
    """--name: a plain file name (no folders), as it also names C symbols."""
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"must be an identifier (letters, digits, _), got "
                                         f"{text!r}")
    return text


def add_run(sub) -> None:
    r = sub.add_parser("run", help="compile and run, printing output summaries and saving them",
                       description="Compile MODEL and run it on --input arrays (or its example "
                                   "inputs), printing a summary of each output; -o saves them.",
                       formatter_class=Formatter)
    add_model(r)
    add_inputs(r)
    r.add_argument("-o", "--output", metavar="FILE",
                   help="save the outputs (.npy, or .npz for several; into DIR/outputs.npy "
                        "when FILE is a folder)")
    add_backend(r, "auto")
    add_repro(r, "if a pass or the backend fails")
    r.set_defaults(fn=cmd_run)


# ---- bench --------------------------------------------------------------------------------
def cmd_bench(args) -> None:
    graph, inputs = load_graph(args)
    name, options = backend(args)
    start = time.perf_counter()
    optimised, model, _ = compile_graph(args, graph, inputs, name, options,
                                        progress_enabled(args))
    compile_s = time.perf_counter() - start
    targets = [(f"{name} {_level(args)}", model)]
    if name != "reference":
        targets.append((f"reference {_level(args)}", build(optimised, "reference")))
    else:
        targets.append(("reference -O0", build(graph, "reference")))
    result = time_targets(targets, inputs, repeat=args.repeat, warmup=args.warmup,
                          budget_s=args.seconds, progress=progress_enabled(args))
    out(format_bench({**result, "compile_s": compile_s}))


def _level(args) -> str:
    return "--passes" if args.passes else f"-O{args.opt_level}"


def add_bench(sub) -> None:
    b = sub.add_parser(
        "bench", help="latency: median and spread over repeated calls, against the reference",
        description="Time calls of the compiled MODEL after a warm-up: median, quartiles, "
                    "min..max and standard deviation, beside the reference interpreter "
                    "(on the same optimised graph; on the unoptimised graph when the "
                    "backend is the reference itself).",
        formatter_class=Formatter)
    add_model(b)
    add_inputs(b)
    add_backend(b, "auto")
    b.add_argument("--repeat", type=count(1), default=50, help="timed calls (default 50)")
    b.add_argument("--warmup", type=count(0), default=3,
                   help="untimed calls first (default 3)")
    b.add_argument("--seconds", type=amount(positive=True), default=5.0,
                   help="stop timing a backend after this long (at least 3 calls; default 5)")
    add_repro(b, "if a pass or the backend fails")
    b.set_defaults(fn=cmd_bench)


# ---- profile ------------------------------------------------------------------------------
def cmd_profile(args) -> None:
    graph, inputs = load_graph(args)
    name, options = backend(args)
    passes = args.passes and [n for item in args.passes for n in item.split(",") if n]
    cores = 1
    if name == "llvm":  # the cores the compiled model will use: its threads, or their default
        from backends.llvm.runtime import default_threads

        cores = options.get("num_threads") or default_threads()
    rows = profile(graph, *inputs, opt_level=args.opt_level, passes=passes or None,
                   backend=name, repeat=args.repeat, cores=cores,
                   progress=progress_enabled(args), **options)
    out(f"profile of {args.model} on {name}, per node, slowest first "
        f"(medians of {args.repeat} runs):")
    out(format_profile(rows, args.top))


def add_profile(sub) -> None:
    p = sub.add_parser(
        "profile", help="where the time goes: per node/kernel time, share, GFLOP/s, GB/s",
        description="Run the optimised MODEL node by node (with the llvm backend, each node "
                    "compiled alone: one kernel) and print, per node, its median time, share "
                    "of the total, achieved GFLOP/s and GB/s, and those as a share of the "
                    "machine's peak (240 GFLOP/s per core, float32; memory bandwidth of a "
                    "native streaming kernel at the node's working-set size, on --threads "
                    "threads), and whether the node is compute- or bandwidth-bound. From "
                    "Python: compiler.profile(...) returns the rows.",
        formatter_class=Formatter)
    add_model(p)
    add_inputs(p)
    add_backend(p, "auto")
    p.add_argument("--repeat", type=count(1), default=10,
                   help="timed runs per node (default 10)")
    p.add_argument("--top", type=count(1), metavar="N", help="show only the N slowest nodes")
    p.set_defaults(fn=cmd_profile)
