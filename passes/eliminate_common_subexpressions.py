"""Common subexpression elimination: one node per (operator, inputs, attributes).

    before:  %a: f32[4] = relu(%x)
             %b: f32[4] = relu(%x)
             %c: f32[4] = add(%a, %b)
             %d: f32[4] = add(%b, %a)
    after:   %a: f32[4] = relu(%x)
             %c: f32[4] = add(%a, %a)

Commutative operators (`OpDef.commutative`) match with their inputs in either order.
Attributes compare exactly (`registry.attr_key`: floats by repr, so 0.0 and -0.0 differ;
graph bodies by their text). Weights holding identical bytes of the same type are merged
too, so that constants folded twice become one. Every operator is deterministic (dropout's
mask comes from its seed), so merging is exact.
"""

from __future__ import annotations

import numpy as np

import ir
from ir.ops.registry import attr_key

from .manager import EXACT, graph_pass
from .patterns import drop_unused_weights


def _merge_weights(graph: ir.Graph) -> int:
    """Point readers of each duplicate weight at its first copy; drop the duplicates.

    Only weights that agree on type and on a few sampled elements are compared byte for
    byte, so a model's distinct weights (hundreds of MB in VGG) are not all copied out."""
    candidates: dict[tuple, list[ir.Value]] = {}
    for name, v in graph.params.items():
        data = graph.weights.get(name)
        if data is not None:
            candidates.setdefault((v.type, _sample(data)), []).append(v)
    dupes = []
    for group in candidates.values():
        kept: list[ir.Value] = []
        for v in group if len(group) > 1 else ():
            data = graph.weights[v.name]
            twin = next((k for k in kept if _same_bytes(graph.weights[k.name], data)), None)
            if twin is not None:
                graph.replace_all_uses_with(v, twin)
                dupes.append(v)
            else:
                kept.append(v)
    return drop_unused_weights(graph, dupes)


CHUNK = 1 << 20  # bytes compared at a time: no big temporary, and an early way out


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    """Byte for byte (so -0.0 and 0.0, or two NaN payloads, differ), read in place: keying
    by `tobytes()` copied every candidate, and a tied embedding (GPT-2's 154 MB, twice) cost
    0.2 s of a warm compile. Arrays whose samples agree but differ elsewhere mostly differ
    in the first chunk."""
    a = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    b = np.ascontiguousarray(b).reshape(-1).view(np.uint8)
    return a.size == b.size and all(np.array_equal(a[i:i + CHUNK], b[i:i + CHUNK])
                                    for i in range(0, a.size, CHUNK))


def _sample(data) -> bytes:
    """The bytes of at most 17 elements spread over the array: equal for equal arrays."""
    flat = data.reshape(-1)
    return flat[:: max(1, flat.size // 16)].tobytes()


def _key(node: ir.Node, number: dict[int, int]) -> tuple:
    args = [number[id(v)] for v in node.inputs]
    if node.opdef.commutative:
        args.sort()
    attrs = tuple((k, attr_key(v)) for k, v in node.attrs.items())
    return node.op, tuple(args), attrs


@graph_pass("eliminate_common_subexpressions", EXACT)
def eliminate_common_subexpressions(graph: ir.Graph) -> dict:
    """Merge duplicate weights, then nodes computing the same thing as an earlier node."""
    weights = _merge_weights(graph)
    number = {id(v): i for i, v in enumerate(graph.values())}  # a stable order for sorting
    seen: dict[tuple, ir.Node] = {}
    nodes = 0
    for node in list(graph.nodes):
        key = _key(node, number)
        twin = seen.get(key)
        if twin is None:
            seen[key] = node
            continue
        for old, new in zip(node.outputs, twin.outputs):
            graph.replace_all_uses_with(old, new)
        graph.erase_node(node)
        nodes += 1
    return {"nodes": nodes, "weights": weights}
