"""`--dim NAME=SIZE`: an .onnx MODEL whose inputs have symbolic dimensions (a dynamic batch)
runs from the command line without input files; unnamed sizes default to 1."""

import numpy as np
import onnx
import pytest
from onnx import helper

from compiler.cli import main


@pytest.fixture
def dynamic_model(tmp_path):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", "seq", 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(w, "w")])
    path = tmp_path / "dyn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def test_symbolic_dims_default_to_one_and_take_dim_sizes(dynamic_model, capsys):
    main(["run", dynamic_model])
    assert "f32[1,1,4]" in capsys.readouterr().out
    main(["run", dynamic_model, "--dim", "batch=3", "seq=5"])
    assert "f32[3,5,4]" in capsys.readouterr().out


def test_an_unknown_dim_name_is_refused_in_one_line(dynamic_model, tmp_path):
    from .test_cli import lamina, one_line_error

    one_line_error(lamina("run", dynamic_model, "--dim", "height=3", cwd=tmp_path),
                   "--dim height", "(it has batch, seq)")
    one_line_error(lamina("run", dynamic_model, "--dim", "batch", cwd=tmp_path),
                   "expected NAME=SIZE")
