"""Numeric bisection, reproducers, the profiler and the helpers they stand on, in process.

Wrong passes are Pass objects handed to bisect() directly (nothing is registered), or
registered through monkeypatch where a name is needed."""

import numpy as np
import pytest

import compiler
import ir
import passes
from backends import reference
from compiler.tools import bisection, graphviz, profiler, replay, repro, stepping
from compiler.tools.numerics import Error, retype, same
from tests.compiler.cli_models import build, build_elementwise

PIPELINE = ["eliminate_dropout", "fold_batch_norm", "fuse_conv_activation", "fuse_elementwise"]


def _scale_conv_weight(factor):
    def fn(graph):
        for node in graph.nodes:
            if node.op in ("conv2d", "fused_conv2d"):
                name = node.inputs[1].name
                graph.weights[name] = (graph.weights[name] * np.float32(factor)).astype(
                    np.float32)
                return {"weights": 1}
        return {}

    return fn


def test_clean_pipeline_finds_nothing():
    g, x = build()
    report = compiler.bisect(g, x, opt_level=3)
    assert report.ok and report.culprit is None and report.kind == "ok"
    assert [s.name for s in report.stages[1:]] == passes.pipeline(3)
    folded = next(s for s in report.stages if s.name == "fold_batch_norm")
    assert folded.deviation.abs > 0 and folded.ok  # approximate, and within its contract
    assert all(s.deviation.abs == 0 for s in report.stages[1:] if s.contract.exact)
    assert report.final.rel < 1e-5
    assert "no disagreement" in str(report)


def test_wrong_exact_pass_is_named_with_its_node():
    g, x = build()
    bad = passes.Pass("scale_conv", _scale_conv_weight(1.001), passes.EXACT)
    report = compiler.bisect(g, x, passes=[*PIPELINE[:2], bad, *PIPELINE[2:]])
    assert report.kind == "pass" and report.culprit == "scale_conv"
    assert len(report.stages) == 4 and not report.stages[-1].ok
    node = report.node
    assert node.node == "conv" and node.op == "conv2d"
    # after folding, %conv computes what %bn did: the unoptimised value it is measured against
    assert node.original == "bn" and node.matched_by == "value"
    assert node.error.abs > 0 and node.error.rel > 1e-4 and node.error.ulp > 100
    assert node.before is not None and node.before.abs > 0
    text = str(report)
    assert "culprit: scale_conv" in text and "first diverging node: %conv (conv2d)" in text


def test_first_node_keeps_its_name_when_nothing_renamed_it():
    g, x = build()
    bad = passes.Pass("scale_conv", _scale_conv_weight(2.0), passes.EXACT)
    report = compiler.bisect(g, x, passes=[bad])
    assert report.culprit == "scale_conv"
    assert (report.node.node, report.node.original, report.node.matched_by) == (
        "conv", "conv", "name")


def test_contracts_are_honoured():
    g, x = build()
    # a 1e-6 relative change: within an approximate contract, a breach of an exact one
    lenient = passes.Pass("nudge", _scale_conv_weight(1 + 1e-6), passes.approximate(1e-3, 1e-5))
    assert compiler.bisect(g, x, passes=[lenient]).ok
    strict = passes.Pass("nudge", _scale_conv_weight(1 + 1e-6), passes.EXACT)
    assert compiler.bisect(g, x, passes=[strict]).culprit == "nudge"


def test_a_renamed_wrong_node_is_named_and_matched_by_value():
    g, x = build()

    def swap_tanh(graph):  # replaces tanh by sigmoid under a new name
        node = next(n for n in graph.nodes if n.op == "tanh")
        with graph.inserting_before(node):
            new = graph.call("sigmoid", node.inputs[0], name="sneaky")
        graph.replace_all_uses_with(node.output, new)
        graph.erase_node(node)
        return {"swapped": 1}

    report = compiler.bisect(g, x, passes=[passes.Pass("swap", swap_tanh, passes.EXACT)])
    assert report.culprit == "swap"
    assert report.node.node == "sneaky" and report.node.before is None
    assert report.node.matched_by == "value" and report.node.original is not None


def test_crashing_pass_is_named(monkeypatch):
    def crash(graph):
        raise RuntimeError("boom")

    monkeypatch.setitem(passes.manager._PASSES, "crash_test", passes.Pass("crash_test", crash))
    g, x = build()
    report = compiler.bisect(g, x, passes=["eliminate_dropout", "crash_test"])
    assert report.kind == "pass-error" and report.culprit == "crash_test"
    assert "in pass crash_test, after [eliminate_dropout]" in report.detail


def test_wrong_backend_is_blamed_at_its_node(monkeypatch):
    real = bisection.build

    def fake_build(graph, backend, **options):  # a "backend" that miscomputes tanh
        ref = real(graph, "reference")
        if not any(n.op == "tanh" for n in graph.nodes):
            return ref
        return lambda *a: np.asarray(ref(*a)) + np.float32(0.01)

    monkeypatch.setattr(bisection, "build", fake_build)
    g, x = build_elementwise()
    report = compiler.bisect(g, x, passes=["eliminate_dropout"], backend="fake")
    assert report.kind == "backend" and report.culprit == "backend fake"
    assert report.node.node == "squash" and report.node.op == "tanh"


def test_repro_round_trip(tmp_path):
    g, x = build()
    bad = passes.Pass("scale_conv", _scale_conv_weight(1.01), passes.EXACT)
    report = compiler.bisect(g, x, passes=["eliminate_dropout", bad])
    path = tmp_path / "bug.npz"
    report.save_repro(path)
    loaded = repro.load(path)
    assert loaded.pipeline == ["eliminate_dropout", "scale_conv"] and loaded.kind == "bisect"
    assert str(loaded.graph) == str(g)
    np.testing.assert_array_equal(loaded.inputs[0], x)
    assert loaded.finding == report.finding()
    with pytest.raises(ir.LaminaError, match="unknown pass 'scale_conv'"):
        replay.replay(path)  # the pass is not registered: say so
    with pytest.raises(ir.LaminaError, match="not a Lamina reproducer"):
        repro.load(tmp_path / "missing.npz")


def test_repro_replays_a_registered_wrong_pass(tmp_path, monkeypatch):
    bad = passes.Pass("scale_conv_reg", _scale_conv_weight(1.01), passes.EXACT)
    monkeypatch.setitem(passes.manager._PASSES, bad.name, bad)
    g, x = build()
    report = compiler.bisect(g, x, passes=["eliminate_dropout", bad.name])
    report.save_repro(tmp_path / "bug.npz")
    result = replay.replay(tmp_path / "bug.npz")
    assert result.reproduced and "culprit: scale_conv_reg" in result.text


def test_retype_promotes_everything():
    g, x = build()
    g64 = retype(g)
    ir.verify(g64)
    assert all(v.type.dtype == "f64" for v in g64.values())
    assert [n.name for n in g64.nodes] == [n.name for n in g.nodes]
    (y64,) = reference.run(g64, x.astype(np.float64))
    (y32,) = reference.run(g, x)
    assert y64.dtype == np.float64 and Error.between(y32, y64).rel < 1e-6
    # fused bodies and dtype attributes follow
    fused = passes.optimize(g, opt_level=3)
    assert ir.verify(retype(fused)) is None
    c = ir.Graph("c")
    v = c.add_input("v", ir.TensorType((3,), "i32"))
    c.outputs = [c.call("cast", v, name="f", dtype="f32")]
    assert retype(c).outputs[0].type == ir.TensorType((3,), "f64")


def test_error_measures():
    a = np.array([1.0, 2.0, np.nan], np.float32)
    assert Error.between(a, a.astype(np.float64)).abs == 0  # NaN equals NaN
    b = np.nextafter(a, np.float32(3))
    e = Error.between(b, a.astype(np.float64))
    assert e.ulp == pytest.approx(1.0) and e.index == (1,)
    assert Error.between(np.array([np.nan], np.float32), np.array([1.0])).abs == np.inf
    assert not same(b, a, passes.EXACT) and same(b, a, passes.approximate(1e-6, 0))


def test_stepping_and_dump_dir(tmp_path):
    g, _ = build()
    steps = list(stepping.steps(g, passes.pipeline(3)))
    assert [s.index for s in steps] == list(range(1, len(steps) + 1))
    fold = next(s for s in steps if s.name == "fold_batch_norm")
    diff = fold.diff().splitlines()
    assert diff[0] == "--- before fold_batch_norm" and diff[1] == "+++ after fold_batch_norm"
    assert all(line[0] in "-+@" for line in diff)  # nothing but the change
    assert not next(s for s in steps if not s.changed).diff()
    written = stepping.write_dump_dir(tmp_path, g, steps)
    names = [p.name for p in written]
    assert names[0] == "00-input.ir" and names[-1] == "stats.txt"
    assert f"{fold.index:02d}-fold_batch_norm.ir" in names
    assert len(names) == 2 + sum(s.changed for s in steps)
    assert "fold_batch_norm" in (tmp_path / "stats.txt").read_text()


def test_profile_rows_and_flops():
    g, x = build()
    rows = compiler.profile(g, x, opt_level=3, repeat=2)
    optimised = passes.optimize(g, opt_level=3)
    assert sorted(r["node"] for r in rows) == sorted(n.name for n in optimised.nodes)
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert [r["seconds"] for r in rows] == sorted((r["seconds"] for r in rows), reverse=True)
    conv = next(r for r in rows if r["op"] == "fused_conv2d")
    out_size = 2 * 4 * 8 * 8
    assert conv["flops"] == 2 * out_size * 3 * 3 * 3 + 2 * out_size  # MACs, bias, relu
    assert conv["flops_exact"] and conv["gflops"] > 0 and conv["peak_gflops"] == 240.0
    fc = next(n for n in optimised.nodes if n.op == "linear")
    assert profiler.node_flops(fc) == (2 * 2 * 4 * 5 + 2 * 5, True)
    reshape = next(n for n in optimised.nodes if n.op == "reshape")
    assert profiler.node_flops(reshape) == (0, True)
    assert profiler.node_bytes(fc) == (2 * 4 + 5 * 4 + 5 + 2 * 5) * 4
    table = compiler.format_profile(rows)
    assert "total" in table and "GFLOP/s" in table and "peak: 240 GFLOP/s" in table


def test_dot_clusters_fused_regions():
    g, _ = build()
    dot = graphviz.to_dot(passes.optimize(g, opt_level=3))
    assert 'subgraph "cluster_out"' in dot and 'subgraph "cluster_conv"' in dot
    for name in ("out/squash", "out/gate", "out/out", "conv/conv2d", "conv/act", "fc", "x"):
        assert f'"{name}" [' in dot
    assert '"out/out" -> "return 0"' in dot


def test_progress_is_silent_when_not_a_terminal(capsys):
    from compiler.tools.progress import Progress

    with Progress("work", total=3) as bar:
        bar.advance()
    assert capsys.readouterr().err == ""

    class Tty:
        text = ""

        def isatty(self):
            return True

        def write(self, s):
            Tty.text += s

        def flush(self):
            pass

    with Progress("work", total=2, stream=Tty()) as bar:
        bar.advance(2)
    assert "work [" in Tty.text and Tty.text.endswith("\r")
