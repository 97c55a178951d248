"""EmbeddingBag against torch.nn.EmbeddingBag with the same weights: every mode on 2-D inputs
and on 1-D inputs with offsets (constant or a traced input, include_last_offset, empty
bags), padding_idx, per_sample_weights; weights with an offset, extreme weights, a batch
of one bag; five training steps through compile_training compared with torch's."""

from __future__ import annotations

import numpy as np
import pytest

import compiler
from compiler import functional as F
from compiler import nn, optim
from ir import ShapeError
from tests.conftest import assert_close

torch = pytest.importorskip("torch")

V, D = 10, 4
FLAT = np.array([1, 2, 2, 5, 7, 2, 0, 9, 3])
OFFSETS = np.array([0, 3, 3, 6])  # the second bag is empty


def _pair(weights="normal", **kw):
    torch.manual_seed(0)
    t, m = torch.nn.EmbeddingBag(V, D, **kw), nn.EmbeddingBag(V, D, **kw)
    assert list(m.state_dict()) == list(t.state_dict()) == ["weight"]
    with torch.no_grad():
        if weights == "offset":
            t.weight.add_(100)
        elif weights == "extreme":
            v = torch.tensor([-1e30, -1e4, -1e-6, 0.0, 1e-6, 3.0, 1e4, 1e30])
            t.weight.copy_(v.repeat(V * D // 8 + 1)[:V * D].reshape(V, D))
    m.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    return t, m


def _inputs(layout, rng, one=False):
    """(arguments for both sides, which of them are traced inputs)."""
    if layout == "2d":
        return [rng.integers(0, V, (1 if one else 3, 5))]
    if one:  # (torch crashes on offsets [0] with include_last_offset)
        return [FLAT[:4], np.array([0, 4] if layout == "include_last" else [0])]
    if layout == "include_last":
        return [FLAT, np.append(OFFSETS, len(FLAT))]
    return [FLAT, OFFSETS]


def _run(m, args, traced_offsets=True, psw=None):
    """Lamina's result, with the offsets (and per-sample weights) as traced inputs or as
    constants of the model."""
    inputs = list(args) if traced_offsets else args[:1]
    const = None if traced_offsets or len(args) == 1 else args[1]

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.bag = m

        def forward(self, x, *rest):
            rest = list(rest)
            offsets = const if const is not None else (rest.pop(0) if len(args) > 1 else None)
            weights = rest.pop(0) if psw is not None else None
            return self.bag(x, offsets, per_sample_weights=weights)

    if psw is not None:
        inputs.append(psw)
    return compiler.compile(Wrap(), *inputs, backend="reference")(*inputs)


CASES = [(mode, layout, pad) for mode in ("sum", "mean", "max")
         for layout in ("2d", "offsets", "include_last") for pad in (None, 2)]


@pytest.mark.parametrize("kind", ["normal", "offset", "extreme", "batch_of_one"])
@pytest.mark.parametrize(("mode", "layout", "pad"), CASES)
def test_matches_torch(mode, layout, pad, kind, rng):
    kw = {"mode": mode, "padding_idx": pad, "include_last_offset": layout == "include_last"}
    t, m = _pair("normal" if kind == "batch_of_one" else kind, **kw)
    args = _inputs(layout, rng, one=kind == "batch_of_one")
    want = t(*map(torch.from_numpy, args)).detach().numpy()
    for traced in (True, False):
        got = _run(m, args, traced)
        assert_close(got, want, rtol=1e-6, atol=1e-6 if kind != "extreme" else 1e-2,
                     what=f"{mode} {layout} pad={pad} {kind} traced offsets={traced}")


@pytest.mark.parametrize("layout", ["2d", "offsets"])
def test_per_sample_weights_match_torch(layout, rng):
    t, m = _pair(mode="sum", padding_idx=5)
    args = _inputs(layout, rng)
    psw = rng.standard_normal(args[0].shape).astype(np.float32)
    want = t(*map(torch.from_numpy, args), per_sample_weights=torch.from_numpy(psw))
    assert_close(_run(m, args, psw=psw), want.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("mode", "layout", "psw"), [
    ("sum", "offsets", True), ("mean", "2d", False), ("max", "2d", False),
    ("mean", "include_last", False)])
def test_trains_like_torch(mode, layout, psw, rng):
    """EmbeddingBag -> Linear, MSE, SGD with momentum: the weights after each of 5 steps
    (padding row 2 never moves, in both)."""
    kw = {"mode": mode, "padding_idx": 2, "include_last_offset": layout == "include_last"}

    def build(lib):
        class M(lib.Module):
            def __init__(self):
                super().__init__()
                self.bag = lib.EmbeddingBag(V, D, **kw)
                self.head = lib.Linear(D, 3)

            def forward(self, *xs):
                weights = xs[-1] if psw else None
                return self.head(self.bag(*(xs[:-1] if psw else xs),
                                          per_sample_weights=weights))
        return M()

    torch.manual_seed(0)
    tm, model = build(torch.nn), build(nn)
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    xs = _inputs(layout, rng)
    if psw:
        xs.append(rng.standard_normal(xs[0].shape).astype(np.float32))
    y = rng.standard_normal((tm(*map(torch.from_numpy, xs)).shape[0], 3)).astype(np.float32)
    step = compiler.compile_training(model, nn.MSELoss(), optim.SGD(0.1, momentum=0.9),
                                     tuple(xs) if len(xs) > 1 else xs[0], y,
                                     backend="reference")
    theirs = torch.optim.SGD(tm.parameters(), 0.1, momentum=0.9)
    for k in range(5):
        got = step(*xs, y)
        theirs.zero_grad()
        loss = torch.nn.functional.mse_loss(tm(*map(torch.from_numpy, xs)), torch.from_numpy(y))
        loss.backward()
        theirs.step()
        np.testing.assert_allclose(got, loss.item(), rtol=1e-5, atol=1e-6)
        for name, v in tm.state_dict().items():
            np.testing.assert_allclose(step.state_dict()[name], v.numpy(), rtol=1e-5,
                                       atol=1e-6, err_msg=f"{name} after step {k + 1}")


def test_functional_form_matches_torch(rng):
    w = rng.standard_normal((V, D)).astype(np.float32)
    want = torch.nn.functional.embedding_bag(torch.from_numpy(FLAT), torch.from_numpy(w),
                                             torch.from_numpy(OFFSETS), mode="max")

    class M(nn.Module):
        def forward(self, x):
            return F.embedding_bag(x, w, OFFSETS, mode="max")

    assert_close(compiler.compile(M(), FLAT, backend="reference")(FLAT), want.numpy())


@pytest.mark.parametrize(("build", "match"), [
    (lambda: nn.EmbeddingBag(V, D, max_norm=1.0), "max_norm"),
    (lambda: nn.EmbeddingBag(V, D, scale_grad_by_freq=True), "scale_grad_by_freq"),
    (lambda: nn.EmbeddingBag(V, D, mode="median"), "mode"),
    (lambda: nn.EmbeddingBag(V, D, padding_idx=V), "padding_idx"),
    (lambda: nn.EmbeddingBag(V, -1), "embedding_dim"),
    (lambda: nn.EmbeddingBag(V, D, _weight=np.zeros((V, D + 1))), "_weight"),
])
def test_bad_arguments_are_shape_errors(build, match):
    with pytest.raises(ShapeError, match=match):
        build()


@pytest.mark.parametrize(("args", "kw", "match"), [
    ([np.zeros((2, 3), np.int64), OFFSETS], {}, "none with a 2-D input"),
    ([FLAT], {}, "needs offsets"),
    ([FLAT, np.array([1, 3])], {}, "non-decreasing"),
    ([FLAT, np.array([0, 4, 2])], {}, "non-decreasing"),
    ([FLAT.astype(np.float32), OFFSETS], {}, "integers"),
    ([FLAT, OFFSETS], {"per_sample_weights": np.ones(len(FLAT), np.float32)}, "mode 'sum'"),
])
def test_bad_inputs_name_the_layer(args, kw, match):
    m = nn.EmbeddingBag(V, D)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.bag = m

        def forward(self, x):
            return self.bag(x, *args[1:], **kw)

    with pytest.raises(ShapeError, match=match) as e:
        compiler.compile(M(), args[0], backend="reference")
    assert "layer 'bag' (EmbeddingBag)" in str(e.value)


@pytest.mark.parametrize("mode", ["mean", "max"])
def test_on_llvm(mode):
    t, m = _pair(mode=mode, padding_idx=2)
    want = t(*map(torch.from_numpy, (FLAT, OFFSETS))).detach().numpy()
    got = compiler.compile(m, FLAT, OFFSETS)(FLAT, OFFSETS)
    assert_close(got, want, rtol=1e-6, atol=1e-6)
