"""ONNX control flow (If, Loop, Scan) taken apart at import (compiler/frontends/onnx/control.py):
small models built with onnx.helper, run by Lamina's reference interpreter and its native
backend and compared with onnxruntime on the same model and inputs; and the refusals, which
name the node, of what a static graph cannot express."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper

import compiler
from backends.reference import run
from compiler import OnnxImportError, load_onnx
from compiler.frontends.onnx import control

from .onnx_util import compare, info, model, ort_run

N = helper.make_node
_rng = np.random.default_rng(23)
F, I64, B = np.float32, np.int64, np.bool_
BACKENDS = ["reference", "llvm"]


def r(*shape):
    return _rng.standard_normal(shape).astype(np.float32)


def body(nodes, inputs, outputs, name="body"):
    """A subgraph; inputs and outputs are (name, dtype, shape) triples."""
    return helper.make_graph(nodes, name, [info(*i) for i in inputs], [info(*o) for o in outputs])


def lamina(m, feeds: dict, backend: str):
    g = load_onnx(m, [a.shape for a in feeds.values()])
    if backend == "reference":
        return run(g, *feeds.values())
    out = compiler.compile(g, *feeds.values(), backend=backend)(*feeds.values())
    return list(out) if isinstance(out, tuple) else [out]


def check(m, feeds: dict, backend: str, rtol=1e-5, atol=1e-5):
    """Lamina's outputs against onnxruntime's: shapes, dtypes and values."""
    expected = ort_run(m, feeds)
    actual = lamina(m, feeds, backend)
    assert [np.shape(a) for a in actual] == [np.shape(e) for e in expected]
    compare(actual, expected, rtol, atol, backend)


# ---- If on a condition computed at run time ------------------------------------------------
def _if_model(cond_from_data: bool):
    """y = x * w if cond else x - 1; cond is an input, or sum(x) > 0 computed from x."""
    then = body([N("Mul", ["x", "w"], ["t"])], [], [("t", F, (2, 3))], "then")
    other = body([N("Sub", ["x", "one"], ["e"])], [], [("e", F, (2, 3))], "else")
    nodes = [N("If", ["c"], ["y"], name="pick", then_branch=then, else_branch=other)]
    inputs = {"x": r(2, 3), "w": r(2, 3)}
    if cond_from_data:
        nodes[:0] = [N("ReduceSum", ["x"], ["s"], keepdims=0), N("Greater", ["s", "zero"], ["c"])]
    else:
        inputs["c"] = np.array(True)
    return model(nodes, inputs, inits={"one": F(1), "zero": F(0)}, opset=13)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cond", [True, False])
def test_if_runtime_condition_input(cond, backend):
    m = _if_model(cond_from_data=False)
    check(m, {"x": r(2, 3), "w": r(2, 3), "c": np.array(cond)}, backend)


def test_if_runtime_condition_selects_with_where():
    g = load_onnx(_if_model(cond_from_data=False))
    assert [n.op for n in g.nodes].count("where") == 1
    assert {"mul", "sub"} <= {n.op for n in g.nodes}  # both branches are computed


@pytest.mark.parametrize("backend", BACKENDS)
def test_if_condition_computed_from_data(backend):
    m = _if_model(cond_from_data=True)
    x = r(2, 3)
    for sign in (1, -1):  # each branch taken once
        xs = sign * np.abs(x)
        check(m, {"x": xs, "w": r(2, 3)}, backend)


def test_if_runtime_condition_branches_of_different_shapes_refused():
    then = body([N("Identity", ["x"], ["t"])], [], [("t", F, (2, 3))], "then")
    other = body([N("ReduceSum", ["x"], ["e"], keepdims=0)], [], [("e", F, ())], "else")
    m = model([N("If", ["c"], ["y"], name="shapes_differ", then_branch=then,
                 else_branch=other)], {"x": r(2, 3), "c": np.array(True)}, opset=13)
    with pytest.raises(OnnxImportError, match=r"If \(node 'shapes_differ'\): a condition "
                                              r"computed at run time.*f32\[2,3\].*f32\[\]") as e:
        load_onnx(m)
    assert e.value.unsupported  # the harness's cue to try again with constant inputs


def test_if_constant_condition_inlines_the_branch_taken():
    then = body([N("Mul", ["x", "x"], ["t"])], [], [("t", F, (4,))], "then")
    other = body([N("Unsupported1", ["x"], ["e"], domain="nowhere")], [], [("e", F, (4,))])
    m = model([N("If", ["c"], ["y"], then_branch=then, else_branch=other)], {"x": r(4)},
              inits={"c": np.array(True)}, opset=13)
    g = load_onnx(m)  # the else branch, never taken, is never imported
    x = r(4)
    np.testing.assert_allclose(run(g, x)[0], x * x, rtol=1e-6)


# ---- Loop ----------------------------------------------------------------------------------
def _loop_body():
    """y_out = y_in * w + float(i) (w from the enclosing graph); scan output y_out + 1."""
    return body([N("Identity", ["c_in"], ["c_out"]),
                 N("Cast", ["i"], ["fi"], to=TensorProto.FLOAT),
                 N("Mul", ["y_in", "w"], ["yw"]), N("Add", ["yw", "fi"], ["y_out"]),
                 N("Add", ["y_out", "one"], ["s"])],
                [("i", I64, ()), ("c_in", B, ()), ("y_in", F, (3,))],
                [("c_out", B, ()), ("y_out", F, (3,)), ("s", F, (3,))])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("trips", [1, 4])
def test_loop_fixed_trip_count_with_scan_output(trips, backend):
    m = model([N("Loop", ["M", "c", "y0"], ["y", "scan"], body=_loop_body())],
              {"y0": r(3), "w": r(3)}, outputs=("y", "scan"),
              inits={"M": np.int64(trips), "c": np.array(True), "one": F(1)}, opset=13)
    feeds = {"y0": r(3), "w": r(3)}
    check(m, feeds, backend)
    y, scan = lamina(m, feeds, "reference")  # and by hand, independently of onnxruntime
    expect, rows = feeds["y0"], []
    for i in range(trips):
        expect = expect * feeds["w"] + i
        rows.append(expect + 1)
    np.testing.assert_allclose(y, expect, rtol=1e-6)
    np.testing.assert_allclose(scan, np.stack(rows), rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_loop_trip_count_folded_from_a_shape_no_condition(backend):
    """for i in range(x.shape[0]): acc += x[i]; scan output the running sums."""
    step = body([N("Identity", ["c_in"], ["c_out"]), N("Gather", ["x", "i"], ["row"], axis=0),
                 N("Add", ["acc_in", "row"], ["acc_out"]), N("Identity", ["acc_out"], ["s"])],
                [("i", I64, ()), ("c_in", B, ()), ("acc_in", F, (4,))],
                [("c_out", B, ()), ("acc_out", F, (4,)), ("s", F, (4,))])
    m = model([N("Shape", ["x"], ["shape"]), N("Gather", ["shape", "zero"], ["M"], axis=0),
               N("Loop", ["M", "", "acc0"], ["acc", "sums"], body=step)],
              {"x": r(5, 4), "acc0": r(4)}, outputs=("acc", "sums"),
              inits={"zero": np.int64(0)}, opset=13)
    check(m, {"x": r(5, 4), "acc0": r(4)}, backend)


def _while_model(trips=6):
    """while i < 6 and sum(y) < limit: y = 2 y + 0.5 (the condition computed at run time,
    no scan output)."""
    step = body([N("Mul", ["y_in", "two"], ["y2"]), N("Add", ["y2", "half"], ["y_out"]),
                 N("ReduceSum", ["y_out"], ["s"], keepdims=0),
                 N("Less", ["s", "limit"], ["c_out"])],
                [("i", I64, ()), ("c_in", B, ()), ("y_in", F, (3,))],
                [("c_out", B, ()), ("y_out", F, (3,))])
    nodes = [N("ReduceSum", ["y0"], ["s0"], keepdims=0), N("Less", ["s0", "limit"], ["c0"]),
             N("Loop", ["M", "c0", "y0"], ["y"], name="grow", body=step)]
    return model(nodes, {"y0": r(3), "limit": np.array(0, F)},
                 inits={"M": np.int64(trips), "two": F(2), "half": F(0.5)}, opset=13)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("limit", [-100.0, 3.0, 20.0, 1e6])  # 0, some, or all 6 iterations
def test_loop_condition_computed_at_run_time(limit, backend):
    y0 = np.float32([0.25, 0.5, 0.75])
    feeds = {"y0": y0, "limit": np.array(limit, F)}
    check(m := _while_model(), feeds, backend)
    y = lamina(m, feeds, "reference")[0]
    expect = y0.copy()  # by hand
    for _ in range(6):
        if not expect.sum() < limit:
            break
        expect = 2 * expect + 0.5
    np.testing.assert_allclose(y, expect, rtol=1e-6)


def test_loop_run_time_condition_with_scan_output_refused():
    m = model([N("Loop", ["M", "c", "y0"], ["y", "scan"], name="data_dependent",
                 body=_loop_body())], {"y0": r(3), "w": r(3), "c": np.array(True)},
              outputs=("y", "scan"), inits={"M": np.int64(3), "one": F(1)}, opset=13)
    with pytest.raises(OnnxImportError, match=r"Loop \(node 'data_dependent'\): its condition "
                                              r"is computed at run time.*scan output"):
        load_onnx(m)


def test_loop_run_time_trip_count_refused():
    m = model([N("Loop", ["M", "", "y0"], ["y", "scan"], name="runtime_trips",
                 body=_loop_body())], {"y0": r(3), "w": r(3), "M": np.array(3)},
              outputs=("y", "scan"), inits={"one": F(1)}, opset=13)
    with pytest.raises(OnnxImportError, match=r"Loop \(node 'runtime_trips'\): its trip count "
                                              r"is computed at run time"):
        load_onnx(m)


def test_loop_huge_trip_count_refused_at_once():
    m = model([N("Loop", ["M", "", "y0"], ["y", "scan"], name="huge", body=_loop_body())],
              {"y0": r(3), "w": r(3)}, outputs=("y", "scan"),
              inits={"M": np.int64(2**40), "one": F(1)}, opset=13)
    with pytest.raises(OnnxImportError, match=r"Loop \(node 'huge'\): its trip count asks for "
                                              rf"1099511627776 iterations.*{control.MAX_UNROLL}"):
        load_onnx(m)


def test_loop_run_time_condition_with_huge_trip_count_refused_at_once():
    m = _while_model(trips=2**62)  # a bound no loop reaches, as exporters write while loops
    with pytest.raises(OnnxImportError, match=r"Loop \(node 'grow'\): its condition is computed "
                                              r"at run time, so all 4611686018427387904 "
                                              r"possible iterations"):
        load_onnx(m)


def test_loop_that_does_not_end_within_the_limit_refused(monkeypatch):
    monkeypatch.setattr(control, "MAX_UNROLL", 7)
    m = model([N("Loop", ["", "c", "y0"], ["y", "scan"], name="endless", body=_loop_body())],
              {"y0": r(3), "w": r(3)}, outputs=("y", "scan"),
              inits={"c": np.array(True), "one": F(1)}, opset=13)
    with pytest.raises(OnnxImportError, match=r"Loop \(node 'endless'\): it did not end within "
                                              r"7 iterations"):
        load_onnx(m)


@pytest.mark.parametrize("backend", BACKENDS)
def test_loop_ending_on_a_condition_known_at_import(backend):
    """No trip count: the condition, computed from the iteration number, ends it (i < 3)."""
    step = body([N("Add", ["i", "one_i"], ["next"]), N("Less", ["next", "three"], ["c_out"]),
                 N("Add", ["y_in", "x"], ["y_out"]), N("Mul", ["y_out", "y_out"], ["s"])],
                [("i", I64, ()), ("c_in", B, ()), ("y_in", F, (2,))],
                [("c_out", B, ()), ("y_out", F, (2,)), ("s", F, (2,))])
    m = model([N("Loop", ["", "c", "y0"], ["y", "sq"], body=step)], {"y0": r(2), "x": r(2)},
              outputs=("y", "sq"), inits={"c": np.array(True), "one_i": np.int64(1),
                                          "three": np.int64(3)}, opset=13)
    check(m, {"y0": r(2), "x": r(2)}, backend)


def test_loop_body_failure_names_the_inner_node():
    step = body([N("Identity", ["c_in"], ["c_out"]),
                 N("Frobnicate", ["y_in"], ["y_out"], name="inner", domain="nowhere")],
                [("i", I64, ()), ("c_in", B, ()), ("y_in", F, (3,))],
                [("c_out", B, ()), ("y_out", F, (3,))])
    m = model([N("Loop", ["M", "", "y0"], ["y"], name="outer", body=step)], {"y0": r(3)},
              inits={"M": np.int64(2)}, opset=13)
    with pytest.raises(OnnxImportError, match=r"nowhere.Frobnicate \(node 'inner \(in "
                                              r"iteration 0 of Loop 'outer'\)'\)"):
        load_onnx(m)


# ---- Scan ----------------------------------------------------------------------------------
def _sum_body(shape):
    return body([N("Add", ["s_in", "row"], ["s_out"]), N("Mul", ["s_out", "row"], ["prod"])],
                [("s_in", F, shape), ("row", F, shape)],
                [("s_out", F, shape), ("prod", F, shape)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_scan_sums_rows(backend):
    m = model([N("Scan", ["s0", "x"], ["s", "o"], num_scan_inputs=1, body=_sum_body((4,)))],
              {"s0": r(4), "x": r(6, 4)}, outputs=("s", "o"), opset=11)
    feeds = {"s0": r(4), "x": r(6, 4)}
    check(m, feeds, backend)
    s = lamina(m, feeds, "reference")[0]
    np.testing.assert_allclose(s, feeds["s0"] + feeds["x"].sum(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scan_axes_and_directions(backend):
    """Scan along axis 1 of x (reversed) and axis 0 of z, outputs stacked along axes 1 and
    -1, the second reversed."""
    step = body([N("Add", ["s_in", "a"], ["t"]), N("Sub", ["t", "b"], ["s_out"]),
                 N("Identity", ["s_out"], ["e1"]), N("Mul", ["a", "b"], ["e2"])],
                [("s_in", F, (3,)), ("a", F, (3,)), ("b", F, (3,))],
                [("s_out", F, (3,)), ("e1", F, (3,)), ("e2", F, (3,))])
    m = model([N("Scan", ["s0", "x", "z"], ["s", "o1", "o2"], num_scan_inputs=2, body=step,
                 scan_input_axes=[1, 0], scan_input_directions=[1, 0],
                 scan_output_axes=[1, -1], scan_output_directions=[0, 1])],
              {"s0": r(3), "x": r(3, 5), "z": r(5, 3)}, outputs=("s", "o1", "o2"), opset=11)
    check(m, {"s0": r(3), "x": r(3, 5), "z": r(5, 3)}, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scan_opset8_batched(backend):
    """Opset 8: a batch axis 0 on the state and the scan input; sequence_lens left out."""
    m = model([N("Scan", ["", "s0", "x"], ["s", "o"], num_scan_inputs=1,
                 body=_sum_body((4,)), directions=[1])],
              {"s0": r(2, 4), "x": r(2, 5, 4)}, outputs=("s", "o"), opset=8)
    check(m, {"s0": r(2, 4), "x": r(2, 5, 4)}, backend)


# ---- nesting -------------------------------------------------------------------------------
def _nested_model():
    """A Loop whose body holds an If on the iteration's parity (known at import once the
    loop is unrolled) and, inside its then-branch, an If on a condition computed at run time
    that reads `x` from the outermost graph, two scopes up."""
    inner_then = body([N("Add", ["acc_in", "x"], ["a"])], [], [("a", F, (3,))], "inner_then")
    inner_else = body([N("Sub", ["acc_in", "x"], ["b"])], [], [("b", F, (3,))], "inner_else")
    even = body([N("If", ["flag"], ["e"], then_branch=inner_then, else_branch=inner_else)],
                [], [("e", F, (3,))], "even")
    odd = body([N("Mul", ["acc_in", "half"], ["o"])], [], [("o", F, (3,))], "odd")
    step = body([N("Identity", ["c_in"], ["c_out"]), N("Mod", ["i", "two"], ["parity"]),
                 N("Equal", ["parity", "zero"], ["is_even"]),
                 N("If", ["is_even"], ["acc_out"], then_branch=even, else_branch=odd),
                 N("Identity", ["acc_out"], ["s"])],
                [("i", I64, ()), ("c_in", B, ()), ("acc_in", F, (3,))],
                [("c_out", B, ()), ("acc_out", F, (3,)), ("s", F, (3,))])
    return model([N("Loop", ["M", "", "acc0"], ["acc", "trace"], body=step)],
                 {"acc0": r(3), "x": r(3), "flag": np.array(True)}, outputs=("acc", "trace"),
                 inits={"M": np.int64(5), "two": np.int64(2), "zero": np.int64(0),
                        "half": F(0.5)}, opset=13)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("flag", [True, False])
def test_if_nested_inside_loop(flag, backend):
    feeds = {"acc0": r(3), "x": r(3), "flag": np.array(flag)}
    m = _nested_model()
    check(m, feeds, backend)
    acc = feeds["acc0"]  # by hand
    for i in range(5):
        acc = (acc + feeds["x"] if flag else acc - feeds["x"]) if i % 2 == 0 else acc * 0.5
    np.testing.assert_allclose(lamina(m, feeds, "reference")[0], acc, rtol=1e-6)


def test_nested_loop_folds_parity_if_and_keeps_one_where_per_even_iteration():
    g = load_onnx(_nested_model())
    assert [n.op for n in g.nodes].count("where") == 3  # iterations 0, 2 and 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_scan_inside_loop(backend):
    """Each Loop iteration runs a Scan over the rows of x, from a state the loop carries."""
    scan = N("Scan", ["acc_in", "x"], ["acc_out", "rows"], num_scan_inputs=1,
             body=_sum_body((2,)))
    step = body([N("Identity", ["c_in"], ["c_out"]), scan],
                [("i", I64, ()), ("c_in", B, ()), ("acc_in", F, (2,))],
                [("c_out", B, ()), ("acc_out", F, (2,)), ("rows", F, (3, 2))])
    m = model([N("Loop", ["M", "", "acc0"], ["acc", "all"], body=step)],
              {"acc0": r(2), "x": r(3, 2)}, outputs=("acc", "all"),
              inits={"M": np.int64(3)}, opset=13)
    check(m, {"acc0": r(2), "x": r(3, 2)}, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_loop_body_constant_is_one_weight_for_all_iterations(backend):
    """A weight written as a Constant node inside the body: read once, not once per
    iteration (the passes would merge the copies; the import makes none)."""
    w = r(2, 3)
    step = body([N("Identity", ["c_in"], ["c_out"]),
                 N("Constant", [], ["wt"], value=helper.make_tensor(
                     "wt_value", TensorProto.FLOAT, [2, 3], w.reshape(-1).tolist())),
                 N("Mul", ["h_in", "wt"], ["hw"]), N("Tanh", ["hw"], ["h_out"])],
                [("i", I64, ()), ("c_in", B, ()), ("h_in", F, (2, 3))],
                [("c_out", B, ()), ("h_out", F, (2, 3))])
    m = model([N("Loop", ["M", "", "h0"], ["y"], body=step)], {"h0": r(2, 3)},
              inits={"M": np.int64(4)}, opset=13)
    g = load_onnx(m)
    assert len(g.params) == 1 and [n.op for n in g.nodes].count("mul") == 4
    check(m, {"h0": r(2, 3)}, backend)
