"""Dynamic dimensions: one compiled callable serving every size of its symbolic dims, checked
against the reference interpreter and a static compile at random sizes, against onnxruntime
on an ONNX file with a dynamic batch, and against torch for a training step whose last batch
is smaller."""

import numpy as np
import pytest

import compiler
import ir
from compiler import nn, optim
from ir.errors import InputError, OptionError, ParseError, ShapeError


def small_cnn():
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 4 * 4, 5)).eval()


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_symbolic_types_print_parse_and_bind():
    t = ir.TensorType(("N", 3, "S"), "i64")
    assert str(t) == "i64[N,3,S]" and t.symbols == ("N", "S") and not t.is_static
    assert t.bind({"N": 2, "S": 7}) == ir.TensorType((2, 3, 7), "i64")
    with pytest.raises(ShapeError, match="no size given for S"):
        t.bind({"N": 2})
    with pytest.raises(ShapeError, match="symbolic dimensions"):
        _ = t.size
    with pytest.raises(ShapeError, match="like an identifier"):
        ir.TensorType(("2N", 3))
    # the text format reads symbolic dims, and says that graph bodies compute with sizes
    text = "graph @m(%x: f32[N,3]) -> (f32[N,3]) {\n  %y: f32[N,3] = relu(%x)\n  return %y\n}"
    with pytest.raises(ParseError, match="symbolic type f32\\[N,3\\]"):
        ir.parse(text)


@pytest.mark.parametrize("backend", ["llvm", "reference"])
def test_every_batch_size_matches_static_and_reference(backend):
    model = small_cnn()
    fn = compiler.compile(model, rand(2, 3, 8, 8), backend=backend, dynamic={"x": {0: "N"}})
    assert fn.signature == "@main(%x: f32[N,3,8,8])"
    for seed, n in enumerate(np.random.default_rng(1).integers(1, 17, size=5)):
        x = rand(int(n), 3, 8, 8, seed=seed)
        want = compiler.compile(model, x, backend="reference")(x)
        static = compiler.compile(model, x, backend=backend)(x)
        got = fn(x)
        assert got.shape == (n, 5)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got, static)  # the same code as a static compile
    assert len(fn.specializations) <= 8  # bounded: least recently used builds dropped


def test_two_symbols_across_inputs_and_typed_errors():
    def f(a, b):
        return (a @ b).relu()

    fn = compiler.compile(f, rand(2, 4), rand(4, 3),
                          dynamic={0: {0: "M", 1: "K"}, 1: {0: "K", 1: compiler.Dim("N", 1, 6)}})
    a, b = rand(5, 7, seed=1), rand(7, 2, seed=2)
    np.testing.assert_allclose(fn(a, b), np.maximum(a @ b, 0), rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="K=6, but input %a has K=7"):
        fn(a, rand(6, 2))
    with pytest.raises(InputError, match="N=9; N must be between 1 and 6"):
        fn(a, rand(7, 9))
    with pytest.raises(InputError, match="rank 2"):
        fn(a, rand(7))
    with pytest.raises(InputError, match="takes 2 input"):
        fn(a)


def test_fixed_dimensions_stay_fixed_and_bad_specs_are_refused(tmp_path):
    model = small_cnn()
    fn = compiler.compile(model, rand(2, 3, 8, 8), dynamic=True)
    with pytest.raises(InputError, match="dimension 2 is 9; it must be 8"):
        fn(rand(2, 3, 9, 8))
    with pytest.raises(OptionError, match="no input 'y'"):
        compiler.compile(model, rand(2, 3, 8, 8), dynamic={"y": {0: "N"}})
    with pytest.raises(OptionError, match="no dimension 4"):
        compiler.compile(model, rand(2, 3, 8, 8), dynamic={"x": {4: "N"}})
    with pytest.warns(compiler.LaminaWarning, match="saving the build for N=2"):
        fn.save(tmp_path / "m.lamina")
    x = rand(2, 3, 8, 8, seed=3)
    np.testing.assert_array_equal(compiler.load(tmp_path / "m.lamina")(x), fn(x))
    graph = compiler.trace(model, rand(2, 3, 8, 8))
    with pytest.raises(OptionError, match="holds one size"):
        compiler.compile(graph, rand(2, 3, 8, 8), dynamic=True)


def test_torch_module_with_torch_export_dims_against_eager():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.GELU(), torch.nn.Linear(8, 2))
    batch = torch.export.Dim("batch", max=32)
    fn = compiler.compile(net.eval(), rand(3, 6), dynamic={0: {0: batch}})
    assert fn.dims["batch"] == compiler.Dim("batch", 0, 32)
    for n in (1, 7):
        x = rand(n, 6, seed=n)
        with torch.no_grad():
            want = net(torch.tensor(x)).numpy()
        np.testing.assert_allclose(fn(x), want, rtol=1e-4, atol=1e-5)
    with pytest.raises(InputError, match="between 0 and 32"):
        fn(rand(33, 6))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_dim_params_serve_every_batch_against_onnxruntime(tmp_path):
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 6 * 6, 3)).eval()
    path = tmp_path / "dyn.onnx"
    torch.onnx.export(net, (torch.randn(2, 3, 8, 8),), str(path), input_names=["img"],
                      dynamic_axes={"img": {0: "batch_size"}}, opset_version=17, dynamo=False)
    fn = compiler.compile(str(path), rand(2, 3, 8, 8))  # the dim_param is kept symbolic
    assert "batch_size" in fn.signature
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n in (1, 5, 2):
        x = rand(n, 3, 8, 8, seed=n)
        np.testing.assert_allclose(fn(x), session.run(None, {"img": x})[0], rtol=1e-4,
                                   atol=1e-5)


def test_training_step_takes_a_smaller_last_batch_like_torch():
    torch = pytest.importorskip("torch")
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    reference = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                                    torch.nn.Linear(8, 3))
    reference.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((n, 4)).astype(np.float32), rng.integers(0, 3, n))
               for n in (8, 8, 3)]
    step = compiler.compile_training(model, nn.CrossEntropyLoss(), optim.SGD(0.1),
                                     *batches[0])
    opt = torch.optim.SGD(reference.parameters(), lr=0.1)
    for x, y in batches:
        loss = step(x, y)
        opt.zero_grad()
        want = torch.nn.functional.cross_entropy(reference(torch.tensor(x)), torch.tensor(y))
        want.backward()
        opt.step()
        assert loss == pytest.approx(want.item(), rel=1e-5)
    for k, v in reference.state_dict().items():
        np.testing.assert_allclose(step.state_dict()[k], v.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError):  # only the batch dimension may change
        step(rng.standard_normal((8, 5)).astype(np.float32), batches[0][1])


def test_builds_are_bounded_and_an_evicted_size_is_rebuilt():
    fn = compiler.compile(lambda x: (x * 2.0).relu(), rand(1, 3), backend="reference",
                          dynamic=True)
    for n in [*range(1, 11), 1]:  # ten sizes, then the first again (evicted by then)
        x = rand(n, 3, seed=n)
        np.testing.assert_array_equal(fn(x), np.maximum(x * 2.0, 0))
    assert len(fn.specializations) == 8 and (("N", 1),) in fn.specializations
