"""Every operator's reference semantics against onnxruntime, an independent implementation.

The cases (tests/ir/cases*.py) build each computation twice: as a Lamina graph and as an
ONNX model written with `onnx.helper`. Nothing here is compared with numbers Lamina produced
earlier; onnxruntime supplies every expected value.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

import ir
from backends.reference import run
from tests.conftest import assert_close

from .cases import BY_OP, CASES, Case


def onnxruntime_run(c: Case, g: ir.Graph) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    # run the operators as written: no fusion or constant folding in between
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3  # errors only (it warns where ONNX shape inference and its
    # own pooling kernel disagree on ceil_mode: the kernel is right, and is what we compare)
    sess = ort.InferenceSession(c.onnx_model(g).SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    feeds = {k: a for k, a in c.args.items() if k not in c.weights}
    return sess.run(None, feeds)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_matches_onnxruntime(c: Case):
    g = c.graph()
    ir.verify(g)
    expected = onnxruntime_run(c, g)
    actual = run(g, *c.inputs)
    assert len(actual) == len(expected)
    for i, (a, e, v) in enumerate(zip(actual, expected, g.outputs)):
        what = f"{c.id} output {i}"
        assert a.dtype == e.dtype == v.type.np_dtype, f"{what}: dtype {a.dtype} vs {e.dtype}"
        assert a.shape == v.shape, f"{what}: shape {a.shape}, declared {v.type}"
        if a.dtype.kind in "biu":
            np.testing.assert_array_equal(a, e, err_msg=what)
        else:
            assert_close(a, e, rtol=c.rtol, atol=c.atol, what=what)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_compute_returns_the_inferred_types(c: Case):
    """`compute` itself (not the interpreter, which casts and reshapes) returns arrays of
    exactly the types `infer` declared, so other users of the registry can rely on them."""
    g = c.graph()
    (node,) = g.nodes
    out = node.opdef.compute(*(c.args[v.name] for v in node.inputs), **node.attrs)
    out = out if isinstance(out, tuple) else (out,)
    assert len(out) == len(node.outputs)
    for o, v in zip(out, node.outputs):
        assert isinstance(o, np.ndarray), f"{c.id}: compute returned {type(o).__name__}"
        assert ir.TensorType.of(o) == v.type


def test_every_operator_has_a_peer_case():
    missing = sorted(set(ir.ops.names()) - set(BY_OP))
    assert not missing, f"operators without an onnxruntime case in tests/ir/cases*.py: {missing}"


def test_no_case_names_an_unknown_operator():
    assert set(BY_OP) <= set(ir.ops.names())


def test_dropout_training_drops_and_rescales():
    """Not comparable with onnxruntime (its mask comes from its own generator): check the
    properties instead -- kept values scaled by 1/(1-ratio), about `ratio` of them zeroed, and
    the mask a function of the seed."""
    x = np.ones((200, 50), np.float32)

    def drop(seed):
        g = ir.Graph()
        v = g.add_input("x", ir.TensorType.of(x))
        g.outputs = [g.call("dropout", v, ratio=0.25, training=True, seed=seed)]
        return run(g, x)[0]

    y = drop(3)
    assert set(np.unique(y)) <= {np.float32(0), np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(y, drop(3))
    assert not np.array_equal(y, drop(4))
