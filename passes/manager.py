"""Passes as named units, and the manager that runs a pipeline of them with instrumentation.

A pass rewrites a graph in place and returns what it changed as counts of rewrites
(`{"dropout": 2}`; empty means unchanged). It carries a name, a docstring showing its
rewrite, and a numeric contract: `EXACT` (the reference interpreter gives equal outputs
before and after) or `approximate(rtol, atol)` (equal within that tolerance, e.g. batch-norm
folding changes rounding). Tests hold every pass to its contract.

    pm = PassManager(["eliminate_dropout", "fold_batch_norm"], verify=True,
                     print_after_changed=True, stream=sys.stdout)
    optimised = pm.run(graph)   # graph itself is left untouched
    print(pm.stats)             # per pass: changed, rewrite counts, nodes, time
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import ir


class PassError(ir.LaminaError):
    """A pass that failed or left a broken graph; the message names it and its predecessors."""


# ---- passes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Contract:
    """How close outputs must stay: exact, or within rtol/atol (numpy.allclose's meaning)."""

    exact: bool
    rtol: float = 0.0
    atol: float = 0.0

    def __str__(self) -> str:
        return "exact" if self.exact else f"approximate (rtol={self.rtol:g}, atol={self.atol:g})"


EXACT = Contract(True)


def approximate(rtol: float, atol: float) -> Contract:
    return Contract(False, rtol, atol)


@dataclass(frozen=True)
class Pass:
    """A named rewrite: `fn(graph)` edits the graph in place and returns rewrite counts."""

    name: str
    fn: Callable[[ir.Graph], dict | None]
    contract: Contract = EXACT
    doc: str = ""

    def __call__(self, graph: ir.Graph) -> Counter:
        return Counter({k: v for k, v in (self.fn(graph) or {}).items() if v})

    @property
    def summary(self) -> str:
        return self.doc.strip().splitlines()[0] if self.doc.strip() else self.name


_PASSES: dict[str, Pass] = {}


def graph_pass(name: str, contract: Contract = EXACT):
    """Decorator registering `fn(graph) -> counts` as the pass `name`; its module's docstring
    (the before/after IR) and its own docstring become the pass's documentation."""

    def deco(fn):
        module_doc = sys.modules[fn.__module__].__doc__ or ""
        p = Pass(name, fn, contract, "\n".join(d for d in (fn.__doc__, module_doc) if d))
        if name in _PASSES:
            raise ValueError(f"pass {name} registered twice")
        _PASSES[name] = p
        return p

    return deco


def get(name: str) -> Pass:
    """The registered pass `name`, or LaminaError listing the known ones."""
    try:
        return _PASSES[name]
    except (KeyError, TypeError):
        raise ir.LaminaError(f"unknown pass {name!r}; known passes: {', '.join(names())}") \
            from None


def names() -> list[str]:
    return sorted(_PASSES)


# ---- statistics ---------------------------------------------------------------------------
@dataclass
class PassRecord:
    name: str
    counts: Counter
    nodes_before: int
    nodes_after: int
    seconds: float

    @property
    def changed(self) -> bool:
        return bool(self.counts)


@dataclass
class Stats:
    """What each pass of one run did: data in `records`, a table from `str()`."""

    records: list[PassRecord] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(r.seconds for r in self.records)

    def rewrites(self) -> Counter:
        """All rewrite counts, keyed `pass.what`."""
        return Counter({f"{r.name}.{k}": v for r in self.records for k, v in r.counts.items()})

    def __str__(self) -> str:
        rows = [("pass", "changed", "rewrites", "nodes", "ms")]
        for r in self.records:
            what = ", ".join(f"{k}={v}" for k, v in sorted(r.counts.items())) or "-"
            rows.append((r.name, "yes" if r.changed else "no", what,
                         f"{r.nodes_before} -> {r.nodes_after}", f"{r.seconds * 1e3:.2f}"))
        if self.records:
            first, last = self.records[0], self.records[-1]
            rows.append(("total", "", "", f"{first.nodes_before} -> {last.nodes_after}",
                         f"{self.total_seconds * 1e3:.2f}"))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        return "\n".join("  ".join(c.ljust(w) if i < 4 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(row, widths))).rstrip()
                         for row in rows)


# ---- the manager --------------------------------------------------------------------------
class PassManager:
    """Runs passes in order on a copy of a graph.

    verify: run ir.verify after every pass; a failure reads "in pass X, after [A, B]: ...".
    print_after_all / print_after_changed: write the IR after every pass / after those that
    changed something to `stream` (default stderr). print_stats: write the stats table at
    the end. Timings and rewrite counts are always collected in `self.stats`.
    """

    def __init__(self, passes: Sequence[str | Pass], *, verify: bool = False,
                 print_after_all: bool = False, print_after_changed: bool = False,
                 print_stats: bool = False, stream: TextIO | None = None):
        self.passes = [p if isinstance(p, Pass) else get(p) for p in passes]
        self.verify, self.print_stats = verify, print_stats
        self.print_after_all, self.print_after_changed = print_after_all, print_after_changed
        self.stream = stream
        self.stats = Stats()

    def run(self, graph: ir.Graph) -> ir.Graph:
        """The optimised graph: a copy, so the caller's graph never changes."""
        g = graph.copy()
        self.stats = Stats()
        done: list[str] = []
        for p in self.passes:
            self.stats.records.append(self._run_one(p, g, done))
            done.append(p.name)
        if self.print_stats:
            self._write(f"# ---- pass statistics ----\n{self.stats}\n")
        return g

    def _run_one(self, p: Pass, g: ir.Graph, done: list[str]) -> PassRecord:
        where = f"in pass {p.name}, after [{', '.join(done)}]"
        before, start = len(g.nodes), time.perf_counter()
        try:
            counts = p(g)
        except ir.LaminaError as e:
            raise PassError(f"{where}: {e}") from e
        except Exception as e:  # a bug in the pass itself: still say which pass
            raise PassError(f"{where}: {type(e).__name__}: {e}") from e
        record = PassRecord(p.name, counts, before, len(g.nodes), time.perf_counter() - start)
        if self.verify:
            try:
                ir.verify(g)
            except ir.LaminaError as e:
                raise PassError(f"{where}: {e}") from e
        if self.print_after_all or (self.print_after_changed and record.changed):
            what = ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "unchanged"
            self._write(f"# ---- IR after {p.name} ({what}) ----\n{g}\n")
        return record

    def _write(self, text: str) -> None:
        (self.stream or sys.stderr).write(text)
