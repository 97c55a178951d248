"""Verbs that find what went wrong: bisect, repro."""

from __future__ import annotations

from ..tools.bisection import bisect
from ..tools.replay import replay
from .common import (
    Formatter,
    add_backend,
    add_inputs,
    add_model,
    add_repro,
    amount,
    backend,
    load_graph,
    out,
    pipeline,
    progress_enabled,
    save_repro,
)


class Finding(Exception):
    """Not an error: the verb found a problem and reported it; exit status 1."""


def cmd_bisect(args) -> None:
    graph, inputs = load_graph(args)
    name, options = backend(args)
    report = bisect(graph, *inputs, passes=pipeline(args), backend=name,
                    backend_rtol=args.rtol, backend_atol=args.atol,
                    progress=progress_enabled(args), **options)
    out(str(report))
    if report.ok:
        return
    note = save_repro(args, graph, report.pipeline, inputs, "bisect", name, report.finding(),
                      options)
    if note:
        out(note.strip(" ()"))
    raise Finding


def add_bisect(sub) -> None:
    b = sub.add_parser(
        "bisect", help="which pass (or the backend) is to blame when the numbers differ",
        description="Run the unoptimised MODEL in float64 through the reference interpreter "
                    "(the truth), then apply the pipeline one pass at a time, holding each "
                    "pass's output to its declared numeric contract (`lamina passes` lists "
                    "them: exact, or within a tolerance) and measuring it against the truth; "
                    "finally compare the compiled model. Names the first pass (or the "
                    "backend) that breaks its contract and the first node whose value "
                    "diverges, with absolute, relative and ULP error, and writes a "
                    "reproducer. Exit status 1 when a culprit is found.",
        epilog="example:\n  lamina bisect examples/small_cnn.py:build -O 3 --backend llvm",
        formatter_class=Formatter)
    add_model(b)
    add_inputs(b)
    add_backend(b, "auto")
    b.add_argument("--rtol", type=amount(positive=False), default=1e-4,
                   help="the backend's tolerance against the reference interpreter, relative "
                        "(default 1e-4)")
    b.add_argument("--atol", type=amount(positive=False), default=1e-5,
                   help="... and absolute (default 1e-5)")
    add_repro(b, "when a culprit is found")
    b.set_defaults(fn=cmd_bisect)


def cmd_repro(args) -> None:
    result = replay(args.file, progress=progress_enabled(args))
    r = result.repro
    recorded = r.finding
    out(f"reproducer {args.file}: {r.kind} of @{r.graph.name} with {len(r.pipeline)} pass(es) "
        f"on {r.backend}")
    out(f"recorded: {recorded.get('kind')} in {recorded.get('culprit')}"
        + (f" at node %{recorded['node']}" if recorded.get("node") else ""))
    out(result.text)
    if result.reproduced:
        out("reproduced: the same finding")
        raise Finding
    out("not reproduced: " + ("nothing goes wrong now" if result.finding is None else
                              f"now {result.finding.get('kind')} in "
                              f"{result.finding.get('culprit')}"))


def add_repro_verb(sub) -> None:
    r = sub.add_parser(
        "repro", help="replay a reproducer written by compile/run/bench/bisect",
        description="Replay a reproducer: compile its graph with its pipeline and backend, "
                    "or bisect again, and report whether the recorded finding happens again. "
                    "Exit status 1 when it does (the bug is still there), 0 when not. Passes "
                    "from a plugin need `lamina --plugin FILE.py repro ...`.",
        formatter_class=Formatter)
    r.add_argument("file", metavar="FILE", help="a reproducer (.npz)")
    r.set_defaults(fn=cmd_repro)

