"""The `lamina` command line: look at what the compiler does to a model, and run it.

MODEL is an `.onnx` file, a graph saved with `ir.save` (`.npz`), or `FILE.py:NAME` /
`module:NAME` naming a function that returns `(model, *example_inputs)`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

import numpy as np

import ir

from .compile import compile, to_graph


def load_model(spec: str):
    """(model or graph, example inputs) for a MODEL argument."""
    if spec.endswith((".onnx", ".npz")):
        return to_graph(spec), ()
    if ":" not in spec:
        raise ir.LaminaError(f"MODEL {spec!r}: expected FILE.onnx, FILE.npz, FILE.py:NAME or "
                             "module:NAME")
    where, name = spec.rsplit(":", 1)
    if where.endswith(".py"):
        loader = importlib.util.spec_from_file_location(Path(where).stem, where)
        if loader is None or not Path(where).exists():
            raise ir.LaminaError(f"MODEL {spec!r}: no such file {where}")
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    built = getattr(module, name)
    built = built() if callable(built) and not hasattr(built, "forward") else built
    if isinstance(built, ir.Graph):
        return built, ()
    model, *inputs = built if isinstance(built, tuple) else (built,)
    return model, tuple(inputs)


def _inputs(args, graph: ir.Graph, examples):
    if args.input:
        return [np.load(p, allow_pickle=False) for p in args.input]
    if examples:
        return list(examples)
    rng = np.random.default_rng(0)
    return [rng.standard_normal(v.shape).astype(v.type.np_dtype) for v in graph.inputs]


def cmd_dump(args) -> None:
    model, examples = load_model(args.model)
    graph = to_graph(model, *examples)
    if args.opt_level is None and not args.passes:
        print(graph)
        return
    import passes

    level = 2 if args.opt_level is None else args.opt_level
    out = passes.optimize(graph, opt_level=level, passes=args.passes,
                          print_after_all=args.print_after_all,
                          print_after_changed=args.print_after_changed)
    print(out)


def cmd_run(args) -> None:
    model, examples = load_model(args.model)
    graph = to_graph(model, *examples)
    inputs = _inputs(args, graph, examples)
    fn = compile(graph, *inputs, opt_level=args.opt_level, backend=args.backend)
    outs = fn(*inputs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    for i, o in enumerate(outs):
        print(f"output {i}: {ir.TensorType.of(o)}  mean={o.mean():.6g} std={o.std():.6g}")
    if args.output:
        np.savez(args.output, *outs) if len(outs) > 1 else np.save(args.output, outs[0])
        print(f"saved to {args.output}")


def cmd_graph(args) -> None:
    model, examples = load_model(args.model)
    text = ir.to_dot(to_graph(model, *examples))
    Path(args.output).write_text(text) if args.output else print(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lamina", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True)

    d = sub.add_parser("dump", help="print the IR, optionally after a pipeline")
    d.add_argument("model")
    d.add_argument("-O", "--opt-level", type=int, choices=range(4), default=None)
    d.add_argument("--passes", nargs="+", help="a pipeline by pass names")
    d.add_argument("--print-after-all", action="store_true")
    d.add_argument("--print-after-changed", action="store_true")
    d.set_defaults(fn=cmd_dump)

    r = sub.add_parser("run", help="compile and run, printing output summaries")
    r.add_argument("model")
    r.add_argument("--input", nargs="+", help=".npy files, one per graph input")
    r.add_argument("-o", "--output", help="save outputs (.npy, or .npz for several)")
    r.add_argument("-O", "--opt-level", type=int, choices=range(4), default=2)
    r.add_argument("--backend", default="reference", choices=["reference", "llvm"])
    r.set_defaults(fn=cmd_run)

    g = sub.add_parser("graph", help="the graph as Graphviz DOT")
    g.add_argument("model")
    g.add_argument("-o", "--output", help="write DOT to this file (default: stdout)")
    g.set_defaults(fn=cmd_graph)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        args.fn(args)
    except ir.LaminaError as e:
        print(f"lamina: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
