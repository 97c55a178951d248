"""Where intermediates live: byte offsets in one arena.

The passes issue provides `passes.plan_memory.plan_memory(graph)`; when it is importable
its offsets are used. Until then (and as a fallback) `simple_plan` is a greedy first-fit
over value lifetimes: a value lives from the node that produces it to its last reader, and
two values share bytes only if their lifetimes are disjoint. Graph outputs are written
straight into the caller's arrays and get no arena space.
"""

from __future__ import annotations

from dataclasses import dataclass

from ir import Graph, LaminaError

ALIGN = 64  # a cache line: every buffer starts on one, which also suits AVX-512 loads


@dataclass
class MemoryPlan:
    offsets: dict[str, int]  # value name -> byte offset in the arena
    arena_bytes: int


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def intermediates(graph: Graph) -> list:
    outs = {id(v) for v in graph.outputs}
    return [v for n in graph.nodes for v in n.outputs if id(v) not in outs]


def lifetimes(graph: Graph) -> dict[str, tuple[int, int]]:
    """value name -> (index of its producer, index of its last reader), for node outputs."""
    span = {}
    for i, node in enumerate(graph.nodes):
        for v in node.outputs:
            span[v.name] = (i, i)
        for v in node.inputs:
            if v.name in span:
                span[v.name] = (span[v.name][0], i)
    return span


def simple_plan(graph: Graph) -> MemoryPlan:
    """Greedy first-fit by start time; blocks are freed once their last reader has run."""
    span = lifetimes(graph)
    live: list[tuple[int, int, int]] = []  # (offset, size, last use)
    offsets, top = {}, 0
    for v in intermediates(graph):
        start, end = span[v.name]
        live = [blk for blk in live if blk[2] >= start]  # a reader at `start` still needs it
        size = _align(max(v.type.nbytes, 1))
        offset = _first_fit(sorted(live), size)
        live.append((offset, size, end))
        offsets[v.name] = offset
        top = max(top, offset + size)
    return MemoryPlan(offsets, top)


def _first_fit(blocks, size: int) -> int:
    cursor = 0
    for offset, sz, _ in blocks:
        if offset - cursor >= size:
            return cursor
        cursor = max(cursor, offset + sz)
    return cursor


def plan(graph: Graph) -> MemoryPlan:
    """The passes' memory plan if that module exists, else `simple_plan`; checked either way."""
    try:
        from passes.plan_memory import plan_memory
    except ImportError:
        return simple_plan(graph)
    theirs = plan_memory(graph)
    result = MemoryPlan({v.name: int(theirs.offsets[v.name]) for v in intermediates(graph)
                         if v.name in theirs.offsets}, int(theirs.arena_bytes))
    if len(result.offsets) != len(intermediates(graph)):
        raise LaminaError("the memory plan misses intermediate values: "
                          + ", ".join(v.name for v in intermediates(graph)
                                      if v.name not in result.offsets))
    check(graph, result)
    return result


def check(graph: Graph, mp: MemoryPlan) -> None:
    """Two intermediates whose lifetimes overlap must not share bytes (kernels are noalias).
    A sweep over start times: each value is compared with those still live."""
    span = lifetimes(graph)
    vals = sorted(intermediates(graph), key=lambda v: span[v.name])
    live: list = []
    for a in vals:
        a0 = span[a.name][0]
        oa, na = mp.offsets[a.name], a.type.nbytes
        if oa % 16 or oa + na > mp.arena_bytes:
            raise LaminaError(f"memory plan puts %{a.name} at {oa}, outside or misaligned in "
                              f"an arena of {mp.arena_bytes} bytes")
        live = [b for b in live if span[b.name][1] >= a0]
        for b in live:
            ob, nb = mp.offsets[b.name], b.type.nbytes
            if oa < ob + nb and ob < oa + na:
                raise LaminaError(f"memory plan overlaps %{a.name} and %{b.name}, which are "
                                  f"live at the same time")
        live.append(a)
