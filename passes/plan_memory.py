"""A liveness-based memory plan: where each intermediate buffer lives in one arena.

    plan = plan_memory(graph)
    plan.offsets["layer1.0.conv1"]   # byte offset in the arena (a buffer's: a multiple of 64)
    plan.aliases["features.1"]       # ("features.concat", 1024): stored inside that buffer
    plan.arena_bytes                 # the arena to allocate
    print(plan.summary())            # arena vs peak live vs naive (one buffer per value)

What is planned: every output of every node, except graph outputs (the caller owns those).
Graph inputs and weights are not in the arena either.

Some values need no storage of their own (`aliases`), so no copy is made of them:
- an input of a `concat` lives in its slot of the concat's output (its producer writes it
  there) when the slots are contiguous: every dimension before the axis is 1, as along
  channels at batch 1. The last concat is served first, so where DenseNet concatenates the
  same feature maps again and again, the block's final concat holds them all and the earlier
  concats, whose inputs then lie side by side in it, become views of its prefix;
- the output of a view (reshape, flatten, a transpose moving only axes of size 1) and its
  input are the same bytes: one lives in the other's storage.
Neither applies to a graph input, weight or output. A backend skips the copy of an input
that already sits where the node would write it (see `in_place`).

Liveness comes from the node order: a value is live from the node that defines it to the
last node that reads it, both included (so a node's output never shares storage with its
inputs: kernels need not be safe in place; aliases keep this, see `check`). A value nothing
reads is live at its defining node only; a buffer is live while any value stored in it is.
Buffers whose lifetimes overlap interfere (a networkx interval graph); buffers are placed
largest first at the best-fitting gap (the smallest free gap that holds them) among the
placements of the buffers they interfere with. Sizes are rounded up to ALIGN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

import ir
from ir import print_graph
from ir.ops.shape_rules import axis as norm_axis

ALIGN = 64


@dataclass
class MemoryPlan:
    offsets: dict[str, int]  # every planned value (aliases too) -> byte offset in the arena
    arena_bytes: int  # bytes the arena needs (the highest offset + size)
    peak_bytes: int  # the most bytes live at one node: a lower bound for arena_bytes
    naive_bytes: int  # one buffer per intermediate, no sharing (sum of aligned sizes)
    sizes: dict[str, int] = field(default_factory=dict)  # buffer -> aligned bytes; alias -> bytes
    lifetimes: dict[str, tuple[int, int]] = field(default_factory=dict)  # buffer -> first, last
    aliases: dict[str, tuple[str, int]] = field(default_factory=dict)  # value -> (buffer, offset)

    def summary(self) -> str:
        saved = 1 - self.arena_bytes / self.naive_bytes if self.naive_bytes else 0.0
        held = f", {len(self.aliases)} values in place" if self.aliases else ""
        return (f"memory plan: {len(self.lifetimes)} buffers{held} in an arena of "
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
    aliases = find_aliases(graph, set(spans))
    live = {name: span for name, span in spans.items() if name not in aliases}
    for name, (buf, _) in aliases.items():  # a buffer lives as long as what it holds
        live[buf] = (min(live[buf][0], spans[name][0]), max(live[buf][1], spans[name][1]))
    sizes = {name: aligned(max(types[name].nbytes, 1)) for name in live}  # empty: 64 too
    conflicts = interference(live)
    offsets: dict[str, int] = {}
    for name in sorted(live, key=lambda n: (-sizes[n], live[n])):
        taken = [(offsets[o], offsets[o] + sizes[o]) for o in conflicts[name] if o in offsets]
        offsets[name] = _best_fit(sizes[name], taken)
    arena = max((offsets[n] + sizes[n] for n in offsets), default=0)
    peak = _peak(live, sizes, len(graph.nodes))
    for name, (buf, off) in aliases.items():
        offsets[name] = offsets[buf] + off
        sizes[name] = types[name].nbytes
    naive = sum(aligned(max(types[name].nbytes, 1)) for name in spans)
    return MemoryPlan(offsets, arena, peak, naive, sizes, live, aliases)


# ---- values stored inside other values' buffers --------------------------------------------
def concat_slots(node: ir.Node) -> list[int] | None:
    """The byte offset of each input's slot in a concat's output, when each slot is one
    contiguous range (every dimension before the axis is 1); None otherwise."""
    if node.op != "concat":
        return None
    shape = node.outputs[0].shape
    if any(d != 1 for d in shape[:norm_axis(node.attrs["axis"], len(shape))]):
        return None
    slots, at = [], 0
    for x in node.inputs:
        slots.append(at)
        at += x.type.nbytes
    return slots


def is_view(node: ir.Node) -> bool:
    """Whether the node's output holds its input's bytes unchanged, in the same order."""
    if node.op in ("reshape", "flatten"):
        return True
    if node.op == "transpose":
        shape = node.inputs[0].shape
        moved = [p for p in node.attrs["perm"] if shape[p] != 1]
        return moved == sorted(moved)
    return False


def in_place(node: ir.Node, offsets: dict[str, int]) -> list[bool]:
    """For each input, whether it already sits where the node would copy it (its concat slot,
    or a view's output), so that the copy is skipped: what backends do."""
    slots = concat_slots(node) or ([0] if is_view(node) else None)
    out = offsets.get(node.outputs[0].name) if node.outputs else None
    if slots is None or out is None:
        return [False] * len(node.inputs)
    return [offsets.get(x.name) == out + slot for x, slot in zip(node.inputs, slots)]


def find_aliases(graph: ir.Graph, planned: set[str]) -> dict[str, tuple[str, int]]:
    """Value -> (the buffer it is stored in, byte offset there), for the values of `planned`
    that a concat's output or a view holds (see the module doc)."""
    parent: dict[str, tuple[str, int]] = {}  # value -> (value holding it, offset in that)

    def root(name: str) -> tuple[str, int]:
        offset = 0
        while name in parent:
            name, at = parent[name]
            offset += at
        return name, offset

    def place(child: str, host: str, offset: int) -> bool:
        if child not in planned or host not in planned or child in parent \
                or root(host)[0] == child:  # already placed, or a loop
            return False
        parent[child] = (host, offset)
        return True

    for node in reversed(graph.nodes):  # the last concat first: it holds the most
        slots = concat_slots(node)
        if slots is not None:
            out = node.outputs[0].name
            for x, slot in zip(node.inputs, slots):
                place(x.name, out, slot)
            _place_view_of_neighbours(node, slots, root, place)
    for node in reversed(graph.nodes):
        if is_view(node):
            x, y = node.inputs[0].name, node.outputs[0].name
            place(x, y, 0) or place(y, x, 0)
    return {name: root(name) for name in parent}


def _place_view_of_neighbours(node: ir.Node, slots: list[int], root, place) -> None:
    """A concat whose inputs already lie side by side in order, in one buffer, is that
    range of it: DenseNet's earlier concats, inside the block's final one."""
    where = [root(x.name) for x in node.inputs]
    buf, start = where[0]
    if all(w == (buf, start + slot) for w, slot in zip(where, slots)):
        place(node.outputs[0].name, buf, start)


def check(plan: MemoryPlan, graph: ir.Graph | None = None) -> None:
    """Raise LaminaError if two buffers that are live together overlap in the arena, or a
    value stored inside a buffer leaves it. Given the graph the plan is for, also if a value
    is used outside its buffer's lifetime, or a node writes over a value that is still to
    be read (its own inputs included: kernels are not safe in place), counting only the
    copies a backend makes (`in_place`)."""
    for a, b in interference(plan.lifetimes).edges:
        lo_a, lo_b = plan.offsets[a], plan.offsets[b]
        if lo_a < lo_b + plan.sizes[b] and lo_b < lo_a + plan.sizes[a] \
                and plan.sizes[a] and plan.sizes[b]:
            raise ir.LaminaError(f"buffers %{a} and %{b} are live together but overlap")
    for name, (buf, off) in plan.aliases.items():
        if not 0 <= off <= plan.sizes[buf] - plan.sizes[name] \
                or plan.offsets[name] != plan.offsets[buf] + off:
            raise ir.LaminaError(f"%{name} is not inside its buffer %{buf}")
    if graph is not None:
        _check_uses(plan, graph)


def _check_uses(plan: MemoryPlan, graph: ir.Graph) -> None:
    spans = lifetimes(graph)
    for name, (lo, hi) in spans.items():
        buf = plan.aliases.get(name, (name, 0))[0]
        first, last = plan.lifetimes[buf]
        if lo < first or hi > last:
            raise ir.LaminaError(f"%{name} is used outside the lifetime of its buffer %{buf}")
    values = {o.name: o for n in graph.nodes for o in n.outputs if o.name in spans}
    for t, node in enumerate(graph.nodes):
        live = [name for name, (lo, hi) in spans.items() if lo < t <= hi]
        for w_lo, w_hi in _writes(node, plan.offsets):
            for name in live:
                at = plan.offsets[name]
                if at < w_hi and w_lo < at + values[name].type.nbytes:
                    raise ir.LaminaError(f"node %{node.name} ({node.op}) writes over "
                                         f"%{name}, which is still to be read")


def _writes(node: ir.Node, offsets: dict[str, int]) -> list[tuple[int, int]]:
    """The arena byte ranges a node writes, once copies in place are skipped: a concat
    writes the slots of the inputs it copies, a view in place nothing."""
    done = in_place(node, offsets)
    if any(done):
        slots = concat_slots(node) or [0]
        base = offsets[node.outputs[0].name]
        return [(base + slot, base + slot + x.type.nbytes) for x, slot, skip in
                zip(node.inputs, slots, done) if not skip and x.type.nbytes]
    return [(offsets[o.name], offsets[o.name] + o.type.nbytes) for o in node.outputs
            if o.name in offsets and o.type.nbytes]
