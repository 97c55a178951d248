"""Printing the textual IR (see `ir.text` for the format, and `parse` to read it back).

The printer reads graphs only through their attributes, so it imports nothing of the graph
module: `Graph.__str__` uses it.
"""

from __future__ import annotations

import json
import math

from .ops import registry


def format_attr(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else {"inf": "inf", "-inf": "-inf"}.get(
            repr(value), "nan")
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "[" + ",".join(format_attr(v) for v in value) + "]"
    if isinstance(value, int):
        return str(value)
    return print_graph(value)  # the one other attribute kind: a graph


def format_attrs(node) -> str:
    specs = node.opdef.attrs
    shown = {k: v for k, v in node.attrs.items()
             if k not in specs or specs[k].default is registry.REQUIRED
             or registry.attr_key(v) != registry.attr_key(specs[k].default)}
    if not shown:
        return ""
    return " {" + ", ".join(f"{k}={format_attr(v)}" for k, v in shown.items()) + "}"


def format_node(node) -> str:
    outs = ", ".join(f"{v.ref}: {v.type}" for v in node.outputs)
    args = ", ".join(v.ref for v in node.inputs)
    return f"{outs} = {node.op}({args}){format_attrs(node)}"


def print_graph(g, comments: dict | None = None) -> str:
    """The graph as text; `comments` maps a node to a note printed after it (`# ...`)."""
    sig = ", ".join(f"{v.ref}: {v.type}" for v in g.inputs)
    rets = ", ".join(str(v.type) for v in g.outputs)
    lines = [f"graph @{g.name}({sig}) -> ({rets}) {{"]
    lines += [f"  {v.ref}: {v.type}" for v in g.params.values()]
    for node in g.nodes:
        note = comments.get(node) if comments else None
        text = format_node(node).replace("\n", "\n  ")  # nested graphs indent one level
        lines.append(f"  {text}" + (f"  # {note}" if note else ""))
    lines.append("  return " + ", ".join(v.ref for v in g.outputs))
    lines.append("}")
    return "\n".join(lines)
