"""Issue 5's promise: a CNN, an MLP and a transformer encoder exported from PyTorch compile
with one call and give onnxruntime's outputs (reference and LLVM backends)."""

import io
import warnings

import numpy as np
import pytest

import compiler

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")


def _models():
    torch.manual_seed(0)
    nn = torch.nn
    cnn = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    with torch.no_grad():  # trained-looking statistics, so bn is not the identity
        cnn[1].running_mean.uniform_(-0.5, 0.5)
        cnn[1].running_var.uniform_(0.5, 2.0)
    mlp = nn.Sequential(nn.Linear(20, 32), nn.GELU(), nn.Linear(32, 5))
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    return {"cnn": (cnn, (2, 3, 16, 16)), "mlp": (mlp, (4, 20)),
            "encoder": (encoder, (2, 10, 32))}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = {}
    for name, (model, shape) in _models().items():
        model.eval()
        x = torch.randn(*shape)
        f = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), f, dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}})  # a symbolic batch, as usual
        path = tmp_path_factory.mktemp(name) / f"{name}.onnx"
        path.write_bytes(f.getvalue())
        out[name] = (path, x.numpy())
    return out


@pytest.mark.parametrize("backend", ["reference", "llvm"])
@pytest.mark.parametrize("name", ["cnn", "mlp", "encoder"])
def test_torch_export_compiles_in_one_call(exported, name, backend):
    path, x = exported[name]
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    fn = compiler.compile(str(path), x, backend=backend)
    np.testing.assert_allclose(fn(x), expected, rtol=1e-4, atol=1e-5)
