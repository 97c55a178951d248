"""ONNX operators the importer builds from existing registry operators (Einsum, the scatters,
GatherND, TopK, Mod, Floor/Ceil, CumProd, ReduceProd, ReverseSequence, hyperbolic functions,
EyeLike, integer Div and Pad's value at run time), in patterns onnx's own node cases leave
out, against onnxruntime on both backends."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import helper

import compiler
from backends.reference import run
from compiler import load_onnx

from .onnx_util import model, ort_run

N = helper.make_node
_rng = np.random.default_rng(15)


def r(*shape):
    return _rng.standard_normal(shape).astype(np.float32)


def i64(a):
    return np.asarray(a, np.int64)


I = ("i", np.int64)
CASES = [  # id, nodes, run-time inputs, initialisers, opset, outputs
    ("einsum-summed-alone", N("Einsum", ["a", "b"], ["y"], equation="bij,jk->bk"),
     {"a": r(2, 3, 4), "b": r(4, 5)}, {}, 12, ("y",)),
    ("einsum-ellipsis-broadcast", N("Einsum", ["a", "b"], ["y"],
                                    equation="...ij,...jk->...ik"),
     {"a": r(2, 1, 3, 4), "b": r(2, 3, 4, 5)}, {}, 12, ("y",)),
    ("einsum-attention", N("Einsum", ["a", "b"], ["y"], equation="bhqd,bhkd->bhqk"),
     {"a": r(2, 3, 4, 5), "b": r(2, 3, 6, 5)}, {}, 12, ("y",)),
    ("einsum-three", N("Einsum", ["a", "b", "c"], ["y"], equation="ij,jk,k->i"),
     {"a": r(3, 4), "b": r(4, 5), "c": r(5)}, {}, 12, ("y",)),
    ("einsum-implicit", N("Einsum", ["a", "b"], ["y"], equation="ij,jk"),
     {"a": r(3, 4), "b": r(4, 5)}, {}, 12, ("y",)),
    ("ScatterElements-smaller-indices", N("ScatterElements", ["d", "i", "u"], ["y"], axis=1),
     {"d": r(3, 5, 2), "i": i64([[[0], [4]], [[2], [-1]]]), "u": r(2, 2, 1)}, {}, 16, ("y",)),
    ("ScatterElements-add-repeats", N("ScatterElements", ["d", "i", "u"], ["y"], axis=2,
                                      reduction="add"),
     {"d": r(2, 3, 4), "i": i64(_rng.integers(0, 4, (2, 3, 3))), "u": r(2, 3, 3)}, {}, 16,
     ("y",)),
    ("ScatterND-mul-repeats", N("ScatterND", ["d", "i", "u"], ["y"], reduction="mul"),
     {"d": r(4, 3), "i": i64([[1], [3], [1]]), "u": r(3, 3)}, {}, 16, ("y",)),
    ("ScatterND-pairs", N("ScatterND", ["d", "i", "u"], ["y"]),
     {"d": r(4, 3, 2), "i": i64([[[0, 1], [3, 2]]]), "u": r(1, 2, 2)}, {}, 16, ("y",)),
    ("GatherND-pairs", N("GatherND", ["d", "i"], ["y"]),
     {"d": r(4, 3, 2), "i": i64([[[0, 1], [3, -1]], [[2, 2], [1, 0]]])}, {}, 13, ("y",)),
    ("TopK-axis0-ties", N("TopK", ["x", "k"], ["y", "i"], axis=0),
     {"x": np.float32([[1, 2], [3, 2], [3, 0], [1, 5]])}, {"k": i64([3])}, 11, ("y", I)),
    ("TopK-smallest", N("TopK", ["x", "k"], ["y", "i"], axis=-1, largest=0),
     {"x": r(2, 3, 6)}, {"k": i64([2])}, 11, ("y", I)),
    ("Mod-int", N("Mod", ["a", "b"], ["y"]),
     {"a": i64([-7, 7, 5, -5, 0, 9]), "b": i64([3, -3, 2, 2, 4, -4])}, {}, 13,
     (("y", np.int64),)),
    ("Mod-fmod", N("Mod", ["a", "b"], ["y"], fmod=1), {"a": r(3, 4) * 10, "b": r(4) + 0.1},
     {}, 13, ("y",)),
    ("Floor-Ceil-large", [N("Floor", ["x"], ["f"]), N("Ceil", ["x"], ["c"]),
                          N("Add", ["f", "c"], ["y"])],
     {"x": np.float32([-2.5, -0.5, 0, 0.5, 1.0, 3e9, -1e20])}, {}, 13, ("y",)),
    ("CumProd-exclusive-reverse", N("CumProd", ["x", "a"], ["y"], exclusive=1, reverse=1),
     {"x": r(2, 4, 3)}, {"a": i64(1)}, 26, ("y",)),
    ("ReduceProd-signs-zero", N("ReduceProd", ["x"], ["y"], axes=[1], keepdims=0),
     {"x": np.float32([[-1, 2, -3], [0, -2, 5], [-1, -1, -1]])}, {}, 13, ("y",)),
    ("ReverseSequence", N("ReverseSequence", ["x", "l"], ["y"], batch_axis=0, time_axis=1),
     {"x": r(3, 5, 2)}, {"l": i64([5, 1, 3])}, 13, ("y",)),
    ("Sinh-Asinh", [N("Sinh", ["x"], ["s"]), N("Asinh", ["s"], ["y"])], {"x": r(3, 4)}, {}, 13,
     ("y",)),
    ("EyeLike", N("EyeLike", ["x"], ["y"], k=-1), {"x": r(3, 5)}, {}, 13, ("y",)),
    ("Div-int-run-time", N("Div", ["a", "b"], ["y"]),
     {"a": i64([-7, 7, 5, -5, 0, 9]), "b": i64([3, -3, 2, 2, 4, -4])}, {}, 13,
     (("y", np.int64),)),
    ("Pad-run-time-value", N("Pad", ["x", "p", "v"], ["y"]),
     {"x": r(2, 3), "v": np.asarray(2.5, np.float32)}, {"p": i64([1, 0, 2, -1])}, 13, ("y",)),
]


@pytest.mark.parametrize("backend", ["reference", "llvm"])
@pytest.mark.parametrize("nodes, feeds, inits, opset, outs",
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_against_onnxruntime(nodes, feeds, inits, opset, outs, backend):
    m = model(nodes if isinstance(nodes, list) else [nodes], feeds, outs, inits, opset)
    expected = ort_run(m, feeds)
    g = load_onnx(m, [a.shape for a in feeds.values()])
    with np.errstate(all="ignore"):  # Floor of 1e20: the unused int64 branch overflows
        if backend == "reference":
            actual = run(g, *feeds.values())
        else:
            actual = compiler.compile(g, *feeds.values(), backend=backend)(*feeds.values())
            actual = list(actual) if isinstance(actual, tuple) else [actual]
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape and a.dtype == e.dtype
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


def test_run_time_bitshift():
    """A run-time input (the bit_shift operator; more in test_onnx_runtime_math.py)."""
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    m = model([N("BitShift", ["x", "s"], ["y"], direction="LEFT", name="shift1")],
              {"x": x}, (("y", np.int64),), {"s": i64([1, 2, 3])}, 13)
    np.testing.assert_array_equal(run(load_onnx(m), x)[0], [[0, 4, 16], [6, 16, 40]])
