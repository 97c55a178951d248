"""Graphviz DOT export: fused regions drawn as clusters (`compiler.graphviz` renders it).

A `fused_elementwise` node is drawn as a cluster holding its body's operators; a
`fused_conv2d` / `fused_linear` as a cluster holding the conv (or matmul) with its bias, the
residual add and the activation. Every other node is one box; graph inputs and outputs are
ovals. DOT node ids are value names (`conv1`, and `fused/t` inside the cluster `cluster_fused`;
Graphviz renames ids that start with `%`), so they can be found again in the SVG, each
node's `<title>`.
"""

from __future__ import annotations

import itertools

from .graph import Graph, Node, Value
from .ops.registry import attr_key
from .printer import format_attr

_FUSED_STYLE = 'style="rounded,filled"; color="#3b73b9"; fillcolor="#eaf1fb"'


class _Dot:
    def __init__(self, g: Graph):
        self.g = g
        self.lines: list[str] = []
        self.src: dict[int, str] = {}  # id(Value) -> DOT node that produces it

    def node(self, nid: str, label: str, indent: str = "  ", **attrs) -> None:
        extra = "".join(f', {k}="{_esc(v)}"' for k, v in attrs.items())
        self.lines.append(f'{indent}"{_esc(nid)}" [label="{_esc(label)}"{extra}];')

    def edge(self, src: str, dst: str, label: str = "") -> None:
        lab = f' [label="{_esc(label)}"]' if label else ""
        self.lines.append(f'  "{_esc(src)}" -> "{_esc(dst)}"{lab};')

    def feed(self, v: Value, dst: str) -> None:
        """An edge carrying `v` into `dst` (weights are shown in labels, not as edges)."""
        if v.kind != "weight":
            self.edge(self.src[id(v)], dst, str(v.type))


def to_dot(g: Graph) -> str:
    """DOT text for `g`, fused regions as clusters (see the module docstring)."""
    d = _Dot(g)
    d.lines += [f'digraph "{_esc(g.name)}" {{', "  rankdir=TB;",
                '  graph [fontname="monospace", fontsize=11];',
                '  node [shape=box, fontname="monospace", fontsize=10];',
                '  edge [fontname="monospace", fontsize=8];']
    for v in g.inputs:
        d.node(v.name, f"{v.ref}\n{v.type}", shape="oval")
        d.src[id(v)] = v.name
    for n in g.nodes:
        if n.op == "fused_elementwise":
            _fused_elementwise(d, n)
        elif n.op in ("fused_conv2d", "fused_linear"):
            _fused_epilogue(d, n)
        else:
            nid = n.outputs[0].name
            d.node(nid, _label(n.op, _attrs(n), n.inputs, n.outputs))
            for v in n.inputs:
                d.feed(v, nid)
            for o in n.outputs:
                d.src[id(o)] = nid
    for i, v in enumerate(g.outputs):
        d.node(f"return {i}", f"return {i}\n{v.type}", shape="oval")
        if v.kind != "weight":
            d.edge(d.src[id(v)], f"return {i}")
    d.lines.append("}")
    return "\n".join(d.lines)


def _fused_elementwise(d: _Dot, n: Node) -> None:
    body: Graph = n.attrs["body"]
    cluster = n.outputs[0].name
    d.lines.append(f'  subgraph "cluster_{_esc(cluster)}" {{')
    d.lines.append(f'    label="{_esc(f"fused_elementwise %{cluster}")}"; {_FUSED_STYLE};')
    outer = dict(zip((id(p) for p in body.inputs), n.inputs))  # body parameter -> node input
    local: dict[int, str] = {}
    edges: list[tuple[Value, str]] = []
    for b in body.nodes:
        nid = f"{cluster}/{b.outputs[0].name}"
        weights = [outer[id(v)] for v in b.inputs if id(v) in outer
                   and outer[id(v)].kind == "weight"]
        d.node(nid, _label(b.op, _attrs(b), weights, b.outputs), indent="    ",
               style="filled", fillcolor="white")
        for v in b.inputs:
            edges.append((v, nid))
        for o in b.outputs:
            local[id(o)] = nid
    d.lines.append("  }")
    for v, nid in edges:
        if id(v) in local:
            d.edge(local[id(v)], nid)
        else:
            d.feed(outer[id(v)], nid)
    result = body.outputs[0]
    d.src[id(n.outputs[0])] = local.get(id(result)) or d.src[id(outer[id(result)])]


def _fused_epilogue(d: _Dot, n: Node) -> None:
    cluster, main = n.outputs[0].name, "conv2d" if n.op == "fused_conv2d" else "linear"
    d.lines.append(f'  subgraph "cluster_{_esc(cluster)}" {{')
    d.lines.append(f'    label="{_esc(f"{n.op} %{cluster}")}"; {_FUSED_STYLE};')
    conv_attrs = {k: v for k, v in _attrs(n).items() if k not in ("act", "alpha")}
    chain = [(f"{cluster}/{main}", _label(main, conv_attrs, n.inputs[1:3], ()))]
    if len(n.inputs) > 3:
        chain.append((f"{cluster}/residual", "add residual"))
    if n.attrs.get("act", "none") != "none":
        act = n.attrs["act"] + (f" {{alpha={n.attrs['alpha']}}}"
                                if n.attrs["act"] == "leaky_relu" else "")
        chain.append((f"{cluster}/act", act))
    chain[-1] = (chain[-1][0], f"{chain[-1][1]}\n{n.outputs[0].ref}: {n.outputs[0].type}")
    for nid, label in chain:
        d.node(nid, label, indent="    ", style="filled", fillcolor="white")
    d.lines.append("  }")
    for (a, _), (b, _) in itertools.pairwise(chain):
        d.edge(a, b)
    for v in n.inputs[:3]:
        d.feed(v, chain[0][0])
    if len(n.inputs) > 3:
        d.feed(n.inputs[3], f"{cluster}/residual")
    d.src[id(n.outputs[0])] = chain[-1][0]


def _attrs(n: Node) -> dict:
    """Attributes that differ from their defaults (as the text format prints them)."""
    specs = n.opdef.attrs
    return {k: v for k, v in n.attrs.items() if not isinstance(v, Graph)
            and (k not in specs or attr_key(v) != attr_key(specs[k].default))}


def _label(op: str, attrs: dict, inputs, outputs) -> str:
    head = op + (" {" + ", ".join(f"{k}={format_attr(v)}" for k, v in attrs.items()) + "}"
                 if attrs else "")
    lines = [head, *(v.ref for v in inputs if v.kind == "weight")]
    lines += [f"{o.ref}: {o.type}" for o in outputs]
    return "\n".join(lines)


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
