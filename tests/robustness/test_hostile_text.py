"""Hostile IR text (issue 20): attribute values and graph-valued attributes nested thousands
deep once raised RecursionError from `ir.parse`, and so from `lamina dump` and `lamina repro`.
The reader now refuses nesting beyond `MAX_DEPTH` with a ParseError naming the line and
column where the limit was crossed."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import ir
from compiler.tools import repro
from ir.text import MAX_DEPTH

from .isolate import ROOT


def _with_attr(value: str) -> str:
    return ("graph @main(%x: f32[2,3]) -> (f32[2,3]) {\n"
            f"  %y: f32[2,3] = relu(%x) {{bogus={value}}}\n"
            "  return %y\n}")


def _lists(depth: int) -> str:
    return _with_attr("[" * depth + "1" + "]" * depth)


def _graphs(depth: int) -> str:
    """`depth` fused_elementwise bodies, each inside the previous one's."""
    head = "graph @b(%p: f32[2,3]) -> (f32[2,3]) {\n  %q: f32[2,3] = fused_elementwise(%p) {body="
    tail = "}\n  return %q\n}"
    inner = "graph @b(%p: f32[2,3]) -> (f32[2,3]) {\n  %q: f32[2,3] = relu(%p)\n  return %q\n}"
    return _with_attr(head * (depth - 1) + inner + tail * (depth - 1))


def _nesting_error(text: str) -> str:
    with pytest.raises(ir.ParseError) as info:
        ir.parse(text)
    return str(info.value)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000, 100_000])
def test_deeply_nested_lists_are_refused_with_line_and_column(depth):
    msg = _nesting_error(_lists(depth))
    column = len("  %y: f32[2,3] = relu(%x) {bogus=") + MAX_DEPTH + 1
    assert msg.startswith(f"line 2, column {column}: "), msg
    assert f"nested more than {MAX_DEPTH} deep" in msg


def test_nesting_up_to_the_limit_is_read():
    """At the limit the value is read (and then refused for what it is: an unknown
    attribute), so the limit costs nothing short of it."""
    msg = _nesting_error(_lists(MAX_DEPTH))
    assert "nested" not in msg and "bogus" in msg


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 3000])
def test_deeply_nested_graph_attributes_are_refused(depth):
    msg = _nesting_error(_graphs(depth))
    assert f"nested more than {MAX_DEPTH} deep" in msg and msg.startswith("line "), msg


def test_nested_graphs_within_the_limit_do_not_exhaust_the_stack():
    """Graph nesting costs more stack per level than list nesting: MAX_DEPTH of it must
    still end in an ordinary ParseError, with the interpreter's default recursion limit and
    the frames pytest already uses."""
    msg = _nesting_error(_graphs(MAX_DEPTH))
    assert "nested" not in msg


def _lamina(*args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "compiler.cli", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def _one_line_error(result, *fragments) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_lamina_dump_and_repro_refuse_deep_nesting_in_one_line(tmp_path):
    text = _lists(5000)
    np.savez(tmp_path / "graph.npz", __ir__=np.array(text))
    _one_line_error(_lamina("dump", tmp_path / "graph.npz", cwd=tmp_path), "nested", "line 2")
    g = ir.Graph()
    g.outputs = [g.call("relu", g.add_input("x", ir.TensorType((2, 3))))]
    repro.save(tmp_path / "r.npz", g, [], [np.zeros((2, 3), np.float32)], kind="compile")
    with np.load(tmp_path / "r.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["__ir__"] = np.array(text)
    np.savez(tmp_path / "r.npz", **arrays)
    _one_line_error(_lamina("repro", tmp_path / "r.npz", cwd=tmp_path), "nested", "line 2")
