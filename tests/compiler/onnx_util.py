"""Helpers for the ONNX tests: models from `onnx.helper`, onnxruntime as the peer."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from backends.reference import run
from compiler import load_onnx
from tests.conftest import assert_close


def info(name: str, array_or_dtype, shape=None):
    if isinstance(array_or_dtype, np.ndarray):
        dtype, shape = array_or_dtype.dtype, array_or_dtype.shape
    else:
        dtype = np.dtype(array_or_dtype)
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(dtype),
                                         None if shape is None else list(shape))


def model(nodes, inputs: dict, outputs=("y",), inits: dict | None = None, opset: int = 17,
          out_dtype=np.float32, ir_version: int | None = None) -> onnx.ModelProto:
    """A one-graph model: `inputs` are run-time inputs (name -> example array), `inits`
    initialisers, `outputs` names (or (name, dtype) pairs) of unknown shape."""
    outs = [info(o, out_dtype) if isinstance(o, str) else info(*o) for o in outputs]
    graph = helper.make_graph(
        list(nodes), "g", [info(k, a) for k, a in inputs.items()], outs,
        [numpy_helper.from_array(np.asarray(a), k) for k, a in (inits or {}).items()])
    ids = [helper.make_opsetid("", opset)]
    return helper.make_model(graph, opset_imports=ids,
                             ir_version=ir_version or helper.find_min_ir_version_for(ids))


def ort_run(m: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def lamina_run(m: onnx.ModelProto, feeds: dict, **kw) -> list[np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unexpected import warning fails the test
        g = load_onnx(m, **kw)
    return run(g, *feeds.values())


def compare(actual, expected, rtol=1e-5, atol=1e-5, what="") -> None:
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs, expected " \
        f"{len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected)):
        a, e = np.asarray(a), np.asarray(e)
        assert a.dtype == e.dtype, f"{what} output {i}: dtype {a.dtype}, expected {e.dtype}"
        if e.dtype.kind in "biu":
            np.testing.assert_array_equal(a, e, err_msg=f"{what} output {i}")
        else:
            assert_close(a, e, rtol=rtol, atol=atol, what=f"{what} output {i}")
