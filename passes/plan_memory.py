"""A liveness-based memory plan: where each intermediate buffer lives in one arena.

    plan = plan_memory(graph)
    plan.offsets["layer1.0.conv1"]   # byte offset in the arena, a multiple of ALIGN (64)
    plan.arena_bytes                 # the arena to allocate
    print(plan.summary())            # arena vs peak live vs naive (one buffer per value)

What is planned: every output of every node, except graph outputs (the caller owns those).
Graph inputs and weights are not in the arena either. reshape and flatten outputs get
buffers of their own (no aliasing), so a backend may always copy.

Liveness comes from the node order: a value is live from the node that defines it to the
last node that reads it, both included (so a node's output never shares storage with its
inputs: kernels need not be safe in place). A value nothing reads is live at its defining
node only. Buffers whose lifetimes overlap interfere (a networkx interval graph); buffers
are placed largest first at the best-fitting gap (the smallest free gap that holds them)
among the placements of the buffers they interfere with. Sizes are rounded up to ALIGN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

import ir
from ir import print_graph

ALIGN = 64


@dataclass
class MemoryPlan:
    offsets: dict[str, int]  # node-output value name -> byte offset in the arena
    arena_bytes: int  # bytes the arena needs (the highest offset + size)
    peak_bytes: int  # the most bytes live at one node: a lower bound for arena_bytes
    naive_bytes: int  # one buffer per intermediate, no sharing (sum of aligned sizes)
    sizes: dict[str, int] = field(default_factory=dict)  # value name -> aligned bytes
    lifetimes: dict[str, tuple[int, int]] = field(default_factory=dict)  # first, last node

    def summary(self) -> str:
        saved = 1 - self.arena_bytes / self.naive_bytes if self.naive_bytes else 0.0
        return (f"memory plan: {len(self.offsets)} buffers in an arena of "
                f"{_human(self.arena_bytes)} (peak live {_human(self.peak_bytes)}, naive "
                f"{_human(self.naive_bytes)}, {saved:.0%} saved)")

    def annotate(self, graph: ir.Graph) -> str:
        """The graph's IR with each node's arena range as a comment, and the summary."""
        notes = {}
        for node in graph.nodes:
            spans = [f"arena[{self.offsets[o.name]}:+{self.sizes[o.name]}]"
                     for o in node.outputs if o.name in self.offsets]
            if spans:
                notes[node] = ", ".join(spans)
        return f"{print_graph(graph, notes)}\n# {self.summary()}"


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


def aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def lifetimes(graph: ir.Graph) -> dict[str, tuple[int, int]]:
    """First and last node index at which each planned buffer is live."""
    outputs = {id(v) for v in graph.outputs}
    last: dict[int, int] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            last[id(v)] = i
    return {o.name: (i, last.get(id(o), i)) for i, node in enumerate(graph.nodes)
            for o in node.outputs if id(o) not in outputs}


def interference(spans: dict[str, tuple[int, int]]) -> nx.Graph:
    """Buffers as vertices, an edge where two lifetimes overlap (a sweep over start times)."""
    g = nx.Graph()
    g.add_nodes_from(spans)
    active: list[str] = []
    for name in sorted(spans, key=lambda n: spans[n]):
        start = spans[name][0]
        active = [a for a in active if spans[a][1] >= start]
        g.add_edges_from((a, name) for a in active)
        active.append(name)
    return g


def _best_fit(size: int, taken: list[tuple[int, int]]) -> int:
    """The start of the smallest gap holding `size` among occupied [lo, hi) ranges."""
    best, best_gap, cursor = None, None, 0
    for lo, hi in sorted(taken):
        gap = lo - cursor
        if gap >= size and (best_gap is None or gap < best_gap):
            best, best_gap = cursor, gap
        cursor = max(cursor, hi)
    return cursor if best is None else best


def _peak(spans: dict[str, tuple[int, int]], sizes: dict[str, int], n_nodes: int) -> int:
    delta = [0] * (n_nodes + 1)
    for name, (lo, hi) in spans.items():
        delta[lo] += sizes[name]
        delta[hi + 1] -= sizes[name]
    live = peak = 0
    for d in delta:
        live += d
        peak = max(peak, live)
    return peak


def plan_memory(graph: ir.Graph) -> MemoryPlan:
    """Arena offsets for every node output that is not a graph output (see module doc)."""
    spans = lifetimes(graph)
    types = {o.name: o.type for n in graph.nodes for o in n.outputs}
    sizes = {name: aligned(max(types[name].nbytes, 1)) for name in spans}  # empty: 64 too
    conflicts = interference(spans)
    offsets: dict[str, int] = {}
    for name in sorted(spans, key=lambda n: (-sizes[n], spans[n])):
        taken = [(offsets[o], offsets[o] + sizes[o]) for o in conflicts[name] if o in offsets]
        offsets[name] = _best_fit(sizes[name], taken)
    arena = max((offsets[n] + sizes[n] for n in offsets), default=0)
    return MemoryPlan(offsets, arena, _peak(spans, sizes, len(graph.nodes)),
                      sum(sizes.values()), sizes, spans)


def check(plan: MemoryPlan) -> None:
    """Raise LaminaError if two buffers that are live together overlap in the arena."""
    for a, b in interference(plan.lifetimes).edges:
        lo_a, lo_b = plan.offsets[a], plan.offsets[b]
        if lo_a < lo_b + plan.sizes[b] and lo_b < lo_a + plan.sizes[a] \
                and plan.sizes[a] and plan.sizes[b]:
            raise ir.LaminaError(f"buffers %{a} and %{b} are live together but overlap")
