"""Fuzzing the IR text reader: printed graphs of every operator (the IR cases), corrupted by
deleting, duplicating or swapping lines and tokens, changing numbers, operators and
attributes. `ir.parse` must either raise an ir.LaminaError or return a graph that `ir.verify`
accepts, prints back to the same text, and that the reference interpreter runs (or refuses
with an ir.LaminaError)."""

from __future__ import annotations

import contextlib
import re
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ir
from backends import reference
from ir.ops import registry
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
SETTINGS = settings(max_examples=2000, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


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
