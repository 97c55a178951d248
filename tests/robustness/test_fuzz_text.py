"""Fuzzing the IR text reader: printed graphs of every operator (the IR cases), corrupted by
deleting, duplicating or swapping lines and tokens, changing numbers, operators and
attributes, or given attribute values nested up to 5,000 deep (lists, graph-valued
attributes, both, closed or not). `ir.parse` must either raise an ir.LaminaError or return a
graph that `ir.verify` accepts, prints back to the same text, and that the reference
interpreter runs (or refuses with an ir.LaminaError); nesting beyond `ir.text.MAX_DEPTH` is
always a ParseError, never a RecursionError.

Each target runs a fixed, derandomised budget of examples (a few seconds). For a longer,
randomised run set LAMINA_FUZZ_EXAMPLES, e.g.
`LAMINA_FUZZ_EXAMPLES=50000 python -m pytest tests/robustness/test_fuzz_text.py`: every
target then runs that many examples, drawn afresh each time."""

from __future__ import annotations

import contextlib
import os
import re
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ir
from backends import reference
from ir.ops import registry
from ir.text import MAX_DEPTH
from tests.ir.cases import CASES

CORPUS = sorted({str(c.graph()) for c in CASES})
TOKEN = re.compile(r'%[\w.]+|@[\w.]+|-?\d+\.?\d*(?:[eE][-+]?\d+)?|[A-Za-z_][\w.]*|"[^"]*"|->|\S')
NUMBER = re.compile(r"(?<![\w.])-?\d+\.?\d*(?:[eE][-+]?\d+)?")  # not the 32 of f32
OPS = registry.names()
ATTRS = sorted({m.group(0) for t in CORPUS
                for m in re.finditer(r"[a-z_]+=(?:\[[^\]]*\]|[^,}\s]+)", t)})
ODD_INTS = ["0", "-1", "1", "2", "3", "7", "-3", "65536", "99999999999999999999",
            "9223372036854775808", "-9223372036854775809", "281474976710656"]
ODD_FLOATS = ["1e308", "nan", "inf", "-inf", "0.5", "-0.0", "0", "1e-45"]
# semantic mutations (numbers, operators, attributes) more often than structural ones: they
# are the ones that still parse, and so reach shape inference and the interpreter
KINDS = ["del_line", "dup_line", "swap_lines", "del_token", "dup_token", "swap_tokens",
         "copy_token"] + ["number"] * 6 + ["bump"] * 6 + ["op"] * 3 + ["attr"] * 3
LONG_RUN = int(os.environ.get("LAMINA_FUZZ_EXAMPLES", "0"))


def budget(examples: int):
    """Hypothesis settings: `examples` replayed the same way every run, or LAMINA_FUZZ_EXAMPLES
    drawn afresh when set."""
    return settings(max_examples=LONG_RUN or examples, deadline=None,
                    derandomize=not LONG_RUN, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


SETTINGS = budget(2000)


def _splice(text: str, span: tuple[int, int], new: str) -> str:
    return text[:span[0]] + new + text[span[1]:]


def _mutate(draw, text: str) -> str:
    lines = text.split("\n")
    tokens = [m.span() for m in TOKEN.finditer(text)]
    kind = draw(st.sampled_from(KINDS))
    pick = lambda seq: draw(st.sampled_from(seq))
    i, j = pick(range(len(lines) - 1, -1, -1)), pick(range(len(lines)))  # the header rarely
    if kind == "del_line":
        return "\n".join(lines[:i] + lines[i + 1:])
    if kind == "dup_line":
        return "\n".join([*lines[:i], lines[i], *lines[i:]])
    if kind == "swap_lines":
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    a, b = sorted([pick(tokens), pick(tokens)])
    if kind == "del_token":
        return _splice(text, a, "")
    if kind == "dup_token":
        return _splice(text, a, text[a[0]:a[1]] * 2 if draw(st.booleans()) else
                       text[a[0]:a[1]] + " " + text[a[0]:a[1]])
    if kind == "swap_tokens":
        if a[1] > b[0]:
            return text
        return (text[:a[0]] + text[b[0]:b[1]] + text[a[1]:b[0]] + text[a[0]:a[1]]
                + text[b[1]:])
    if kind == "copy_token":
        return _splice(text, a, text[b[0]:b[1]])
    if kind in ("number", "bump"):
        numbers = [m.span() for m in NUMBER.finditer(text)]
        if not numbers:
            return text
        span = pick(numbers)
        value = text[span[0]:span[1]]
        integer = re.fullmatch(r"-?\d+", value) is not None
        if kind == "number":
            return _splice(text, span, pick(ODD_INTS if integer else ODD_FLOATS))
        if not integer:
            return text
        return _splice(text, span, str(int(value) + pick([-2, -1, 1, 2, 5])))
    if kind == "op":
        calls = [m.span(1) for m in re.finditer(r"= ([a-z_0-9]+)\(", text)]
        return _splice(text, pick(calls), pick(OPS)) if calls else text
    attr = pick(ATTRS)  # add (or repeat) an attribute taken from another operator
    at = text.find(") {")
    if at >= 0:
        return text[:at + 3] + attr + ", " + text[at + 3:]
    at = text.find(")\n")
    return text[:at + 1] + " {" + attr + "}" + text[at + 1:] if at >= 0 else text


@st.composite
def corrupted(draw) -> str:
    text = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(1, 3))):
        text = _mutate(draw, text)
    return text


def _array(t: ir.TensorType, rng) -> np.ndarray:
    if t.dtype == "bool":
        return rng.random(t.shape) > 0.5
    return (rng.standard_normal(t.shape) * 3).astype(t.np_dtype)


@SETTINGS
@given(corrupted())
def test_parse_accepts_only_verifiable_graphs(text):
    try:
        g = ir.parse(text)
    except ir.LaminaError:
        return
    ir.verify(g, check_weights=False)
    assert str(ir.parse(str(g))) == str(g)
    if any(v.type.size > 1 << 16 for v in g.values()):
        return
    rng = np.random.default_rng(0)
    for name, v in g.params.items():
        g.weights[name] = _array(v.type, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # log(-1) and the like
        with contextlib.suppress(ir.LaminaError):
            reference.run(g, *(_array(v.type, rng) for v in g.inputs))


def test_corpus_covers_every_operator():
    used = {m.group(1) for t in CORPUS for m in re.finditer(r"= ([a-z_0-9]+)\(", t)}
    assert set(OPS) <= used, sorted(set(OPS) - used)


# ---- deep nesting -----------------------------------------------------------------------------
DEPTHS = [1, 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 1000, 5000]
_GRAPH_OPEN = ("graph @n(%p: f32[1]) -> (f32[1]) {\n"
               "  %q: f32[1] = fused_elementwise(%p) {body=")
_GRAPH_CLOSE = "}\n  return %q\n}"
_GRAPH_INNER = "graph @n(%p: f32[1]) -> (f32[1]) {\n  %q: f32[1] = relu(%p)\n  return %q\n}"


@st.composite
def nested_value(draw) -> tuple[str, int]:
    """An attribute value nested `depth` deep, and that depth: lists, graph attributes or
    both in turn; closed, left open, or with a stray token at the bottom."""
    depth = draw(st.sampled_from(DEPTHS) | st.integers(1, 300))
    shape = draw(st.sampled_from(["lists", "graphs", "mixed"]))
    end = draw(st.sampled_from(["closed", "open", "stray"]))
    opens, closes = [], []
    for k in range(depth):
        as_list = shape == "lists" or (shape == "mixed" and k % 2 == 0)
        opens.append("[" if as_list else _GRAPH_OPEN)
        closes.append("]" if as_list else _GRAPH_CLOSE)
    bottom = {"closed": "1" if shape == "lists" else _GRAPH_INNER, "open": "",
              "stray": draw(st.sampled_from(["%x", "->", "graph", "{", "]", "}"]))}[end]
    if shape != "lists" and end == "closed":  # a graph's body is itself one level
        opens, closes = opens[:-1], closes[:-1]
    tail = "".join(reversed(closes)) if end != "open" else ""
    return "".join(opens) + bottom + tail, depth


@st.composite
def deeply_nested(draw) -> tuple[str, int]:
    """A corpus graph with a nested value as one of its attributes (added, or replacing one)."""
    text = draw(st.sampled_from(CORPUS))
    value, depth = draw(nested_value())
    attrs = list(re.finditer(r"\b([a-z_]+)=(\[[^\]]*\]|[^,}\s]+)", text))
    if attrs and draw(st.booleans()):
        m = draw(st.sampled_from(attrs))
        return _splice(text, m.span(2), value), depth
    name = draw(st.sampled_from(["bogus", "shape", "axes", "body", "pads", "perm"]))
    at = text.find(") {")
    if at >= 0:
        return text[:at + 3] + f"{name}={value}, " + text[at + 3:], depth
    at = text.find(")\n")
    return text[:at + 1] + f" {{{name}={value}}}" + text[at + 1:], depth


@budget(120)
@given(deeply_nested())
def test_deep_nesting_is_a_parse_error_not_a_recursion_error(case):
    text, depth = case
    try:
        g = ir.parse(text)
    except ir.LaminaError as e:
        if depth > MAX_DEPTH:
            assert isinstance(e, ir.ParseError), repr(e)
        return
    assert depth <= MAX_DEPTH, "a value nested beyond MAX_DEPTH was read"
    ir.verify(g, check_weights=False)
    assert str(ir.parse(str(g))) == str(g)
