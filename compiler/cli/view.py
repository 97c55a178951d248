"""Verbs that look at the IR: dump, graph, passes."""

from __future__ import annotations

from pathlib import Path

import passes as _passes
from passes.plan_memory import plan_memory

from ..tools import graphviz
from ..tools.stepping import stats_table, steps, write_dump_dir
from .common import Formatter, add_model, count, load_graph, out, output_dir, pipeline, writing


# ---- dump ---------------------------------------------------------------------------------
def cmd_dump(args) -> None:
    if args.dump_dir:
        output_dir("--dump-dir", args.dump_dir)
    graph, _ = load_graph(args)
    watching = args.print_after_all or args.print_after_changed or args.diff or args.dump_dir
    if args.opt_level is None and not args.passes and not watching and not args.stats:
        out(str(graph))
        return
    if args.print_after_all or args.print_after_changed:
        out(f"# ---- IR before any pass ----\n{graph}")
    done, last = [], graph
    for step in steps(graph, pipeline(args)):
        done.append(step)
        last = step.after
        if args.diff and step.changed:
            out(f"# ---- {step.index:02d} {step.name} ({step.what}) ----")
            out(step.diff(args.context))
        if args.print_after_all or (args.print_after_changed and step.changed):
            out(f"# ---- IR after {step.index:02d} {step.name} ({step.what}) ----\n{step.after}")
    if args.dump_dir:
        with writing("--dump-dir", args.dump_dir):
            written = write_dump_dir(args.dump_dir, graph, done)
        out(stats_table([s.record for s in done]))
        out(f"wrote {len(written)} files to {args.dump_dir}: "
            f"{', '.join(p.name for p in written)}")
        return
    if not watching:
        out(str(last))
        out(f"# {plan_memory(last).summary()}")  # peak memory, as the optimised dump's footer
    if args.stats:
        out(stats_table([s.record for s in done]))


def add_dump(sub) -> None:
    d = sub.add_parser(
        "dump", help="print the IR, before or after passes, with diffs per pass",
        description="Print the IR of MODEL: as traced/imported, or after -O N / --passes. "
                    "Watch the pipeline with --print-after-all, --print-after-changed or "
                    "--diff (what each pass changed, and nothing else); --dump-dir writes "
                    "one file per pass that changed something plus a statistics table. "
                    "The watching options imply -O 2 unless -O or --passes is given.",
        epilog="examples:\n  lamina dump examples/small_cnn.py:build\n"
               "  lamina dump examples/small_cnn.py:build -O 3 --diff\n"
               "  lamina dump model.onnx --passes fold_batch_norm,fuse_conv_activation "
               "--print-after-changed\n"
               "  lamina dump model.onnx -O 3 --dump-dir ir-dumps/",
        formatter_class=Formatter)
    add_model(d, opt_default=None)
    d.add_argument("--print-after-all", action="store_true",
                   help="print the IR after every pass")
    d.add_argument("--print-after-changed", action="store_true",
                   help="print the IR after every pass that changed something")
    d.add_argument("--diff", action="store_true",
                   help="for each pass that changed something, a unified diff of the IR "
                        "before and after it (and nothing else)")
    d.add_argument("-U", "--context", type=count(0), default=0, metavar="N",
                   help="unchanged lines of context around each --diff hunk (default 0)")
    d.add_argument("--dump-dir", metavar="DIR",
                   help="write 00-input.ir, NN-PASS.ir for each pass NN that changed "
                        "something, and stats.txt (time and rewrites per pass; also printed)")
    d.add_argument("--stats", action="store_true",
                   help="print the per-pass statistics table after the IR")
    d.set_defaults(fn=cmd_dump)


# ---- graph --------------------------------------------------------------------------------
def cmd_graph(args) -> None:
    graph, _ = load_graph(args)
    if args.opt_level is not None or args.passes:
        for step in steps(graph, pipeline(args)):
            graph = step.after
    text = graphviz.to_dot(graph)
    if not args.output:
        out(text)
    else:
        with writing("-o", args.output):
            if Path(args.output).suffix in (".dot", ".gv"):
                Path(args.output).write_text(text + "\n")
            else:
                graphviz.render(text, args.output)
        out(f"wrote {args.output}")


def add_graph(sub) -> None:
    g = sub.add_parser(
        "graph", help="a picture of the graph (SVG/PNG/PDF through Graphviz, or DOT)",
        description="Draw MODEL's graph, optionally after -O N / --passes. Fused regions "
                    "are drawn as clusters of the operators they hold. -o FILE.svg (or "
                    ".png, .pdf) renders through Graphviz `dot`, which must be installed; "
                    "-o FILE.dot, or no -o, writes DOT text and needs nothing.",
        epilog="example:\n  lamina graph examples/small_cnn.py:build -O 3 -o cnn.svg",
        formatter_class=Formatter)
    add_model(g, opt_default=None)
    g.add_argument("-o", "--output", metavar="FILE",
                   help="FILE.svg/.png/.pdf (rendered by dot) or FILE.dot (default: DOT on "
                        "stdout)")
    g.set_defaults(fn=cmd_graph)


# ---- passes -------------------------------------------------------------------------------
def cmd_passes(args) -> None:
    doc = args.doc and _passes.get(args.doc).doc  # an unknown name: the error, and no list
    rows = [(name, str(_passes.get(name).contract), _passes.get(name).summary)
            for name in _passes.names()]
    w0, w1 = (max(len(r[i]) for r in rows) for i in range(2))
    out("passes (name, numeric contract, what it does):")
    for name, contract, summary in rows:
        out(f"  {name.ljust(w0)}  {contract.ljust(w1)}  {summary}")
    out("\npipelines:")
    for level, names in _passes.PIPELINES.items():
        out(f"  -O {level[1:]}: {', '.join(names) or '(no passes)'}")
    if args.doc:
        out(f"\n{args.doc}:\n{doc}")


def add_passes(sub) -> None:
    p = sub.add_parser("passes", help="list the passes, their numeric contracts and the "
                                      "pipelines -O0..-O3")
    p.add_argument("doc", nargs="?", metavar="PASS", help="also print this pass's documentation")
    p.set_defaults(fn=cmd_passes)

