"""The textual IR: printed for people, parsed back by `parse`.

    graph @main(%x: f32[1,3,8,8]) -> (f32[1,4,8,8]) {
      @conv1.weight: f32[4,3,3,3]
      %conv1: f32[1,4,8,8] = conv2d(%x, @conv1.weight) {pad=[1,1,1,1]}
      return %conv1
    }

Weights appear by name and type; their data travels beside the text (see `save`).
Attributes equal to their declared default are not printed. `#` starts a comment.
A graph-valued attribute (the body of a fused operator) prints as a nested graph, its
lines indented under the node that holds it:

    %f: f32[4] = fused_elementwise(%x, @b) {body=graph @body(%p0: f32[4], %p1: f32[4]) -> (f32[4]) {
      %t: f32[4] = add(%p0, %p1)
      %y: f32[4] = relu(%t)
      return %y
    }}
"""

from __future__ import annotations

import json
import re

from .errors import LaminaError, ParseError
from .graph import Graph, Value, infer_types
from .ops import registry
from .tensor_type import DTYPES, TensorType

# ---- parsing -------------------------------------------------------------------------------
# The reader is recursive descent: a list inside a list costs 2 Python frames, a graph
# attribute inside a node of a graph attribute about 6. Nesting beyond MAX_DEPTH is refused as
# a parse error, which keeps the reader within ~400 frames, well inside the interpreter's
# default limit of 1000 even when called from deep code (printed graphs nest 2 or 3 deep).
MAX_DEPTH = 64
_TOKEN = re.compile(
    r"""(?P<ws>\s+|\#[^\n]*)
      | (?P<ref>[%@][A-Za-z0-9_.]+)
      | (?P<num>-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|inf|nan)(?![A-Za-z0-9_]))
      | (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<punct>->|[()\[\]{},:=])
    """,
    re.VERBOSE,
)


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                self.fail(f"unexpected character {text[pos]!r}", pos)
            if m.lastgroup != "ws":
                self.toks.append((m.lastgroup, m.group(), pos))
            pos = m.end()
        self.toks.append(("eof", "", len(text)))
        self.i = 0
        self.depth = 0  # lists and graph attributes open around the current token

    def fail(self, msg: str, pos: int | None = None):
        if pos is None:
            pos = self.toks[self.i][2]
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        raise ParseError(f"line {line}, column {col}: {msg}")

    def peek(self, value: str | None = None) -> bool:
        text = self.toks[self.i][1]
        return value is None or text == value

    def next(self, kind: str | None = None, value: str | None = None) -> str:
        k, text, _ = self.toks[self.i]
        if (kind and k != kind) or (value and text != value):
            self.fail(f"expected {value or kind}, found {text or 'end of input'!r}")
        self.i += 1
        return text

    def accept(self, value: str) -> bool:
        if self.toks[self.i][1] == value:
            self.i += 1
            return True
        return False

    def comma_list(self, item, close: str) -> list:
        out = []
        if not self.accept(close):
            out.append(item())
            while self.accept(","):
                out.append(item())
            self.next(value=close)
        return out

    # grammar --------------------------------------------------------------------------------
    def type(self) -> TensorType:
        dtype = self.next("ident")
        if dtype not in DTYPES:
            self.fail(f"unknown dtype {dtype!r}", self.toks[self.i - 1][2])
        pos = self.toks[self.i][2]
        self.next(value="[")
        shape = self.comma_list(self.dim, "]")
        try:
            return TensorType(tuple(shape), dtype)
        except LaminaError as e:  # a shape too large
            self.fail(str(e), pos)

    def dim(self) -> int | str:
        if self.toks[self.i][0] == "ident":  # a symbolic dimension: f32[N,3,224,224]
            return self.next("ident")
        text = self.next("num")
        if not text.isdigit():
            self.fail(f"dimension must be a non-negative integer, found {text!r}",
                      self.toks[self.i - 1][2])
        return int(text)

    def literal(self):
        kind, text, pos = self.toks[self.i]
        if text == "[" or (kind == "ident" and text == "graph"):
            if self.depth == MAX_DEPTH:
                self.fail(f"attribute values nested more than {MAX_DEPTH} deep", pos)
            self.depth += 1  # a failure ends the parse: no need to restore it on the way out
            if self.accept("["):
                value = tuple(self.comma_list(self.literal, "]"))
            else:
                value = self.graph(None)  # a nested graph: the body of a fused operator
            self.depth -= 1
            return value
        self.i += 1
        if kind == "num":
            return float(text) if re.search(r"[.eEna]", text) else int(text)
        if kind == "str":
            return json.loads(text)
        if text in ("true", "false"):
            return text == "true"
        self.i -= 1
        self.fail(f"expected an attribute value, found {text!r}")

    def graph(self, weights: dict | None) -> Graph:
        self.next(value="graph")
        g = Graph(self.next("ref")[1:])
        self.next(value="(")

        def arg():
            pos = self.toks[self.i][2]
            name = self.next("ref")
            self.next(value=":")
            return self.define(g.add_input, name[1:], self.type(), pos)

        self.comma_list(arg, ")")
        self.next(value="->")
        self.next(value="(")
        ret_types = self.comma_list(self.type, ")")
        self.next(value="{")
        env: dict[str, Value] = {"%" + v.name: v for v in g.inputs}
        while not self.peek("return"):
            start = self.toks[self.i][2]
            if self.toks[self.i][1].startswith("@"):
                name = self.next("ref")
                self.next(value=":")
                data = (weights or {}).get(name[1:])
                env[name] = self.define(g.add_weight, name[1:], self.type(), start)
                if data is not None:
                    try:
                        held = TensorType.of(data)
                    except LaminaError as e:  # a dtype the IR lacks
                        self.fail(f"weight {name} data: {e}", start)
                    if held != env[name].type:
                        self.fail(f"weight {name} data is {held}, declared {env[name].type}",
                                  start)
                    g.weights[name[1:]] = data
            else:
                self.node(g, env, start)
        ret_pos = self.toks[self.i][2]
        self.next(value="return")
        if self.accept("}"):  # `return` of nothing
            outs = []
        else:
            outs = self.comma_list(lambda: self.use(env), "}")
        g.outputs = outs
        if [v.type for v in outs] != ret_types:
            self.fail("returned types do not match the signature", ret_pos)
        return g

    def define(self, add, name: str, type: TensorType, pos: int) -> Value:
        """Declare a graph input or weight; a duplicate name is a parse error at `pos`."""
        try:
            return add(name, type=type)
        except LaminaError as e:
            self.fail(str(e), pos)

    def use(self, env) -> Value:
        pos = self.toks[self.i][2]
        name = self.next("ref")
        if name not in env:
            self.fail(f"use of undefined value {name}", pos)
        return env[name]

    def node(self, g: Graph, env, start: int) -> None:
        results = []
        while True:
            results.append((self.next("ref"), self.toks[self.i - 1][2]))
            self.next(value=":")
            results[-1] += (self.type(),)
            if not self.accept(","):
                break
        self.next(value="=")
        op = self.next("ident")
        self.next(value="(")
        args = self.comma_list(lambda: self.use(env), ")")
        attrs = {}
        if self.accept("{"):
            def kv():
                key = self.next("ident")
                self.next(value="=")
                attrs[key] = self.literal()
            self.comma_list(kv, "}")
        first = results[0][0][1:]
        where = f"node %{first} ({op})"
        try:
            opdef = registry.get(op)
            opdef.check_arity(len(args), where)
            attrs = opdef.check_attrs(attrs, where)
            inferred = infer_types(opdef, [a.type for a in args], attrs, where)
        except LaminaError as e:
            self.fail(str(e), start)
        declared = [t for _, _, t in results]
        if list(inferred) != declared:
            self.fail(f"{where}: declared types {', '.join(map(str, declared))} but the "
                      f"operator infers {', '.join(map(str, inferred))}", start)
        for ref, pos, _ in results:
            if ref in env or g.has_name(ref[1:]):
                self.fail(f"value {ref} defined twice", pos)
        node = g.create_node(op, args, attrs, name=first, types=declared)
        for (ref, _, _), value in zip(results, node.outputs):
            if value.name != ref[1:]:  # the graph picks output names; the text's win
                g.rename(value, ref[1:])
            env[ref] = value


def parse(text: str, weights: dict | None = None) -> Graph:
    """Read IR text back into a Graph; `weights` supplies the data of declared weights."""
    p = _Parser(text)
    g = p.graph(weights)
    p.next("eof")
    return g
