"""ONNX models whose weights live in external files: loaded from inside the model's folder
and checked against onnxruntime; locations that leave the folder, and spans that leave their
file, are refused with OnnxImportError naming the tensor."""

import shutil

import numpy as np
import pytest

import compiler
from compiler import OnnxImportError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import helper  # noqa: E402


def external_model(folder, location="weights.bin"):
    """A Gemm + Relu model whose weights are stored in `folder/location`."""
    rng = np.random.default_rng(0)
    w = onnx.numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "w")
    b = onnx.numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "ext", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 6])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 4])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = folder / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return path


def relocate(path, tensor_name, **fields):
    """Rewrite the external-data fields of one tensor in the saved model."""
    model = onnx.load(str(path), load_external_data=False)
    t = next(t for t in model.graph.initializer if t.name == tensor_name)
    for e in t.external_data:
        if e.key in fields:
            e.value = str(fields[e.key])
    onnx.save_model(model, str(path))


def test_external_weights_load_and_match_onnxruntime(tmp_path):
    path = external_model(tmp_path)
    assert (tmp_path / "weights.bin").stat().st_size == (24 + 4) * 4
    x = np.random.default_rng(1).standard_normal((2, 6)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    np.testing.assert_allclose(compiler.compile(str(path), x)(x), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("location, message", [
    ("../weights.bin", "no absolute paths, no '..'"),
    ("sub/../../weights.bin", "no absolute paths, no '..'"),
    ("/etc/passwd", "no absolute paths, no '..'"),
    ("missing.bin", "no file 'missing.bin'"),
])
def test_locations_outside_the_folder_are_refused(tmp_path, location, message):
    path = external_model(tmp_path)
    relocate(path, "w", location=location)
    with pytest.raises(OnnxImportError, match=f"tensor 'w'.*{message}"):
        compiler.load_onnx(str(path))


def test_a_link_out_of_the_folder_is_refused(tmp_path):
    inner = tmp_path / "model"
    inner.mkdir()
    path = external_model(inner)
    shutil.move(inner / "weights.bin", tmp_path / "weights.bin")
    (inner / "weights.bin").symlink_to(tmp_path / "weights.bin")
    with pytest.raises(OnnxImportError, match="leads outside the model's folder"):
        compiler.load_onnx(str(path))


@pytest.mark.parametrize("fields, message", [
    ({"offset": 10_000}, "lie outside"),
    ({"length": 12}, "needs 96"),
    ({"offset": "x"}, "must be integers"),
])
def test_spans_must_fit_their_file_and_shape(tmp_path, fields, message):
    path = external_model(tmp_path)
    relocate(path, "w", **fields)
    with pytest.raises(OnnxImportError, match=f"tensor 'w'.*{message}"):
        compiler.load_onnx(str(path))


def test_bytes_with_external_data_say_to_load_from_the_path(tmp_path):
    path = external_model(tmp_path)
    with pytest.raises(OnnxImportError, match="load the model from its path"):
        compiler.load_onnx(path.read_bytes())
