"""The IR: SSA values with mandatory tensor types, nodes applying one operator, and graphs.

A graph has named inputs, nodes in topological order, outputs, and weights: the
weight *values* are part of the structure (a name and a type), their numpy data
lives apart in `graph.weights`. Editing goes through the methods here so that use
lists stay correct; they follow torch.fx (replace_all_uses_with, an erase that
refuses a node in use, insertion points as context managers).
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator, Sequence

import networkx as nx
import numpy as np

from .errors import LaminaError, ShapeError, VerifyError
from .ops import registry
from .printer import print_graph
from .tensor_type import TensorType

# names may start with a digit: torch's state_dict keys do (`0.weight` in a Sequential)
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]*")


class Value:
    """An SSA value: a graph input, a weight, or an output of a node."""

    __slots__ = ("index", "kind", "name", "node", "type", "uses")

    def __init__(self, name: str, type: TensorType, kind: str, node: Node | None = None, index=0):
        self.name, self.type, self.kind, self.node, self.index = name, type, kind, node, index
        self.uses: list[Node] = []  # one entry per operand position that reads this value

    @property
    def ref(self) -> str:
        return ("@" if self.kind == "weight" else "%") + self.name

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    def __repr__(self) -> str:
        return f"{self.ref}: {self.type}"


class Node:
    """One operator applied to input values, producing one or more output values."""

    __slots__ = ("attrs", "graph", "inputs", "op", "outputs")

    def __init__(self, graph: Graph, op: str, inputs: Sequence[Value], attrs: dict):
        self.graph, self.op, self.attrs = graph, op, attrs
        self.inputs: tuple[Value, ...] = ()
        self.outputs: list[Value] = []
        self._set_inputs(inputs)

    @property
    def opdef(self) -> registry.OpDef:
        return registry.get(self.op)

    @property
    def name(self) -> str:
        return self.outputs[0].name if self.outputs else f"<{self.op}>"

    @property
    def output(self) -> Value:
        (out,) = self.outputs
        return out

    @property
    def users(self) -> list[Node]:
        """Distinct nodes reading any output, in first-use order."""
        return list(dict.fromkeys(u for o in self.outputs for u in o.uses))

    def _set_inputs(self, inputs: Sequence[Value]) -> None:
        for v in self.inputs:
            v.uses.remove(self)
        self.inputs = tuple(inputs)
        for v in self.inputs:
            v.uses.append(self)

    def replace_input(self, old: Value, new: Value) -> None:
        self._set_inputs([new if v is old else v for v in self.inputs])

    def __repr__(self) -> str:
        return f"%{self.name} = {self.op}({', '.join(v.ref for v in self.inputs)})"


class Graph:
    def __init__(self, name: str = "main"):
        self.name = name
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self.params: dict[str, Value] = {}  # weight values: name and type (structure)
        self.weights: dict[str, np.ndarray] = {}  # weight data, kept apart from the structure
        self._names: set[str] = set()
        self._insert_at: int | None = None  # None: append

    # ---- names -------------------------------------------------------------------------
    def fresh_name(self, base: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.]", "_", base) or "v"
        if not NAME.fullmatch(base):
            base = "v" + base
        if base not in self._names:
            return base
        for i in itertools.count(1):
            if f"{base}_{i}" not in self._names:
                return f"{base}_{i}"
        raise AssertionError  # pragma: no cover

    def has_name(self, name: str) -> bool:
        return name in self._names

    def rename(self, value: Value, name: str) -> None:
        """Give `value` a new name, unused in this graph."""
        self._names.discard(value.name)
        value.name = self._claim(name)

    def _claim(self, name: str) -> str:
        if not NAME.fullmatch(name):
            raise LaminaError(f"invalid value name {name!r}")
        if name in self._names:
            raise LaminaError(f"value name {name!r} defined twice")
        self._names.add(name)
        return name

    # ---- building ----------------------------------------------------------------------
    def add_input(self, name: str, type: TensorType) -> Value:
        v = Value(self._claim(name), type, "input")
        self.inputs.append(v)
        return v

    def add_weight(self, name: str, array=None, type: TensorType | None = None) -> Value:
        """Declare a weight; with `array`, also store its data (type taken from it)."""
        if array is not None:
            array = np.asarray(array)
            type = TensorType.of(array)
        if type is None:
            raise LaminaError(f"weight @{name} needs data or a type")
        v = Value(self._claim(name), type, "weight")
        self.params[name] = v
        if array is not None:
            self.weights[name] = array
        return v

    def create_node(self, op: str, inputs: Sequence[Value], attrs: dict | None = None,
                    name: str | None = None, types: Sequence[TensorType] | None = None) -> Node:
        """Insert a node at the insertion point; its output types are inferred unless given."""
        opdef = registry.get(op)
        where = f"node %{name or op} ({op})"
        opdef.check_arity(len(inputs), where)
        attrs = opdef.check_attrs(attrs or {}, where)
        if types is None:
            types = infer_types(opdef, [v.type for v in inputs], attrs, where)
        node = Node(self, op, inputs, attrs)
        first = ""
        for i, t in enumerate(types):  # further outputs are named after the first: %s, %s.1
            out_name = self.fresh_name(name or op) if i == 0 else self.fresh_name(f"{first}.{i}")
            first = first or out_name
            node.outputs.append(Value(self._claim(out_name), t, "node", node, i))
        if self._insert_at is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(self._insert_at, node)
            self._insert_at += 1
        return node

    def call(self, op: str, *inputs: Value, name: str | None = None, **attrs):
        """Shorthand for create_node returning the output value (a tuple for several)."""
        outs = self.create_node(op, inputs, attrs, name).outputs
        return outs[0] if len(outs) == 1 else tuple(outs)

    @contextlib.contextmanager
    def inserting_before(self, node: Node) -> Iterator[None]:
        saved, self._insert_at = self._insert_at, self.nodes.index(node)
        try:
            yield
        finally:
            self._insert_at = saved

    @contextlib.contextmanager
    def inserting_after(self, node: Node) -> Iterator[None]:
        saved, self._insert_at = self._insert_at, self.nodes.index(node) + 1
        try:
            yield
        finally:
            self._insert_at = saved

    # ---- editing -----------------------------------------------------------------------
    def replace_all_uses_with(self, old: Value, new: Value) -> int:
        """Rewire every reader of `old` (and the graph outputs) to `new`; returns the count."""
        if old.type != new.type:
            raise VerifyError(f"cannot replace {old!r} with {new!r}: types differ")
        users = list(dict.fromkeys(old.uses))
        for user in users:
            user.replace_input(old, new)
        n_out = sum(o is old for o in self.outputs)
        self.outputs = [new if o is old else o for o in self.outputs]
        return len(users) + n_out

    def erase_node(self, node: Node) -> None:
        for out in node.outputs:
            if out.uses or any(o is out for o in self.outputs):
                raise VerifyError(
                    f"cannot erase node %{node.name} ({node.op}): its value is in use")
        node._set_inputs(())
        self.nodes.remove(node)
        for out in node.outputs:
            self._names.discard(out.name)

    def remove_weight(self, name: str) -> None:
        v = self.params[name]
        if v.uses:
            raise VerifyError(f"cannot remove weight @{name}: it is in use")
        del self.params[name]
        self.weights.pop(name, None)
        self._names.discard(name)

    # ---- views -------------------------------------------------------------------------
    def values(self) -> Iterator[Value]:
        yield from self.inputs
        yield from self.params.values()
        for n in self.nodes:
            yield from n.outputs

    def to_networkx(self) -> nx.MultiDiGraph:
        """Dataflow view: one vertex per node, one edge per value read (producer -> reader)."""
        g = nx.MultiDiGraph()
        for n in self.nodes:
            g.add_node(n)
        for n in self.nodes:
            for v in n.inputs:
                if v.node is not None:
                    g.add_edge(v.node, n, value=v)
        return g

    def topological_sort(self) -> None:
        """Reorder nodes topologically, keeping the current order where it is free to."""
        order = {n: i for i, n in enumerate(self.nodes)}
        try:
            self.nodes = list(nx.lexicographical_topological_sort(self.to_networkx(), order.get))
        except nx.NetworkXUnfeasible:
            raise VerifyError("graph has a cycle") from None

    def copy(self) -> Graph:
        """A structural copy with the same names; weight arrays are shared (passes replace
        them, never mutate), graph-valued attributes (fused bodies) are copied too."""
        g = Graph(self.name)
        env = {id(v): g.add_input(v.name, v.type) for v in self.inputs}
        env |= {id(v): g.add_weight(name, type=v.type) for name, v in self.params.items()}
        g.weights = dict(self.weights)
        for n in self.nodes:
            attrs = {k: a.copy() if isinstance(a, Graph) else a for k, a in n.attrs.items()}
            new = g.create_node(n.op, [env[id(v)] for v in n.inputs], attrs, name=n.name,
                                types=[v.type for v in n.outputs])
            for old, out in zip(n.outputs, new.outputs):
                if out.name != old.name:
                    g.rename(out, old.name)
                env[id(old)] = out
        g.outputs = [env[id(v)] for v in self.outputs]
        return g

    def __str__(self) -> str:
        return print_graph(self)

    def __repr__(self) -> str:
        return f"<Graph @{self.name}: {len(self.nodes)} nodes>"



registry.define_graph_kind(Graph)  # fused operators' bodies are graph-valued attributes

def infer_types(opdef: registry.OpDef, types, attrs, where: str) -> tuple[TensorType, ...]:
    """Run an operator's inference, naming the node in any error it raises."""
    symbolic = next((t for t in types if not t.is_static), None)
    if symbolic is not None:  # shape rules compute with sizes: a signature is bound first
        raise ShapeError(f"{where}: an operand has symbolic type {symbolic}; graphs hold "
                         "static types (bind the symbols to sizes, or compile with dynamic=)")
    try:
        return opdef.infer_types(types, attrs)
    except LaminaError as e:
        if str(e).startswith(where):
            raise
        raise type(e)(f"{where}: {e}") from None
