"""Five training steps of compile_training against torch's eager loop with the same weights,
the same batches and the same optimiser: every parameter after every step.

The cases are the ones where torch's training semantics are not plain calculus: an
Embedding's padding_idx row gets no gradient (issue 19), and normalisation on inputs with a
large common offset.
"""

from __future__ import annotations

import numpy as np
import pytest

import compiler
from compiler import nn, optim

torch = pytest.importorskip("torch")

from .parity import paired, train_alongside  # noqa: E402  (after the skip)


def _run(tm, model, x, y, ours, theirs, steps=5, tol=1e-5):
    step = compiler.compile_training(model, nn.MSELoss(), ours, x, y)
    return train_alongside(step, tm, theirs, torch.nn.functional.mse_loss, (x,), y, steps, tol)


def bag(padding_idx):
    """A builder: an embedding, then a linear head over the mean of the rows."""

    def build(lib):
        class Model(lib.Module):
            def __init__(self):
                super().__init__()
                self.embed = lib.Embedding(10, 4, padding_idx=padding_idx)
                self.head = lib.Linear(4, 3)

            def forward(self, ids):
                return self.head(self.embed(ids)).mean(1)

        return Model()

    return build


IDS = np.array([[0, 1, 2, 0, 9], [3, 0, 9, 9, 0]], np.int64)  # padding (0 or 9) repeated


@pytest.mark.parametrize("padding_idx", [0, -1], ids=["first", "negative"])
@pytest.mark.parametrize("kind", ["sgd_weight_decay", "adam"])
def test_embedding_padding_row_gets_no_gradient(padding_idx, kind):
    tm, model = paired(bag(padding_idx))
    with torch.no_grad():  # a padding row that is not zero: it must be read, not moved
        tm.embed.weight[padding_idx] = torch.randn(4)
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    pad_row = model.embed.weight[padding_idx].copy()
    y = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    if kind == "adam":
        ours, theirs = optim.Adam(0.05), torch.optim.Adam(tm.parameters(), 0.05)
    else:  # weight decay moves the padding row in torch too: its gradient is zero, not absent
        ours = optim.SGD(0.1, weight_decay=0.01)
        theirs = torch.optim.SGD(tm.parameters(), 0.1, weight_decay=0.01)
    step = _run(tm, model, IDS, y, ours, theirs)
    if kind == "adam":
        np.testing.assert_array_equal(step.state_dict()["embed.weight"][padding_idx], pad_row)


def test_embedding_padding_row_is_read_in_the_forward_pass():
    tm, model = paired(bag(0))
    with torch.no_grad():
        tm.embed.weight[0] = torch.randn(4)
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    with torch.no_grad():
        want = tm(torch.from_numpy(IDS)).numpy()
    for backend in ("reference", "llvm"):
        got = compiler.compile(model.eval(), IDS, backend=backend)(IDS)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=backend)


def test_layer_norm_model_on_offset_inputs_trains_like_torch():
    """Offset 50 +- 0.5: large enough that a rounded mean would show in the gradients, small
    enough that torch's own float32 layer stays within the tolerance."""

    def build(lib):
        return lib.Sequential(lib.Linear(6, 8), lib.LayerNorm(8), lib.Linear(8, 3))

    tm, model = paired(build)
    rng = np.random.default_rng(1)
    x = (50 + 0.5 * rng.standard_normal((5, 6))).astype(np.float32)
    y = rng.standard_normal((5, 3)).astype(np.float32)
    _run(tm, model, x, y, optim.SGD(0.05, momentum=0.9),
         torch.optim.SGD(tm.parameters(), 0.05, momentum=0.9), tol=1e-4)


ACTIVATIONS = ["SiLU", "Mish", "Hardswish", "Hardsigmoid", "ELU", "SELU", "Softplus",
               "Softsign", "Hardtanh", "LeakyReLU", "GELU"]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_trains_like_torch(name):
    def build(lib):
        return lib.Sequential(lib.Linear(4, 6), getattr(lib, name)(), lib.Linear(6, 2))

    tm, model = paired(build)
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((5, 4)) * 3).astype(np.float32)  # past the kinks at +-1, +-3
    y = rng.standard_normal((5, 2)).astype(np.float32)
    _run(tm, model, x, y, optim.SGD(0.1), torch.optim.SGD(tm.parameters(), 0.1))
