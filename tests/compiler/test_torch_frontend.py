"""Issue 14: a torch.nn.Module into Lamina, through `compiler.from_torch` and
`compiler.compile(module, x)`, and through `torch.compile(model, backend="lamina")`. Every
model's outputs are compared with torch eager on the same inputs (float32, rtol 1e-4,
atol 1e-5); torch computes nothing on Lamina's side."""

import importlib.metadata
import subprocess
import sys
import warnings

import numpy as np
import pytest

import compiler
from compiler import TorchImportError, TorchImportWarning
from tests.conftest import assert_close

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from compiler.frontends.torch import dynamo  # noqa: E402
from tests.compiler import torch_models as tm  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each test captures anew: dynamo's caches (and recompile limits) are per process."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def eager(model, inputs) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(*inputs)
    return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]


def through_compile(model, inputs) -> list[np.ndarray]:
    """from_torch, then Lamina's pipeline and the LLVM backend, called on numpy arrays."""
    fn = compiler.compile(model, *inputs)
    out = fn(*[x.numpy() for x in inputs])
    return list(out) if isinstance(out, tuple) else [out]


def through_torch_compile(model, inputs) -> list[np.ndarray]:
    """torch.compile with the backend found by name (the entry point); a fallback to eager
    PyTorch would warn, and fails the test."""
    compiled = torch.compile(model, backend="lamina")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TorchImportWarning)
        with torch.no_grad():
            out = compiled(*inputs)
    return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]


PATHS = {"compile": through_compile, "torch.compile": through_torch_compile}


def check(model, inputs, path: str, expected: list[np.ndarray] | None = None) -> None:
    expected = eager(model, inputs) if expected is None else expected
    got = PATHS[path](model, inputs)
    assert len(got) == len(expected)
    for k, (g, e) in enumerate(zip(got, expected)):
        assert_close(g, e, rtol=RTOL, atol=ATOL, what=f"output {k} via {path}")


def _seeded(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(2))


# ---- small models, both paths ----------------------------------------------------------------
SMALL = {
    "mlp": (tm.mlp, lambda: (_seeded(4, 20),)),
    "cnn": (tm.cnn, lambda: (_seeded(2, 3, 16, 16),)),
    "residual": (tm.Net, lambda: (_seeded(1, 3, 16, 16),)),
    "conv1d_groupnorm": (tm.Conv1d, lambda: (_seeded(2, 4, 10),)),
    "encoder_layer": (tm.encoder_layer, lambda: (_seeded(2, 10, 32),)),
    "lstm": (lambda: tm.RNNClassifier("lstm"), lambda: (_seeded(2, 5, 8),)),
    "gru": (lambda: tm.RNNClassifier("gru"), lambda: (_seeded(2, 5, 8),)),
    "unet": (tm.UNet, lambda: (_seeded(1, 3, 32, 32),)),
    "attention_padding_mask": (tm.SelfAttention, tm.padded_inputs),
    "fused_attention_kernel": (tm.FusedAttention, tm.padded_inputs),
    "bert_masked": (tm.Bert, tm.token_inputs),
    "gpt2_causal": (tm.GPT, lambda: tm.token_inputs()[:1]),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", SMALL)
def test_small_models_match_eager(name, path):
    make, inputs = SMALL[name]
    with warnings.catch_warnings():  # torch's own notes on exporting nn.LSTM's weights
        warnings.simplefilter("ignore", UserWarning)
        check(tm.randomize(make()), inputs(), path)


# ---- the coverage list from torchvision (skipped without it) ---------------------------------
# Inputs at 32x32, the smallest size every one of them downsamples to 1x1 without an empty
# feature map (ViT-B/16 is built for that size: 4 patches). The models are torchvision's own
# definitions at their own widths and depths; only the resolution is small, which the
# operators do not care about, and it keeps the block within the CI time budget.
TORCHVISION = {
    "resnet50": lambda tv: tv.resnet50(),
    "mobilenet_v3_small": lambda tv: tv.mobilenet_v3_small(),
    "efficientnet_b0": lambda tv: tv.efficientnet_b0(),
    "convnext_tiny": lambda tv: tv.convnext_tiny(),
    "regnet_y_400mf": lambda tv: tv.regnet_y_400mf(),
    "shufflenet_v2_x1_0": lambda tv: tv.shufflenet_v2_x1_0(),
    "googlenet": lambda tv: tv.googlenet(aux_logits=False, init_weights=False),
    "mnasnet0_5": lambda tv: tv.mnasnet0_5(),
    "vit_b_16": lambda tv: tv.vit_b_16(image_size=32),
    "swin_t": lambda tv: tv.swin_t(),
}
SIZE = 32


@pytest.fixture(scope="module")
def tv():
    models = tm.torchvision_models()
    if models is None:
        pytest.skip("torchvision is not installed")
    return models


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_models_match_eager(tv, name):
    """Both paths on one instance, built and run eagerly once (one test, so one process:
    where the two paths build the same code, the second takes it from the compile cache)."""
    torch.manual_seed(0)
    model = tm.randomize(TORCHVISION[name](tv))
    inputs = (_seeded(1, 3, SIZE, SIZE),)
    expected = eager(model, inputs)
    for path in PATHS:
        check(model, inputs, path, expected)


# ---- what from_torch builds ------------------------------------------------------------------
def test_weights_keep_state_dict_names_and_nodes_their_module_paths():
    model = tm.randomize(tm.Net())
    graph = compiler.from_torch(model, _seeded(1, 3, 16, 16))
    used = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert used <= set(graph.params)
    assert all(k.startswith("pool.const") for k in set(graph.params) - used)  # averaging
    text = str(graph)
    assert "@layer1.0.conv1.weight: f32[8,8,3,3]" in text
    assert "@layer1.1.bn2.running_var: f32[8]" in text
    by_name = {n.name: n.op for n in graph.nodes}
    assert by_name["layer1.0.conv1"] == "conv2d"
    assert by_name["layer1.1.bn2"] == "batch_norm"
    assert by_name["fc"] == "linear"  # addmm of the transposed weight: the layer's own
    fc = next(n for n in graph.nodes if n.name == "fc")
    assert [v.name for v in fc.inputs[1:]] == ["fc.weight", "fc.bias"]
    np.testing.assert_array_equal(graph.weights["fc.weight"], model.fc.weight.detach().numpy())


def test_weights_are_copies():
    """Training the module afterwards does not change a graph already imported."""
    model = tm.randomize(tm.mlp())
    graph = compiler.from_torch(model, _seeded(4, 20))
    before = graph.weights["0.weight"].copy()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    np.testing.assert_array_equal(graph.weights["0.weight"], before)


def test_compile_takes_numpy_arrays_or_tensors():
    model = tm.randomize(tm.cnn())
    x = _seeded(2, 3, 16, 16)
    expected = eager(model, (x,))[0]
    for example in (x, x.numpy()):
        fn = compiler.compile(model, example)
        assert_close(fn(x.numpy()), expected, rtol=RTOL, atol=ATOL)


def test_dynamic_shapes_reach_export_and_the_graph_takes_the_example_sizes():
    model = tm.randomize(tm.mlp())
    x = _seeded(3, 20)
    batch = torch.export.Dim("batch")
    graph = compiler.from_torch(model, x, dynamic_shapes=({0: batch},))
    assert graph.inputs[0].type.shape == (3, 20)
    y = compiler.compile(graph)(x.numpy())
    assert_close(y, eager(model, (x,))[0], rtol=RTOL, atol=ATOL)


def test_integer_inputs_and_masks():
    """Token ids (int64) and an attention mask computed at run time from an input."""
    model = tm.randomize(tm.Bert())
    ids, mask = tm.token_inputs()
    graph = compiler.from_torch(model, ids, mask)
    assert [v.type.dtype for v in graph.inputs] == ["i64", "i64"]
    other = mask.clone()
    other[0, 12:] = 0  # a mask the example did not have: computed in the graph, not folded
    fn = compiler.compile(graph)
    assert_close(fn(ids.numpy(), other.numpy()), eager(model, (ids, other))[0], rtol=RTOL,
                 atol=ATOL)


# ---- unsupported operators: one error, every op, counts and module paths ---------------------
class CumSum(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, 1)


class Bessel(nn.Module):
    def forward(self, x):
        return torch.special.bessel_j0(x)


class Unlowerable(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = CumSum(), CumSum(), Bessel()
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        y = self.fc(x)
        z = self.c(self.a(y) + self.b(y))
        _, indices = self.pool(x.view(1, 1, 2, -1))  # the indices output: not built
        return z + torch.cumsum(y, 0) + indices.sum()


def test_unsupported_operators_are_reported_together():
    with pytest.raises(TorchImportError) as info:
        compiler.from_torch(Unlowerable().eval(), _seeded(2, 4))
    err = info.value
    assert err.unsupported == {
        "aten.cumsum.default": {"a": 1, "b": 1, "<root>": 1},
        "aten.special_bessel_j0.default": {"c": 1},
        "aten.max_pool2d_with_indices.default": {"pool": 1},
    }
    message = str(err)
    assert "3 ATen operator(s) that Lamina cannot lower" in message
    assert "aten.cumsum.default x3: no Lamina mapping for this operator; used by <root>, a, b" \
        in message
    assert "aten.special_bessel_j0.default x1" in message
    assert "its output 1 is read" in message


def test_unsupported_operators_fail_compile_too():
    with pytest.raises(TorchImportError, match=r"aten\.cumsum\.default"):
        compiler.compile(CumSum(), np.ones((2, 3), np.float32))


def test_not_a_module():
    with pytest.raises(TorchImportError, match=r"takes a torch\.nn\.Module, got function"):
        compiler.from_torch(lambda x: x, _seeded(2))


# ---- training mode ---------------------------------------------------------------------------
def test_training_mode_is_reported_and_imported_as_eval():
    model = tm.randomize(nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.5),
                                       nn.ReLU(), nn.Dropout(0.0)))
    model.train()
    x = _seeded(4, 6)
    with pytest.warns(TorchImportWarning, match=r"'1' \(BatchNorm1d\), '2' \(Dropout\);"):
        graph = compiler.from_torch(model, x)
    assert model.training and model[1].training  # the module's flags are left as they were
    expected = eager(model.eval(), (x,))[0]
    assert_close(compiler.compile(graph)(x.numpy()), expected, rtol=RTOL, atol=ATOL)


def test_eval_mode_imports_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error", TorchImportWarning)
        compiler.from_torch(tm.randomize(tm.cnn()), _seeded(1, 3, 8, 8))


# ---- torch stays optional --------------------------------------------------------------------
def test_import_compiler_does_not_import_torch():
    code = ("import sys, compiler, compiler.frontends.torch\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "print(compiler.from_torch.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "from_torch"


def test_cli_loads_a_builder_returning_a_torch_module(tmp_path, capsys):
    from compiler.cli import main

    path = tmp_path / "torch_model.py"
    path.write_text("import torch\n\n\ndef build():\n    torch.manual_seed(0)\n"
                    "    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), "
                    "torch.nn.ReLU()).eval()\n"
                    "    return model, torch.randn(1, 3, 8, 8)\n")
    assert main(["dump", f"{path}:build", "-O", "0"]) in (0, None)
    out = capsys.readouterr().out
    assert "@0.weight: f32[4,3,3,3]" in out
    assert "%0: f32[1,4,6,6] = conv2d(%input, @0.weight, @0.bias)" in out


# ---- torch.compile(backend="lamina") ---------------------------------------------------------
def test_backend_is_registered_by_entry_point():
    found = {e.name: e.value for e in
             importlib.metadata.entry_points(group="torch_dynamo_backends")}
    assert found.get("lamina") == "compiler.frontends.torch.dynamo:lamina_backend"
    assert "lamina" in torch._dynamo.list_backends()


def test_recompiles_on_shape_change(monkeypatch):
    built = []
    real = dynamo.LaminaGraph.compile

    def counting(self, torch_, args, tensors):
        built.append(args[tensors[0]].shape[0])
        return real(self, torch_, args, tensors)

    monkeypatch.setattr(dynamo.LaminaGraph, "compile", counting)
    model = tm.randomize(tm.cnn())
    compiled = torch.compile(model, backend="lamina")
    for batch in (2, 3, 5, 3):
        x = _seeded(batch, 3, 16, 16)
        with warnings.catch_warnings():
            warnings.simplefilter("error", TorchImportWarning)
            with torch.no_grad():
                got = compiled(x).numpy()
        assert_close(got, eager(model, (x,))[0], rtol=RTOL, atol=ATOL)
    # dynamo captures a shape-generic graph at the second shape; Lamina compiles it per
    # shape, once: batch 3 again runs what was compiled for it
    assert built == [2, 3, 5]


def test_parameter_updates_compile_again():
    model = tm.randomize(tm.mlp())
    x = _seeded(4, 20)
    compiled = torch.compile(model, backend="lamina")
    with torch.no_grad():
        compiled(x)
        model[0].weight.mul_(-1.0)  # in place: the frozen copy is stale
        got = compiled(x).numpy()
    assert_close(got, eager(model, (x,))[0], rtol=RTOL, atol=ATOL)


def test_unsupported_graph_runs_eagerly_with_one_warning():
    def f(x):
        return torch.cumsum(torch.relu(x), 0) * 2

    compiled = torch.compile(f, backend="lamina")
    x = _seeded(4, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = compiled(x), compiled(x + 1)
    mine = [str(w.message) for w in caught if issubclass(w.category, TorchImportWarning)]
    assert len(mine) == 1
    assert "runs in eager PyTorch: Lamina cannot lower aten.cumsum.default (x1)" in mine[0]
    assert_close(first.numpy(), f(x).numpy(), rtol=0, atol=0)
    assert_close(second.numpy(), f(x + 1).numpy(), rtol=0, atol=0)


def test_inputs_requiring_grad_run_eagerly_and_gradients_flow():
    model = tm.randomize(tm.mlp())
    compiled = torch.compile(model, backend="lamina")
    x = _seeded(4, 20).requires_grad_()
    with pytest.warns(TorchImportWarning, match="require gradients run in eager"):
        compiled(x).sum().backward()
    expected = x.grad.clone()
    x.grad = None
    model(x).sum().backward()
    assert_close(expected.numpy(), x.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_tensors_cross_without_copies():
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    a = dynamo._array(t)
    assert np.shares_memory(a, t.numpy()) and a.dtype == np.float32


def test_graph_is_named_as_from_torch_names_it(monkeypatch):
    """The captured graph takes the module's class name, as from_torch's does (a plain
    function's: lamina_dynamo)."""
    names = []
    real = dynamo.import_program

    def recording(program, what):
        names.append(what)
        return real(program, what)

    monkeypatch.setattr(dynamo, "import_program", recording)
    model, x = tm.randomize(tm.Net()), _seeded(1, 3, 16, 16)
    with torch.no_grad():
        torch.compile(model, backend="lamina")(x)
        torch.compile(lambda t: torch.relu(t) * 2, backend="lamina")(x)
    assert names == [compiler.from_torch(model, x).name, "lamina_dynamo"] == ["Net",
                                                                             "lamina_dynamo"]


def test_compiled_model_reads_and_returns_torch_memory(monkeypatch):
    """Must 3: a contiguous float32 input reaches the native code as the tensor's own
    memory, and the output tensor is the array the native code wrote."""
    seen = {}
    real = dynamo.LaminaGraph.compile

    def spying(self, torch_, args, tensors):
        fn = real(self, torch_, args, tensors)

        def run(*arrays):
            seen["in"] = [a.ctypes.data for a in arrays]
            out = fn(*arrays)
            seen["out"] = out.ctypes.data
            return out
        return run

    monkeypatch.setattr(dynamo.LaminaGraph, "compile", spying)
    x = _seeded(4, 20)
    with torch.no_grad():
        y = torch.compile(tm.randomize(tm.mlp()), backend="lamina")(x)
    assert seen["in"] == [x.data_ptr()]
    assert seen["out"] == y.data_ptr()
