"""The pass manager: pipelines as data, lookup errors, instrumentation and failure reports."""

from __future__ import annotations

import io

import numpy as np
import pytest

import ir
import passes
from passes.manager import PassError

from .helpers import apply, ops, parse

TEXT = """
graph @main(%x: f32[2,4]) -> (f32[2,4]) {
  %d: f32[2,4] = dropout(%x) {ratio=0.3}
  %r: f32[2,4] = relu(%d)
  %dead: f32[2,4] = exp(%x)
  return %r
}
"""


def test_pipelines_are_named_lists_of_known_passes():
    assert set(passes.PIPELINES) == {"O0", "O1", "O2", "O3"}
    assert passes.pipeline(0) == [] and passes.pipeline("O3") == passes.PIPELINES["O3"]
    for level in range(1, 4):
        assert set(passes.pipeline(level - 1)) <= set(passes.pipeline(level))
    for name in {n for names in passes.PIPELINES.values() for n in names}:
        p = passes.get(name)
        assert p.name == name and "before:" in p.doc and "after:" in p.doc
        assert str(p.contract).startswith(("exact", "approximate"))


def test_unknown_pass_lists_the_known_ones():
    with pytest.raises(ir.LaminaError, match=r"unknown pass 'fold_everything'.*eliminate_dropout"):
        passes.get("fold_everything")
    with pytest.raises(ir.LaminaError, match=r"known passes: .*fuse_elementwise"):
        passes.optimize(parse(TEXT), passes=["eliminate_dropout", "fold_everything"])
    with pytest.raises(ir.LaminaError, match="unknown opt level 7"):
        passes.optimize(parse(TEXT), opt_level=7)
    with pytest.raises(ir.LaminaError, match="print_after_changed"):
        passes.optimize(parse(TEXT), prnt_after_all=True)


def test_optimize_leaves_the_callers_graph_alone():
    g = parse(TEXT)
    before = str(g)
    out = passes.optimize(g, opt_level=3)
    assert str(g) == before and out is not g
    assert ops(out) == {"relu": 1}
    assert passes.optimize(g, passes="eliminate_dead_code").nodes[-1].op == "relu"


def test_print_after_changed_shows_only_changing_passes():
    stream = io.StringIO()
    passes.optimize(parse(TEXT), passes=["eliminate_dropout", "fold_constants",
                                         "eliminate_dead_code"],
                    print_after_changed=True, stream=stream)
    text = stream.getvalue()
    assert "# ---- IR after eliminate_dropout (dropout=1) ----" in text
    assert "IR after fold_constants" not in text
    assert "# ---- IR after eliminate_dead_code (nodes=1) ----" in text
    assert text.count("graph @main") == 2 and "exp(" not in text.split("dead_code")[1]


def test_print_after_all_and_stats_table():
    stream = io.StringIO()
    _, stats = apply(["eliminate_dropout", "fold_constants"], parse(TEXT),
                     print_after_all=True, print_stats=True, stream=stream)
    text = stream.getvalue()
    assert "IR after fold_constants (unchanged)" in text
    assert [r.name for r in stats.records] == ["eliminate_dropout", "fold_constants"]
    first, second = stats.records
    assert first.changed and first.counts == {"dropout": 1} and not second.changed
    assert (first.nodes_before, first.nodes_after) == (3, 2) and first.seconds >= 0
    assert stats.rewrites() == {"eliminate_dropout.dropout": 1}
    table = str(stats)
    assert table.splitlines()[0].split() == ["pass", "changed", "rewrites", "nodes", "ms"]
    assert "eliminate_dropout" in table and "dropout=1" in table and "3 -> 2" in table
    assert "pass statistics" in text and table in text


def _break_types(graph):
    """A deliberately broken pass: rewires a value to one of another type."""
    relu = next(n for n in graph.nodes if n.op == "relu")
    bad = graph.add_weight("bad", np.zeros((3,), np.float32))
    relu.replace_input(relu.inputs[0], bad)
    return {"broken": 1}


def _crash(graph):
    raise KeyError("oops")


def test_a_broken_pass_is_reported_by_name():
    broken = passes.Pass("break_types", _break_types)
    with pytest.raises(PassError, match=r"in pass break_types, after \[eliminate_dropout, "
                                        r"fold_constants\]: .*%r \(relu\)"):
        apply(["eliminate_dropout", "fold_constants", broken], parse(TEXT))
    with pytest.raises(PassError, match=r"in pass crash, after \[\]: KeyError: 'oops'"):
        apply([passes.Pass("crash", _crash)], parse(TEXT))


def test_without_verify_a_broken_graph_is_caught_by_optimize():
    with pytest.raises(ir.VerifyError):
        passes.optimize(parse(TEXT), passes=[passes.Pass("break_types", _break_types)])


def test_compile_uses_the_pipelines():
    import compiler

    g = parse(TEXT)
    fn = compiler.compile(g, opt_level=1)
    assert "dropout" not in ops(fn.graph)
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(fn(x), np.maximum(x, 0))
