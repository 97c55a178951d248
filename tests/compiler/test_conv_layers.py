"""N-dimensional convolution and pooling against torch: Conv3d, ConvTranspose1d/2d/3d,
MaxPool3d, AvgPool3d, the adaptive pools (sizes that do not divide the input included) and
every padding_mode of Conv1d/2d/3d, with torch's weights loaded through load_state_dict;
forward on both backends (ordinary inputs, inputs with an offset, extreme values, a batch of
one), five training steps through compile_training, the torch front end, and torch-exported
3-D ONNX models against onnxruntime."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest

import compiler
from compiler import nn, optim
from ir import LaminaError, ShapeError
from tests.conftest import assert_close
from tests.training.parity import paired, train_alongside

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


@dataclass
class L:
    """`name(*args, **kwargs)` on both sides, called on a float32 input of `shape`."""

    name: str
    args: tuple
    shape: tuple
    kwargs: dict = field(default_factory=dict)
    id: str = "default"


LAYERS = [
    L("Conv3d", (2, 3, 3), (2, 2, 5, 6, 5)),
    L("Conv3d", (4, 6, (3, 2, 3)), (2, 4, 7, 6, 5),
      {"stride": (2, 1, 1), "padding": (1, 0, 1), "dilation": (1, 2, 1), "groups": 2},
      id="stride_pad_dilation_groups"),
    L("Conv3d", (2, 3, (2, 3, 4)), (2, 2, 5, 5, 6), {"padding": "same", "bias": False},
      id="same_even"),
    L("Conv3d", (3, 2, 3), (3, 5, 4, 6), {"padding": 1}, id="unbatched"),
    *[L("Conv3d", (2, 3, 3), (2, 2, 4, 5, 6), {"padding": (1, 2, 1), "padding_mode": m},
        id=m) for m in ("reflect", "replicate", "circular")],
    L("Conv2d", (2, 3, 3), (2, 2, 5, 6), {"padding": (1, 2), "padding_mode": "circular",
                                          "stride": 2}, id="circular"),
    L("Conv1d", (2, 4, 3), (2, 2, 7), {"padding": 2, "padding_mode": "circular",
                                       "dilation": 2}, id="circular"),
    L("ConvTranspose1d", (3, 4, 3), (2, 3, 6), {"stride": 2, "padding": 1,
                                                 "output_padding": 1}),
    L("ConvTranspose1d", (4, 6, 2), (4, 5), {"groups": 2, "dilation": 3, "output_padding": 2,
                                             "stride": 2}, id="unbatched_groups_dilation"),
    L("ConvTranspose2d", (4, 6, 3), (2, 4, 5, 4), {"stride": 2, "padding": 1,
                                                    "output_padding": 1, "groups": 2}),
    L("ConvTranspose2d", (2, 3, (3, 2)), (2, 2, 4, 5),
      {"stride": (2, 3), "dilation": (2, 1), "output_padding": (1, 2), "bias": False},
      id="rect_dilation"),
    L("ConvTranspose3d", (2, 4, 3), (2, 2, 3, 4, 3), {"stride": 2, "padding": 1,
                                                       "output_padding": 1}),
    L("ConvTranspose3d", (4, 2, (2, 3, 2)), (1, 4, 3, 3, 4),
      {"groups": 2, "dilation": (2, 1, 1), "stride": (1, 2, 2), "padding": (1, 1, 0)},
      id="groups_dilation"),
    # output padding of a stride or more: absorbed by the end padding, then zeros
    L("ConvTranspose3d", (2, 3, (2, 3, 2)), (2, 2, 3, 4, 3),
      {"dilation": (4, 3, 1), "stride": (1, 1, 2), "padding": (1, 2, 0),
       "output_padding": (3, 2, 1)}, id="large_output_padding"),
    L("MaxPool3d", (2,), (2, 3, 4, 6, 5)),
    L("MaxPool3d", (3, 2, 1), (2, 2, 5, 6, 7), {"ceil_mode": True}, id="pad_ceil"),
    L("MaxPool3d", ((2, 3, 2), (1, 2, 2), (1, 1, 0), (2, 1, 1)), (2, 2, 6, 7, 5),
      id="dilation"),
    L("AvgPool3d", (2,), (2, 3, 4, 6, 5)),
    L("AvgPool3d", (3, 2, 1), (2, 2, 5, 6, 7), {"ceil_mode": True,
                                                 "count_include_pad": False},
      id="exclude_pad_ceil"),
    L("AvgPool3d", ((3, 2, 3), (2, 1, 2), (1, 1, 1)), (2, 5, 6, 7), {"ceil_mode": True},
      id="unbatched_include_pad_ceil"),
    L("AdaptiveAvgPool1d", (3,), (2, 3, 7)),
    L("AdaptiveAvgPool1d", (5,), (3, 10), id="unbatched_divides"),
    L("AdaptiveAvgPool2d", ((3, 4),), (2, 3, 7, 6), id="uneven"),
    L("AdaptiveAvgPool3d", ((2, 3, None),), (2, 3, 5, 7, 4)),
    L("AdaptiveAvgPool3d", (1,), (2, 3, 5, 7, 4), id="global"),
    L("AdaptiveMaxPool1d", (4,), (2, 3, 10)),
    L("AdaptiveMaxPool2d", ((3, 2),), (2, 3, 7, 5)),
    L("AdaptiveMaxPool2d", (5,), (3, 10, 11), id="unbatched_larger_windows"),
    L("AdaptiveMaxPool3d", ((2, 3, 2),), (2, 3, 5, 7, 4)),
    L("AdaptiveMaxPool3d", (1,), (1, 2, 3, 4, 5), id="global"),
]


def _name(c: L) -> str:
    return f"{c.name}-{c.id}"


def _pair(name, args, kwargs):
    torch.manual_seed(0)
    tm = getattr(torch.nn, name)(*args, **kwargs)
    model = getattr(nn, name)(*args, **kwargs)
    assert list(model.state_dict()) == list(tm.state_dict())
    for k, v in tm.state_dict().items():
        assert model.state_dict()[k].shape == tuple(v.shape), k
    with torch.no_grad():  # parameters away from their defaults
        for v in tm.parameters():
            v.add_(torch.randn_like(v) * 0.3)
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm, model


def _input(kind: str, shape, rng):
    if kind == "batch_of_one":
        shape = (1, *shape[1:])
    x = rng.standard_normal(shape)
    if kind == "offset":  # a large common offset with a small spread
        x = 100 + 0.1 * x
    elif kind == "extreme":  # tails and tiny values, signs scattered
        v = [-1e4, -100, -3, -1e-6, 0, 1e-6, 3, 100, 1e4]
        x = np.resize(np.array(v), shape) * np.sign(x + 0.5)
    return x.astype(np.float32)


def _expected(tm, x):
    with torch.no_grad():
        return tm(torch.from_numpy(x)).numpy()


def _tol(x):
    """float32 rounding of the values involved (an offset input scales every sum)."""
    return 1e-5 * max(1.0, float(np.abs(x).max()))


KINDS = ["normal", "offset", "extreme", "batch_of_one"]


@pytest.mark.parametrize(("c", "kind"), [
    pytest.param(c, k, id=f"{_name(c)}-{k}") for c in LAYERS for k in KINDS
    if not (k == "batch_of_one" and "unbatched" in c.id)])
def test_layer_matches_torch(c: L, kind, rng):
    tm, model = _pair(c.name, c.args, c.kwargs)
    x = _input(kind, c.shape, rng)
    expected = _expected(tm, x)
    got = compiler.compile(model, x, backend="reference", opt_level=0)(x)
    atol = max(_tol(x), _tol(expected))  # extreme inputs: sums of terms up to 1e4 in size
    assert_close(got, expected, rtol=1e-5, atol=atol, what=f"{_name(c)} {kind}")


@pytest.mark.parametrize("c", LAYERS, ids=_name)
def test_layer_on_llvm(c: L, rng):
    tm, model = _pair(c.name, c.args, c.kwargs)
    for kind in ("normal", "offset"):
        x = _input(kind, c.shape, rng)
        got = compiler.compile(model, x, backend="llvm")(x)
        assert_close(got, _expected(tm, x), rtol=1e-5, atol=_tol(x), what=f"{_name(c)} {kind}")


def test_ir_dump_shows_the_3d_operators(rng):
    model = nn.Sequential(nn.Conv3d(2, 3, 3, padding=1), nn.MaxPool3d(2), nn.AvgPool3d(2),
                          nn.ConvTranspose3d(3, 2, 2, stride=2))
    text = str(compiler.to_graph(model, _input("normal", (1, 2, 4, 4, 4), rng)))
    for op in ("conv3d", "max_pool3d", "avg_pool3d", "conv3d_grad_input"):
        assert f" {op}(" in text or f"= {op}" in text, (op, text)


# ---- training: five steps against torch's eager loop ---------------------------------------
TRAINED = [c for c in LAYERS if c.id in ("default", "stride_pad_dilation_groups", "circular",
                                         "reflect", "groups_dilation", "exclude_pad_ceil",
                                         "rect_dilation", "pad_ceil")
           and "unbatched" not in c.id]


@pytest.mark.parametrize("c", TRAINED, ids=_name)
def test_layer_trains_like_torch(c: L, rng):
    """PReLU -> the layer -> a linear head, SGD with momentum: the layer's parameters, and the
    gradient it passes back (into the PReLU's slope), after each step."""
    x = _input("normal", c.shape, rng)
    with torch.no_grad():
        out = getattr(torch.nn, c.name)(*c.args, **c.kwargs)(torch.from_numpy(x))
    batch, features = out.shape[0], out[0].numel()

    def build(lib):
        class Model(lib.Module):
            def __init__(self):
                super().__init__()
                self.front = lib.PReLU()
                self.layer = getattr(lib, c.name)(*c.args, **c.kwargs)
                self.head = lib.Linear(features, 2)

            def forward(self, x):
                return self.head(self.layer(self.front(x)).reshape(batch, features))

        return Model()

    tm, model = paired(build, jitter=0.3)
    y = rng.standard_normal((batch, 2)).astype(np.float32)
    step = compiler.compile_training(model, nn.MSELoss(), optim.SGD(0.002, momentum=0.9), x, y)
    train_alongside(step, tm, torch.optim.SGD(tm.parameters(), 0.002, momentum=0.9),
                    torch.nn.MSELoss(), (x,), y, tol=1e-4)


# ---- arguments Lamina refuses --------------------------------------------------------------
@pytest.mark.parametrize(("build", "match"), [
    (lambda: nn.Conv3d(3, 4, 3, groups=2), "groups"),
    (lambda: nn.Conv3d(2, 4, (3, 3)), "kernel_size"),
    (lambda: nn.Conv3d(2, 4, 3, padding_mode="mirror"), "padding_mode"),
    (lambda: nn.Conv3d(2, 4, 3, padding="full"), "padding"),
    (lambda: nn.ConvTranspose2d(2, 4, 3, padding_mode="reflect"), "padding_mode"),
    (lambda: nn.MaxPool3d(2, return_indices=True), "return_indices"),
    (lambda: nn.AvgPool3d(2, divisor_override=3), "divisor_override"),
    (lambda: nn.AdaptiveMaxPool2d(2, return_indices=True), "return_indices"),
])
def test_bad_arguments_are_lamina_errors(build, match):
    with pytest.raises(LaminaError, match=match):
        build()


@pytest.mark.parametrize(("layer", "shape", "match"), [
    (lambda: nn.Conv3d(2, 3, 3), (2, 5, 5), "expects a 5-D batch"),
    (lambda: nn.Conv3d(2, 3, 3), (1, 3, 5, 5, 5), "channels"),
    (lambda: nn.MaxPool3d(5), (1, 1, 4, 4, 4), "larger than the padded input"),
    (lambda: nn.ConvTranspose1d(2, 3, 3, stride=2, output_padding=2), (1, 2, 4),
     "output_padding"),
    (lambda: nn.Conv2d(2, 3, 3, padding=6, padding_mode="circular"), (1, 2, 5, 5),
     "circular padding"),
    (lambda: nn.AdaptiveAvgPool3d((2, 2)), (1, 2, 4, 4, 4), "3 output sizes"),
])
def test_bad_inputs_are_shape_errors_naming_the_layer(layer, shape, match, rng):
    with pytest.raises(ShapeError, match=match):
        compiler.trace(layer(), _input("normal", shape, rng))


# ---- the torch front end and torch-exported ONNX -------------------------------------------
def _torch_model():
    torch.manual_seed(0)
    t = torch.nn
    return t.Sequential(t.Conv3d(2, 4, 3, padding=1, stride=(1, 2, 1)), t.ReLU(),
                        t.MaxPool3d(2, ceil_mode=True),
                        t.ConvTranspose3d(4, 4, 3, stride=2, padding=1, output_padding=1,
                                          groups=2),
                        t.AvgPool3d(3, stride=2, padding=1, count_include_pad=False),
                        t.Conv3d(4, 3, (2, 1, 2), dilation=(2, 1, 1), bias=False),
                        t.AdaptiveAvgPool3d((2, 3, 1))).eval()


@pytest.mark.parametrize("backend", ["reference", "llvm"])
def test_torch_front_end_imports_3d_models(backend, rng):
    tm = _torch_model()
    x = _input("normal", (2, 2, 7, 9, 6), rng)
    extra = torch.nn.Sequential(torch.nn.AdaptiveMaxPool3d((3, 2, 2)),
                                torch.nn.Flatten(2), torch.nn.AdaptiveMaxPool1d(5))
    for model in (tm, torch.nn.Sequential(tm[:5], extra).eval()):
        got = compiler.compile(model, x, backend=backend)(x)
        assert_close(got, _expected(model, x), rtol=1e-5, atol=1e-5, what=backend)


@pytest.mark.parametrize("backend", ["reference", "llvm"])
def test_torch_exported_3d_onnx_matches_onnxruntime(backend, rng, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    tm = _torch_model()
    x = _input("normal", (2, 2, 7, 9, 6), rng)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tm, (torch.from_numpy(x),), f, dynamo=False, input_names=["x"])
    path = tmp_path / "m3d.onnx"
    path.write_bytes(f.getvalue())
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    got = compiler.compile(str(path), x, backend=backend)(x)
    assert_close(got, expected, rtol=1e-5, atol=1e-5, what=backend)


@pytest.mark.parametrize("backend", ["reference", "llvm"])
def test_onnx_conv_transpose_3d_with_large_output_padding(backend, rng):
    """ConvTranspose over 3-D with output padding of a stride or more (smaller than the
    dilation), groups and bias, against torch (onnxruntime refuses such output padding)."""
    from onnx import TensorProto, helper, numpy_helper

    x = _input("normal", (1, 4, 3, 4, 3), rng)
    w = rng.standard_normal((4, 2, 2, 3, 2)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], group=2,
                            dilations=[4, 3, 1], strides=[1, 1, 2], pads=[1, 2, 0, 1, 2, 0],
                            output_padding=[3, 2, 1])
    graph = helper.make_graph(
        [node], "convtranspose3d",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    expected = torch.nn.functional.conv_transpose3d(
        torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias), stride=(1, 1, 2),
        padding=(1, 2, 0), output_padding=(3, 2, 1), groups=2, dilation=(4, 3, 1)).numpy()
    got = compiler.compile(compiler.load_onnx(m), x, backend=backend)(x)
    assert_close(got, expected, rtol=1e-5, atol=1e-5, what=backend)
