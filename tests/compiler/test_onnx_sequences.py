"""ONNX sequence operators inside a model: split a tensor into a sequence, edit it, gather it
back into a tensor. Lamina resolves the sequence at import time; onnxruntime runs the same
file as the reference. A sequence that reaches the graph's boundary, or a position only
known at run time, is refused naming the node."""

import numpy as np
import pytest
from onnx import helper

import compiler
from compiler import OnnxImportError, load_onnx

from .onnx_util import compare, lamina_run, model, ort_run

X = np.arange(2 * 6 * 3, dtype=np.float32).reshape(2, 6, 3) / 7


def _i64(v):
    return np.asarray(v, np.int64)


CASES = {
    # split along 1 into pieces of 2 (the last shorter when it does not divide), insert one
    # piece again near the back, erase the first, concatenate along 2
    "split_edit_concat": (
        [helper.make_node("SplitToSequence", ["x", "two"], ["s"], axis=1),
         helper.make_node("SequenceAt", ["s", "minus_one"], ["last"]),
         helper.make_node("SequenceInsert", ["s", "last", "minus_one"], ["s2"]),
         helper.make_node("SequenceErase", ["s2", "zero"], ["s3"]),
         helper.make_node("ConcatFromSequence", ["s3"], ["y"], axis=2)],
        {"two": _i64(2), "minus_one": _i64(-1), "zero": _i64(0)}),
    # unit pieces without their axis, stacked again on a new last axis: a transpose
    "unstack_restack": (
        [helper.make_node("SplitToSequence", ["x"], ["s"], axis=1, keepdims=0),
         helper.make_node("ConcatFromSequence", ["s"], ["y"], axis=-1, new_axis=1)],
        {}),
    # explicit split sizes, the sequence's length and a piece added together
    "sizes_and_length": (
        [helper.make_node("SplitToSequence", ["x", "sizes"], ["s"], axis=1),
         helper.make_node("SequenceLength", ["s"], ["n"]),
         helper.make_node("Cast", ["n"], ["nf"], to=1),
         helper.make_node("SequenceAt", ["s", "one"], ["p"]),
         helper.make_node("Add", ["p", "nf"], ["y"])],
        {"sizes": _i64([1, 3, 2]), "one": _i64(1)}),
    # built from scratch: an empty sequence, insertions at the front and back
    "empty_then_insert": (
        [helper.make_node("SequenceEmpty", [], ["e"], dtype=1),
         helper.make_node("SequenceInsert", ["e", "x"], ["s1"]),
         helper.make_node("Neg", ["x"], ["nx"]),
         helper.make_node("SequenceInsert", ["s1", "nx", "zero"], ["s2"]),
         helper.make_node("ConcatFromSequence", ["s2"], ["y"], axis=0)],
        {"zero": _i64(0)}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_sequences_match_onnxruntime(name):
    nodes, inits = CASES[name]
    m = model(nodes, {"x": X}, inits=inits)
    expected = ort_run(m, {"x": X})
    compare(lamina_run(m, {"x": X}), expected, what=name)
    fn = compiler.compile(load_onnx(m), X, backend="llvm")
    compare([fn(X)], expected, what=f"{name} (llvm)")


def test_the_sequence_leaves_no_trace_in_the_graph():
    m = model(CASES["unstack_restack"][0], {"x": X})
    ops = {n.op for n in load_onnx(m).nodes}
    assert ops <= {"split", "reshape", "concat"}, ops


def test_a_position_known_only_at_run_time_is_refused_by_name():
    m = model([helper.make_node("SplitToSequence", ["x"], ["s"], axis=1),
               helper.make_node("SequenceAt", ["s", "pos"], ["y"], name="pick")],
              {"x": X, "pos": _i64(1)})
    with pytest.raises(OnnxImportError, match=r"pick.*computed at run time"):
        load_onnx(m)


def test_a_position_outside_the_sequence_is_refused_by_name():
    m = model([helper.make_node("SplitToSequence", ["x"], ["s"], axis=0),
               helper.make_node("SequenceAt", ["s", "pos"], ["y"], name="pick")],
              {"x": X}, inits={"pos": _i64(2)})
    with pytest.raises(OnnxImportError, match=r"pick.*position 2 is outside a sequence of 2"):
        load_onnx(m)


def test_a_sequence_output_is_refused():
    m = model([helper.make_node("SplitToSequence", ["x"], ["y"], axis=0, name="cut")],
              {"x": X})
    with pytest.raises(OnnxImportError, match="y"):
        load_onnx(m)


# ---- optionals: a present value is the value itself -------------------------------------------
def test_optional_tensor_input_and_its_element_match_onnxruntime():
    opt = helper.make_tensor_type_proto(1, list(X.shape))
    graph = helper.make_graph(
        [helper.make_node("OptionalHasElement", ["x"], ["has"]),
         helper.make_node("OptionalGetElement", ["x"], ["v"]),
         helper.make_node("Cast", ["has"], ["hf"], to=1),
         helper.make_node("Add", ["v", "hf"], ["y"])], "g",
        [helper.make_value_info("x", helper.make_optional_type_proto(opt))],
        [helper.make_tensor_value_info("y", 1, None)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    compare(lamina_run(m, {"x": X}), ort_run(m, {"x": X}), what="optional input")


def test_an_empty_optional_has_no_element():
    m = model([helper.make_node("OptionalHasElement", [""], ["y"])], {},
              outputs=[("y", np.bool_)], opset=18)
    assert lamina_run(m, {})[0] == np.asarray(False)


def test_one_hot_gives_off_rows_for_indices_out_of_range(rng):
    idx = np.array([[0, -1, 5, -6], [4, 9, -5, 2]], np.int64)
    m = model([helper.make_node("OneHot", ["i", "depth", "values"], ["y"], axis=1)],
              {"i": idx}, inits={"depth": np.asarray(5, np.int64),
                                 "values": np.array([-2.0, 3.0], np.float32)})
    expected = ort_run(m, {"i": idx})
    compare(lamina_run(m, {"i": idx}), expected, what="one_hot")
    fn = compiler.compile(load_onnx(m), idx, backend="llvm")
    compare([fn(idx)], expected, what="one_hot (llvm)")
