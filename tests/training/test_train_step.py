"""compile_training: the one-graph training step, its state, and the model afterwards."""

from __future__ import annotations

import numpy as np
import pytest

import compiler
import ir
from compiler import nn, optim
from compiler.training import TrainingError
from tests.training.numeric import to_float64
from tests.training.test_optim import adam_reference, sgd_reference


class Net(nn.Module):
    def __init__(self, p=0.25):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.MaxPool2d(2)
        self.drop = nn.Dropout(p, seed=5)  # fixed: two Nets draw the same masks
        self.fc = nn.Linear(4 * 3 * 3, 2)

    def forward(self, x):
        x = self.pool(nn.ReLU()(self.bn(self.conv(x))))
        return self.fc(self.drop(x.flatten(1)))


def blobs(n=16, seed=0):
    """Two classes of 6x6 images: a bright top half or a bright bottom half, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.3, (n, 1, 6, 6)).astype(np.float32)
    x[y == 0, :, :3] += 1
    x[y == 1, :, 3:] += 1
    return x, y


@pytest.mark.parametrize("opt", [optim.SGD(0.1, momentum=0.9), optim.Adam(0.02)],
                         ids=["sgd_momentum", "adam"])
def test_loss_decreases(opt):
    nn.manual_seed(0)
    model = Net()
    x, y = blobs()
    step = compiler.compile_training(model, nn.CrossEntropyLoss(), opt, x, y)
    losses = [step(x, y) for _ in range(25)]
    assert losses[-1] < 0.3 * losses[0], losses
    assert step.steps == 25


def _linear_model(seed=0):
    nn.manual_seed(seed)
    model = nn.Linear(3, 2)
    to_float64(model)
    rng = np.random.default_rng(seed)
    return model, rng.standard_normal((8, 3)), rng.standard_normal((8, 2))


def _mse_grads(w, b, x, y):
    d = 2 * (x @ w.T + b - y) / y.size
    return d.T @ x, d.sum(0)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_compiled_step_is_forward_backward_and_update(kind):
    """Linear regression: the step's parameters follow the numpy gradient and update."""
    model, x, y = _linear_model()
    if kind == "sgd":
        opt = optim.SGD(0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
    else:
        opt = optim.Adam(0.05, weight_decay=0.01)
    step = compiler.compile_training(model, nn.MSELoss(), opt, x, y)
    p = {"weight": model.weight.copy(), "bias": model.bias.copy()}
    state = {k: (None, np.zeros_like(v), np.zeros_like(v)) for k, v in p.items()}
    for t in range(1, 5):
        loss = step(x, y)
        np.testing.assert_allclose(loss, np.mean((x @ p["weight"].T + p["bias"] - y) ** 2),
                                   rtol=1e-12)
        grads = dict(zip(p, _mse_grads(p["weight"], p["bias"], x, y)))
        for k in p:
            buf, m, v = state[k]
            if kind == "sgd":
                p[k], buf = sgd_reference(p[k], grads[k], buf, lr=0.1, momentum=0.9,
                                          weight_decay=0.01, nesterov=True, first=t == 1)
            else:
                p[k], m, v = adam_reference(p[k], grads[k], m, v, t, lr=0.05, weight_decay=0.01)
            state[k] = (buf, m, v)
            np.testing.assert_allclose(step.params[k], p[k], rtol=1e-10, atol=1e-12)


def test_learning_rate_is_read_at_every_call():
    model, x, y = _linear_model()
    opt = optim.SGD(0.1)
    step = compiler.compile_training(model, nn.MSELoss(), opt, x, y)
    opt.lr = 0.0
    before = step.params["weight"].copy()
    step(x, y)
    np.testing.assert_array_equal(step.params["weight"], before)


def test_batch_norm_running_statistics_follow_torch():
    nn.manual_seed(0)
    model = Net(p=0.0)
    model.bn.momentum = 0.2
    x, y = blobs()
    step = compiler.compile_training(model, nn.CrossEntropyLoss(), optim.SGD(0.0), x, y)
    conv = compiler.compile(model.conv, x, opt_level=0)(x)
    for _ in range(2):
        step(x, y)
    mean = conv.mean(axis=(0, 2, 3))
    var = conv.var(axis=(0, 2, 3), ddof=1)  # torch keeps the unbiased variance
    want_mean = 0.8 * (0.8 * 0 + 0.2 * mean) + 0.2 * mean
    want_var = 0.8 * (0.8 * 1 + 0.2 * var) + 0.2 * var
    sd = step.state_dict()
    np.testing.assert_allclose(sd["bn.running_mean"], want_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sd["bn.running_var"], want_var, rtol=1e-5, atol=1e-6)
    assert int(sd["bn.num_batches_tracked"]) == 2
    assert model.bn.running_mean.sum() == 0  # the model changes only on copy_to
    step.copy_to(model)
    np.testing.assert_array_equal(model.bn.running_mean, sd["bn.running_mean"])
    assert model.bn.running_mean.dtype == np.float32


def test_dropout_draws_a_fresh_mask_each_step_reproducibly():
    def losses():
        nn.manual_seed(0)
        model = Net(p=0.5)
        x, y = blobs()
        step = compiler.compile_training(model, nn.CrossEntropyLoss(), optim.SGD(0.0), x, y)
        ops = [n.op for n in step.graph.nodes]
        assert "dropout_seeded" in ops and "dropout" not in ops
        return [step(x, y) for _ in range(3)]

    first = losses()
    assert len(set(first)) == 3  # same parameters, same batch: only the mask differs
    assert losses() == first


def test_trained_model_compiles_for_inference_without_dropout_and_bn():
    nn.manual_seed(0)
    model = Net()
    x, y = blobs()
    step = compiler.compile_training(model, nn.CrossEntropyLoss(), optim.Adam(0.02), x, y)
    for _ in range(5):
        step(x, y)
    step.copy_to(model)
    for key, value in step.params.items():
        np.testing.assert_array_equal(model.state_dict()[key], value)
    fn = compiler.compile(model.eval(), x, opt_level=3)
    ops = {n.op for n in fn.graph.nodes}
    assert not ops & {"dropout", "dropout_seeded", "batch_norm"}, ops
    want = compiler.compile(model, x, opt_level=0)(x)
    np.testing.assert_allclose(fn(x), want, rtol=1e-4, atol=1e-5)


def test_optimised_step_agrees_with_the_unoptimised_one():
    x, y = blobs()
    results = []
    for level in (0, 3):
        nn.manual_seed(0)
        step = compiler.compile_training(Net(), nn.CrossEntropyLoss(), optim.Adam(0.02), x, y,
                                         opt_level=level)
        results.append(([step(x, y) for _ in range(3)], step.params))
    (l0, p0), (l3, p3) = results
    np.testing.assert_allclose(l0, l3, rtol=1e-5)
    for k in p0:
        np.testing.assert_allclose(p0[k], p3[k], rtol=1e-4, atol=1e-6)


def test_training_graph_is_ordinary_ir():
    nn.manual_seed(0)
    x, y = blobs(4)
    step = compiler.compile_training(Net(), nn.CrossEntropyLoss(), optim.SGD(0.1, 0.9), x, y,
                                     opt_level=0)
    g = step.graph
    ir.verify(g)
    assert str(ir.parse(str(g), g.weights)) == str(g)
    names = [v.name for v in g.inputs]
    assert names[:4] == ["x", "target", "step", "lr"]
    assert "conv.weight" in names and "bn.running_var" in names
    assert "sgd.momentum_buffer.fc.weight" in names
    assert len(g.outputs) == 1 + len(names) - 4  # the loss, then every state input's update


def test_models_with_several_inputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(4, 2)

        def forward(self, u, v):
            return self.a(u) + self.b(v)

    nn.manual_seed(0)
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal((5, 3), np.float32), rng.standard_normal((5, 4), np.float32)
    y = rng.standard_normal((5, 2), np.float32)
    step = compiler.compile_training(Two(), nn.MSELoss(), optim.SGD(0.1), (u, v), y)
    first = step(u, v, y)
    assert [step(u, v, y) for _ in range(10)][-1] < first


def test_errors_say_what_is_wrong():
    model, x, y = _linear_model()
    with pytest.raises(TrainingError, match="one float scalar"):
        compiler.compile_training(model, nn.MSELoss(reduction="none"), optim.SGD(), x, y)
    with pytest.raises(TrainingError, match=r"compiler\.optim optimizer"):
        compiler.compile_training(model, nn.MSELoss(), "sgd", x, y)
    with pytest.raises(TrainingError, match="no trainable parameter"):
        compiler.compile_training(nn.ReLU(), nn.MSELoss(), optim.SGD(), x, x)
    step = compiler.compile_training(model, nn.MSELoss(), optim.SGD(), x, y)
    with pytest.raises(ir.InputError, match="takes 2 arrays"):
        step(x)
    with pytest.raises(ir.InputError, match=r"input %x expects f64\[8,3\]"):
        step(x[:, :2], y)  # (a smaller batch is compiled for: tests/compiler/test_dynamic)
    with pytest.raises(ir.LaminaError, match="unknown backend"):
        compiler.compile_training(model, nn.MSELoss(), optim.SGD(), x, y, backend="gpu")


def _llvm_lowers(graph) -> bool:
    try:
        from backends import llvm
    except ImportError:
        return False
    return {n.op for n in graph.nodes} <= set(llvm.lowered_ops())


def _linear_setup():
    model, x, y = _linear_model()
    to_float32 = {k: v.astype(np.float32) for k, v in model.state_dict().items()}
    model = nn.Linear(3, 2)
    model.load_state_dict(to_float32)
    return model, nn.MSELoss(), optim.SGD(0.1, momentum=0.9), x.astype(np.float32), \
        y.astype(np.float32)


def _cnn_setup():
    nn.manual_seed(0)
    return (Net(), nn.CrossEntropyLoss(), optim.Adam(0.02), *blobs())


@pytest.mark.parametrize("setup", [_linear_setup, _cnn_setup], ids=["linear_sgd", "cnn_adam"])
def test_llvm_step_agrees_with_the_reference_step(setup):
    model, loss, opt, x, y = setup()
    ref = compiler.compile_training(model, loss, opt, x, y)
    if not _llvm_lowers(ref.graph):
        pytest.skip("the LLVM backend does not lower every operator of the training graph yet")
    model, loss, opt, x, y = setup()
    native = compiler.compile_training(model, loss, opt, x, y, backend="llvm", num_threads=2)
    for _ in range(3):
        np.testing.assert_allclose(native(x, y), ref(x, y), rtol=1e-4)
    # A conv bias feeding a training-mode batch norm has a true gradient of zero (the norm
    # subtracts the batch mean); Adam divides that gradient's rounding noise by its own
    # size, so both backends' updates of it are noise of step size lr: not comparable.
    noise_only = {"conv.bias"} if setup is _cnn_setup else set()
    assert set(ref.params) - noise_only, "nothing left to compare"
    for k, v in ref.params.items():
        if k not in noise_only:
            np.testing.assert_allclose(native.params[k], v, rtol=1e-3, atol=1e-5, err_msg=k)
