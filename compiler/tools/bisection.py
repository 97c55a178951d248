"""Numeric bisection: which pass (or the backend) broke the numbers, and at which node.

    report = compiler.bisect(model, x, opt_level=3, backend="llvm")
    print(report)              # a table of stages, the culprit, the first diverging node
    report.culprit             # "fold_batch_norm", "backend llvm", or None
    report.save_repro("bug.npz")

The unoptimised graph, retyped to float64, run by the reference interpreter, is the truth.
The pipeline is then applied one pass at a time; after each pass the float32 graph is run
by the reference interpreter and its outputs are held to the pass's declared contract
against the stage before it (bit for bit when exact, numpy.allclose within its rtol/atol
when approximate), and measured against the float64 truth. The first pass that breaks its
contract (or fails) is the culprit; inside the graph it produced, the first node whose value
differs from the stage before is named, with its error against the value of the same name
(or, failing a name, the closest value of the same shape) in the float64 run. When every
pass keeps its contract, the compiled model is compared with the last stage, and a
disagreement beyond the backend tolerance is traced to the first node the backend gets
wrong by compiling and checking nodes one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

import ir
import passes as _passes
from backends import reference

from ..compile import to_graph
from . import repro
from .numerics import Error, retype, same
from .progress import Progress
from .runner import build, example_inputs, outputs
from .stepping import resolve, steps
from .subgraph import single_node

MATCH_RTOL = 1e-3  # a value "is" an unoptimised one of the same name when this close to it


@dataclass
class Stage:
    """The graph after `index` passes (0: unoptimised), run by the reference interpreter."""

    index: int
    name: str
    contract: _passes.Contract | None
    changed: bool
    error: Error  # outputs against the float64 truth (the worst output)
    deviation: Error | None = None  # outputs against the stage before
    ok: bool = True  # the stage before agrees within this pass's contract


@dataclass
class Divergence:
    """The first node whose value went wrong, and by how much."""

    node: str  # value name in the culprit stage's graph
    op: str
    original: str | None  # the unoptimised value it is measured against
    matched_by: str  # "name", "value" (the closest value of the same shape) or "none"
    error: Error | None  # against `original` in the float64 run
    before: Error | None  # against the same value in the stage before (None: new value)

    def __str__(self) -> str:
        text = f"%{self.node} ({self.op})"
        if self.original is not None:
            how = "" if self.matched_by == "name" else " (matched by value)"
            text += f": against %{self.original}{how} of the unoptimised graph in float64: " \
                    f"{self.error}"
        if self.before is not None:
            text += f"; against the stage before: {self.before}"
        return text


@dataclass
class BisectReport:
    """What bisection found. `culprit` is None when nothing disagrees."""

    pipeline: list[str]
    backend: str
    graph: ir.Graph  # the unoptimised graph (what a reproducer stores)
    inputs: list[np.ndarray]
    stages: list[Stage] = field(default_factory=list)
    kind: str = "ok"  # ok | pass | pass-error | backend | backend-error
    culprit: str | None = None
    detail: str = ""
    node: Divergence | None = None
    final: Error | None = None  # the compiled model's outputs against the float64 truth

    @property
    def ok(self) -> bool:
        return self.culprit is None

    def finding(self) -> dict:
        """The finding as plain data (what a reproducer records and replays against)."""
        return {"kind": self.kind, "culprit": self.culprit,
                "node": self.node.node if self.node else None, "detail": self.detail}

    def summary(self) -> str:
        if self.ok:
            final = f"; the compiled model ({self.backend}) is within {self.final} of the " \
                    "float64 reference" if self.final else ""
            return f"no disagreement: every pass kept its numeric contract{final}"
        return f"culprit: {self.culprit}: {self.detail}"

    def save_repro(self, path) -> None:
        repro.save(path, self.graph, self.pipeline, self.inputs, kind="bisect",
             backend=self.backend, finding=self.finding())

    def __str__(self) -> str:
        rows = [("#", "stage", "contract", "changed", "vs stage before", "vs float64 reference")]
        for s in self.stages:
            dev = "-" if s.deviation is None else (
                "equal" if s.deviation.abs == 0 else str(s.deviation))
            rows.append((str(s.index), s.name, str(s.contract) if s.contract else "-",
                         "yes" if s.changed else "no" if s.index else "-",
                         dev + ("" if s.ok else "  <- BREAKS CONTRACT"), str(s.error)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"bisect: {len(self.pipeline)} pass(es), backend {self.backend}"]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.append(self.summary())
        if self.node is not None:
            lines.append(f"first diverging node: {self.node}")
        return "\n".join(lines)


def bisect(model, *inputs, passes: Sequence | None = None, opt_level: int | str = 2,
           backend: str = "reference", backend_rtol: float = 1e-4, backend_atol: float = 1e-5,
           progress: bool | None = None, **backend_options) -> BisectReport:
    """Find the first pass (or the backend) whose output disagrees beyond its numeric
    contract, and the first node whose value diverges; see the module docstring.

    `model` is a compiler.nn model (traced with `inputs`), an ir.Graph, or a saved graph /
    .onnx path; without inputs a graph gets seeded random ones. `passes` (names or Pass
    objects) replaces the `opt_level` pipeline. The backend's own tolerance against the
    reference interpreter is `backend_rtol`/`backend_atol` (numpy.allclose's meaning)."""
    inputs = tuple(np.asarray(x) for x in inputs)
    graph = to_graph(model, *inputs)
    ir.verify(graph)
    args = example_inputs(graph, inputs)
    pipeline = resolve(passes, opt_level)
    report = BisectReport([p.name for p in pipeline], backend, graph, args)

    truth_out, truth = _run(retype(graph, "f64"), [_f64(a) for a in args], graph)
    prev_out, prev = _run(graph, args)
    report.stages.append(Stage(0, "unoptimised (f32)", None, False, _worst(prev_out, truth_out)))
    last = graph
    with Progress("bisect", total=len(pipeline) + 1, enabled=progress) as bar:
        done = 0
        try:
            for step in steps(graph, pipeline):
                bar.advance(note=step.name)
                done += 1
                try:
                    out, vals = _run(step.after, args)
                except Exception as e:  # the pass left a graph the interpreter cannot run
                    detail = e if isinstance(e, ir.LaminaError) else f"{type(e).__name__}: {e}"
                    raise ir.LaminaError(f"the reference interpreter fails on the graph "
                                         f"after pass {step.name}: {detail}") from e
                contract = step.pass_.contract
                ok = all(same(o, p, contract) for o, p in zip(out, prev_out))
                report.stages.append(Stage(step.index, step.name, contract, step.changed,
                                           _worst(out, truth_out), _worst(out, prev_out), ok))
                if not ok:
                    report.kind, report.culprit = "pass", step.name
                    report.detail = (f"pass #{step.index} ({contract}) changed the outputs by "
                                     f"{report.stages[-1].deviation}")
                    report.node = _first_divergence(step.after, vals, prev, truth, contract)
                    return report
                prev_out, prev, last = out, vals, step.after
        except ir.LaminaError as e:
            name = report.pipeline[done] if done < len(pipeline) and \
                isinstance(e, _passes.PassError) else report.pipeline[max(done - 1, 0)]
            report.kind, report.culprit, report.detail = "pass-error", name, str(e)
            return report
        bar.set(f"backend {backend}")
        _check_backend(report, last, args, prev_out, prev, truth, truth_out,
                       backend_rtol, backend_atol, backend_options, bar)
    return report


def _check_backend(report, graph, args, ref_out, ref_vals, truth, truth_out, rtol, atol,
                   options, bar) -> None:
    """Compare the compiled model with the last stage; on disagreement, find the node."""
    if report.backend == "reference":
        report.final = _worst(ref_out, truth_out)
        return
    name = f"backend {report.backend}"
    contract = _passes.approximate(rtol, atol)
    try:
        out = outputs(build(graph, report.backend, **options), args)
    except ir.LaminaError as e:
        report.kind, report.culprit, report.detail = "backend-error", name, str(e)
        return
    report.final = _worst(out, truth_out)
    report.stages.append(Stage(len(report.stages), name, contract, False, report.final,
                               _worst(out, ref_out), all(same(o, r, contract)
                                                         for o, r in zip(out, ref_out))))
    if report.stages[-1].ok:
        return
    report.kind, report.culprit = "backend", name
    report.detail = (f"the compiled model differs from the reference interpreter on the same "
                     f"graph by {report.stages[-1].deviation}")
    report.node = _first_backend_divergence(graph, ref_vals, truth, report.backend, options,
                                            contract, bar)


def _first_backend_divergence(graph, ref_vals, truth, backend, options, contract, bar):
    """Compile and run nodes one at a time on the reference's inputs; the first whose output
    is not within `contract` of the reference's is the one the backend gets wrong."""
    for i, node in enumerate(graph.nodes):
        bar.set(f"backend: node {i + 1}/{len(graph.nodes)}")
        sub, sub_args = single_node(node)
        try:
            got = outputs(build(sub, backend, **options), [ref_vals[v.name] for v in sub_args])
        except ir.LaminaError:
            continue  # the whole graph compiled; a node alone may not (e.g. an output reshape)
        for v, a in zip(node.outputs, got):
            if not same(a, ref_vals[v.name], contract):
                original, how = _counterpart(v, ref_vals[v.name], truth)
                return Divergence(v.name, node.op, original, how,
                                  Error.between(a, truth[original]) if original else None,
                                  Error.between(a, ref_vals[v.name]))
    return None


def _first_divergence(graph, vals, prev, truth, contract) -> Divergence | None:
    """The first node (in order) of the culprit's graph whose value matches no value of the
    stage before: by name when the name survives, else by content."""
    for node in graph.nodes:
        for v in node.outputs:
            a = vals[v.name]
            before = None
            if v.name in prev and prev[v.name].shape == a.shape:
                if same(a, prev[v.name], contract):
                    continue
                before = Error.between(a, prev[v.name])
            elif any(same(a, b, contract) for b in prev.values() if b.shape == a.shape):
                continue  # a renamed value that computes what some value computed before
            original, how = _counterpart(v, prev[v.name] if before else a, truth)
            return Divergence(v.name, node.op, original, how,
                              Error.between(a, truth[original]) if original else None, before)
    return None


def _counterpart(v: ir.Value, anchor: np.ndarray, truth: dict) -> tuple[str | None, str]:
    """The unoptimised value that `v` stands for, judged by `anchor` (what `v` held in the
    stage before, known good, else its own value): the value of the same name when it holds
    the same quantity (a pass may reuse a name for something else, e.g. a folded conv that
    now computes what its batch_norm did), else the closest value of the same shape."""
    same_name = truth.get(v.name)
    if same_name is not None and same_name.shape == anchor.shape and \
            Error.between(anchor, same_name).rel <= MATCH_RTOL:
        return v.name, "name"
    candidates = [(Error.between(anchor, b).rel, k) for k, b in truth.items()
                  if b.shape == anchor.shape]
    if not candidates:
        return None, "none"
    return min(candidates)[1], "value"


def _run(g: ir.Graph, args, names_from: ir.Graph | None = None):
    """(outputs, every value by name) of the reference interpreter on `g`. With `names_from`
    (a graph `g` was retyped from), values are keyed by that graph's names."""
    out, vals = reference.run(g, *args, keep=True)
    vals.update({v.name: a for v, a in zip(g.inputs, args)})
    vals.update({k: g.weights[k] for k in g.params if k in g.weights})
    if names_from is not None:
        rename = {}
        for new, old in zip(g.nodes, names_from.nodes):
            rename.update({n.name: o.name for n, o in zip(new.outputs, old.outputs)})
        vals = {rename.get(k, k): a for k, a in vals.items()}
    return out, vals


def _worst(actual: list, exact: list) -> Error:
    """The error of the output that is furthest off (by relative error)."""
    errors = [Error.between(a, e) for a, e in zip(actual, exact)]
    return max(errors, key=lambda e: (e.rel, e.abs)) if errors else Error(0.0, 0.0, 0.0)


def _f64(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) if a.dtype == np.float32 else a
