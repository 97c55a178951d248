"""The verifier: the invariants every pass must keep. Errors name the node and the fault."""

from __future__ import annotations

import networkx as nx

from .errors import LaminaError, VerifyError
from .graph import Graph, infer_types
from .ops import registry
from .tensor_type import TensorType


def verify(g: Graph, *, check_weights: bool = True) -> None:
    """Raise VerifyError unless `g` is well formed: every value is defined before use and
    typed as its operator infers, attributes are valid, there are no cycles, and (with
    `check_weights`) every weight has data of its declared type."""
    if not _in_order(g):  # only then can there be a cycle (it is said first, as a cycle)
        dag = g.to_networkx()
        if not nx.is_directed_acyclic_graph(dag):
            cycle = nx.find_cycle(dag)
            names = " -> ".join(f"%{u.name}" for u, _, _ in cycle)
            raise VerifyError(f"graph has a cycle: {names}")
    defined = {id(v) for v in g.inputs} | {id(v) for v in g.params.values()}
    seen_names: set[str] = set()
    for v in [*g.inputs, *g.params.values()]:
        _unique(v.name, seen_names)
    for node in g.nodes:
        where = f"node %{node.name} ({node.op})"
        for i, v in enumerate(node.inputs):
            if id(v) not in defined:
                raise VerifyError(f"{where}: input {i} ({v.ref}) is used before it is defined")
        try:
            opdef = registry.get(node.op)
            opdef.check_arity(len(node.inputs), where)
            attrs = opdef.check_attrs(node.attrs, where)
            inferred = infer_types(opdef, [v.type for v in node.inputs], attrs, where)
        except LaminaError as e:
            raise VerifyError(str(e)) from None
        if attrs != node.attrs:
            raise VerifyError(f"{where}: attributes are not normalised ({node.attrs})")
        for key, body in attrs.items():
            if isinstance(body, Graph):
                try:
                    verify(body, check_weights=False)
                except VerifyError as e:
                    raise VerifyError(f"{where}: attribute {key}: {e}") from None
        actual = tuple(v.type for v in node.outputs)
        if inferred != actual:
            raise VerifyError(f"{where}: outputs typed {_types(actual)} but {node.op} infers "
                              f"{_types(inferred)}")
        for out in node.outputs:
            if out.node is not node:
                raise VerifyError(f"{where}: output {out.ref} does not point back to it")
            _unique(out.name, seen_names)
            defined.add(id(out))
    for i, v in enumerate(g.outputs):
        if id(v) not in defined:
            raise VerifyError(f"graph output {i} ({v.ref}) is not defined in the graph")
    _check_uses(g)
    if check_weights:
        for name, v in g.params.items():
            if name not in g.weights:
                raise VerifyError(f"weight @{name} has no data")
            if TensorType.of(g.weights[name]) != v.type:
                raise VerifyError(f"weight @{name} holds {TensorType.of(g.weights[name])}, "
                                  f"declared {v.type}")


def _in_order(g: Graph) -> bool:
    """Whether every node reads only values defined before it. A cycle breaks this in any
    order, so a graph in order needs no cycle search (networkx's view of the graph cost a
    third of a warm compile's verification, fused bodies included)."""
    defined = {id(v) for v in g.inputs} | {id(v) for v in g.params.values()}
    for node in g.nodes:
        if any(id(v) not in defined for v in node.inputs):
            return False
        defined.update(id(v) for v in node.outputs)
    return True


def _unique(name: str, seen: set[str]) -> None:
    if name in seen:
        raise VerifyError(f"value name '{name}' is defined twice")
    seen.add(name)


def _types(types) -> str:
    return ", ".join(map(str, types))


def _check_uses(g: Graph) -> None:
    """Use lists must match the operands exactly (editing primitives keep them so)."""
    expected: dict[int, int] = {}
    for node in g.nodes:
        for v in node.inputs:
            expected[id(v)] = expected.get(id(v), 0) + 1
    for v in g.values():
        if len(v.uses) != expected.get(id(v), 0):
            raise VerifyError(f"value {v.ref}: use list is stale ({len(v.uses)} recorded, "
                              f"{expected.get(id(v), 0)} actual)")
