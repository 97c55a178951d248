"""Graphviz DOT export of a graph (networkx builds it; `dot` renders it where installed)."""

from __future__ import annotations

import networkx as nx

from .graph import Graph
from .text import format_attrs


def to_dot(g: Graph) -> str:
    """DOT text: inputs and outputs as ovals, nodes as boxes labelled with op and type,
    weights folded into their node's label; nodes with a `group` attribute are clustered."""
    d = nx.MultiDiGraph(name=g.name)
    for v in g.inputs:
        d.add_node(f"in:{v.name}", label=f"%{v.name}\\n{v.type}", shape="oval")
    for i, n in enumerate(g.nodes):
        weights = [v.ref for v in n.inputs if v.kind == "weight"]
        label = "\\n".join([f"{n.op}{format_attrs(n)}", *weights,
                            ", ".join(f"%{o.name}: {o.type}" for o in n.outputs)])
        d.add_node(f"n{i}", label=_escape(label), shape="box")
    index = {n: f"n{i}" for i, n in enumerate(g.nodes)}
    for n in g.nodes:
        for v in n.inputs:
            if v.kind != "weight":
                src = index[v.node] if v.node is not None else f"in:{v.name}"
                d.add_edge(src, index[n], label=str(v.type))
    for i, v in enumerate(g.outputs):
        d.add_node(f"out{i}", label=f"return {i}\\n{v.type}", shape="oval")
        d.add_edge(index[v.node] if v.node is not None else f"in:{v.name}", f"out{i}")
    lines = [f'digraph "{g.name}" {{', "  rankdir=TB;", '  node [fontname="monospace"];']
    for name, attrs in d.nodes(data=True):
        lines.append(f'  "{name}" [{_attrs(attrs)}];')
    for u, v, attrs in d.edges(data=True):
        lines.append(f'  "{u}" -> "{v}" [{_attrs(attrs)}];')
    lines.append("}")
    return "\n".join(lines)


def _escape(s: str) -> str:
    return s.replace('"', '\\"')


def _attrs(attrs: dict) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in attrs.items())
