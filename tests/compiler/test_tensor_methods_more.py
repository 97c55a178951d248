"""More of torch.Tensor on traced tensors (issue 19): topk/sort/argsort, scatter/scatter_add/
scatter_reduce, index_select, several integer-tensor indices, constant boolean masks, and
assignment (`x[mask] = v`, `x[1:3, 0] = v`), each against torch eager: values, shapes and
dtypes, gradients against torch's autograd, five training steps of a model that uses them
against torch's, and what cannot be traced refused with what to write instead."""

from __future__ import annotations

import numpy as np
import pytest

import compiler
import ir
from backends.reference import run
from compiler import functional as F
from compiler import nn, optim
from compiler.frontends.tracing import trace
from passes.autodiff import grad

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore:The reduce argument of torch.scatter")

BACKENDS = ["reference", "llvm"]
_rng = np.random.default_rng(11)


def randn(*shape):
    return _rng.standard_normal(shape).astype(np.float32)


def ints(lo, hi, *shape):
    return _rng.integers(lo, hi, shape).astype(np.int64)


X = randn(3, 5)
X3 = randn(2, 3, 4)
OFFSET = (100 + 0.01 * _rng.standard_normal((3, 6))).astype(np.float32)
# (no equal values: torch's topk leaves their order open; test_topk_with_ties covers them)
EXTREME = np.array([[1e30, -1e30, 0, -1e-30, 1e-30, 3], [np.inf, -np.inf, 1, 2, -2, 0],
                    [5, 4e4, 6, -5, -4e-4, 7]], np.float32)
NAN = np.array([[1, np.nan, 3, np.nan, -1], [2, 0, np.nan, 7, 6]], np.float32)
TIES = np.array([[1, 3, 3, -2, 3], [0, 0, 0, 0, 0]], np.float32)
IDS = ints(-20, 20, 3, 5)
SCATTER = np.array([[0, 2, 4], [1, 1, 3]])  # a repeated place in row 1
UNIQUE = np.array([[0, 2, 4], [1, 3, 0]])
MASK1 = np.array([True, False, True])


class _T:
    """torch, with constants as torch tensors; `_L`: Lamina's functional, constants as
    numpy arrays (what each library's code would hold)."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def c(a):
        return torch.from_numpy(a)


class _L:
    def __getattr__(self, name):
        return getattr(F, name)

    @staticmethod
    def c(a):
        return a


def _assign(t, x, how):
    """x changed in place the torch way (a fresh copy first, as torch code does)."""
    y = x * 1
    if how == "mask":
        y[x > 0.5] = 0.0
    elif how == "mask_rows":
        y[x[:, :, 0] > 0] = x[0, 0]
    elif how == "basic":
        y[0, 1:3] = x[1, 0:2] * 2
        y[..., -1] = -1.0
    elif how == "list":
        y[:, [0, 2]] = 5.0
        y[t.c(np.array([1, 0]))] = x[0] + 1
    elif how == "list_repeated":  # a repeated place: the last write wins, as in torch
        y[t.c(np.array([1, 1]))] = x[0] + 1
    elif how == "const_mask":
        y[:, t.c(MASK1)] = x[0, :2] * 3
    return y


CASES = {
    # ordering
    "topk": (lambda t, x: (x.topk(2), x.topk(3, dim=0), x.topk(1, 1, largest=False),
                           t.topk(x, 5, -1), x.topk(0)), [X]),
    "topk_3d_offset": (lambda t, x, o: (x.topk(2, 1), o.topk(3), o.topk(2, largest=False)),
                       [X3, OFFSET]),
    "topk_extreme": (lambda t, x: (x.topk(3), x.topk(2, largest=False), x.sort(1)), [EXTREME]),
    "topk_nan": (lambda t, x: (x.topk(3), x.topk(2, largest=False)), [NAN]),
    "topk_int": (lambda t, i: (i.topk(2), i.sort(0, descending=True)), [IDS]),
    "sort_stable_ties": (lambda t, x: (x.sort(stable=True), x.sort(descending=True, stable=True),
                                       x.argsort(stable=True), t.sort(x, dim=0, stable=True)),
                         [TIES]),
    "sort_nan": (lambda t, x: (x.sort(stable=True), x.sort(descending=True, stable=True)),
                 [NAN]),
    # boolean reductions
    "any_all": (lambda t, x, i: ((x > 0).any(), (x > 0).all(1), x.any(0, keepdim=True),
                                 (x > -5).all(), i.any(1), t.any(x < -1), (x > 0).all(
                                     (0, 1))), [X, IDS]),
    "any_all_nan": (lambda t, x: (x.any(1), x.all(1), x.isnan().any(0)), [NAN]),
    # scatter
    "scatter": (lambda t, x, s: (x.scatter(1, t.c(UNIQUE), s), x.scatter(1, t.c(UNIQUE), 7.0),
                                 x.scatter(0, t.c(UNIQUE[:, :2] % 3), s),
                                 t.scatter(x, -1, t.c(UNIQUE), s)), [X, randn(2, 4)]),
    "scatter_add": (lambda t, x, s: (x.scatter_add(1, t.c(SCATTER), s),
                                     x.scatter(1, t.c(SCATTER), s, reduce="add"),
                                     t.scatter_add(x, 0, t.c(SCATTER % 3), s[:, :3])),
                    [X, randn(2, 3)]),
    "scatter_reduce": (lambda t, x, s: tuple(
        x.scatter_reduce(1, t.c(SCATTER), s, how, include_self=inc)
        for how in ("sum", "mean", "amax", "amin") for inc in (True, False)), [X, randn(2, 3)]),
    "scatter_int": (lambda t, i: (i.scatter(1, t.c(UNIQUE), 9), i.scatter_add(
        1, t.c(SCATTER), i[:2, :3])), [IDS]),
    "scatter_traced_index": (lambda t, x: x.scatter(1, x.argsort(1)[:, :2], 0.0), [X]),
    "index_select": (lambda t, x: (x.index_select(1, t.c(np.array([4, 0, 0]))),
                                   t.index_select(x, 0, x[:, 0].argsort())), [X]),
    # indexing with several integer tensors, and constant masks
    "index_tensors": (lambda t, x, i, j: (x[i, j], x[t.c(np.array([0, 1])), 0, j[:2]],
                                          x[:, i[:, None], j], x[i, :, j], x[..., t.c(
                                              np.array([1, -1]))], x[-1, i, j]),
                      [X3, ints(-2, 2, 3), ints(-3, 3, 3)]),
    "index_traced_pairs": (lambda t, x: x[x[:, 0].argsort(), x[:, 1].argsort()], [X]),
    "index_const_mask": (lambda t, x: (x[:, t.c(MASK1)], x[1][t.c(MASK1)],
                                       x[t.c(np.array([False, True]))],
                                       x[t.c(X3[..., 0] > 0)]), [X3]),
    # assignment
    "setitem_mask": (lambda t, x: (_assign(t, x, "mask"), _assign(t, x, "mask_rows")), [X3]),
    "setitem_basic_list": (lambda t, x: (_assign(t, x, "basic"), _assign(t, x, "list"),
                                         _assign(t, x, "list_repeated")), [X3]),
    "setitem_const_mask": (lambda t, x: _assign(t, x, "const_mask"), [X3]),
}


def _to_numpy(out):
    if isinstance(out, (tuple, list)):
        return tuple(_to_numpy(o) for o in out)
    return out.detach().numpy()


def _flat(out) -> list:
    return [a for o in out for a in _flat(o)] if isinstance(out, (tuple, list)) else [out]


def _compare(got: list, want: list, what):
    assert len(got) == len(want), what
    for k, (g, w) in enumerate(zip(got, want)):
        g = np.asarray(g)
        assert g.dtype == w.dtype and g.shape == w.shape, \
            f"{what}[{k}]: {g.dtype} {g.shape}, torch {w.dtype} {w.shape}"
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6, err_msg=f"{what}[{k}]")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"{what}[{k}]")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_method_matches_torch(name, backend):
    fn, inputs = CASES[name]
    want = _flat(_to_numpy(fn(_T(), *(torch.from_numpy(x.copy()) for x in inputs))))
    got = compiler.compile(lambda *xs: fn(_L(), *xs), *inputs, backend=backend)(*inputs)
    _compare(_flat(got), want, name)


def test_topk_with_ties_gives_the_tied_values_and_their_places():
    """torch leaves the order of equal values open: the values must agree, and each index
    must point at its value."""
    x = TIES
    got = compiler.compile(lambda x: x.topk(3), x, backend="reference")(x)
    want = torch.from_numpy(x).topk(3)
    np.testing.assert_array_equal(got[0], want.values.numpy())
    np.testing.assert_array_equal(np.take_along_axis(x, got[1], 1), got[0])
    np.testing.assert_array_equal(got[1][0], [1, 2, 4])  # equal values: lower index first


# ---- gradients, against torch's autograd -----------------------------------------------------
GRAD_CASES = {
    "topk": (lambda t, x: x.topk(3).values * 2 + x.topk(2, 0, largest=False)[0].sum(), X),
    "sort": (lambda t, x: x.sort(1, descending=True).values.cumsum(1), X),
    "scatter": (lambda t, x: x.scatter(1, t.c(UNIQUE), x[:2, 1:4] * 3), X),
    "scatter_add": (lambda t, x: x.scatter_add(1, t.c(SCATTER), x[:2, :3] ** 2), X),
    "scatter_reduce_mean_amax": (lambda t, x: x.scatter_reduce(
        1, t.c(SCATTER), x[1:, 2:], "mean") + x.scatter_reduce(
        1, t.c(UNIQUE), x[1:, 2:] * 2, "amax", include_self=False), X),
    "index_tensors": (lambda t, x: x[t.c(np.array([0, 1, 0])), :, t.c(np.array([3, -1, 3]))],
                      X3),
    "setitem": (lambda t, x: _assign(t, x, "mask") + _assign(t, x, "basic") * 2
                + _assign(t, x, "list"), X3),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradient_matches_torch(name):
    fn, x = GRAD_CASES[name]
    out_shape = fn(_T(), torch.from_numpy(x.copy())).shape
    r = np.random.default_rng(3).standard_normal(out_shape).astype(np.float32)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (fn(_T(), tx) * torch.tensor(r, dtype=torch.float64)).sum().backward()
    gg = grad(trace(lambda x: (fn(_L(), x) * r).sum(), x), wrt=[], inputs=True)
    np.testing.assert_allclose(run(gg, x)[1], tx.grad.numpy(), rtol=1e-5, atol=1e-5,
                               err_msg=name)


# ---- training: a model built on the new methods, five steps against torch -------------------
def _build(lib):
    t = _T() if lib is torch.nn else _L()

    class Model(lib.Module):
        def __init__(self):
            super().__init__()
            self.proj = lib.Linear(6, 8)
            self.head = lib.Linear(4, 2)

        def forward(self, x):
            h = self.proj(x)  # [N, 8]
            top = h.topk(3, dim=1).values  # [N, 3]
            spread = h.scatter_add(1, t.c(np.array([[0, 0, 5]] * h.shape[0])), top)
            spread[spread < -1.0] = -1.0
            picked = spread[:, t.c(np.array([1, 7]))] + spread[t.c(np.arange(h.shape[0])),
                                                              h.argmax(1)][:, None]
            return self.head(t.cat([picked, h.sort(1).values[:, :2]], 1))

    return Model()


@pytest.mark.parametrize("kind", ["normal", "offset", "batch_of_one"])
def test_model_with_the_methods_trains_like_torch(kind, rng):
    torch.manual_seed(0)
    tm, model = _build(torch.nn), _build(nn)
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((1 if kind == "batch_of_one" else 4, 6)).astype(np.float32)
    if kind == "offset":
        x = 10 + 0.1 * x
    y = rng.standard_normal((x.shape[0], 2)).astype(np.float32)
    lr = 0.002 if kind == "offset" else 0.05  # (stays finite on inputs near 10)
    step = compiler.compile_training(model, nn.MSELoss(), optim.SGD(lr, momentum=0.9), x, y,
                                     backend="reference")
    theirs = torch.optim.SGD(tm.parameters(), lr, momentum=0.9)
    for k in range(5):
        got = step(x, y)
        theirs.zero_grad()
        loss = torch.nn.functional.mse_loss(tm(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        theirs.step()
        assert np.isfinite(loss.item())
        np.testing.assert_allclose(got, loss.item(), rtol=1e-5, atol=1e-6)
        for name, v in tm.state_dict().items():
            np.testing.assert_allclose(step.state_dict()[name], v.numpy(), rtol=1e-4,
                                       atol=1e-5, err_msg=f"{name} after step {k + 1}")


# ---- attention masks in every form torch takes ----------------------------------------------
def _attention_masks(lib, n, h, tgt, src):
    c = torch.from_numpy if lib is torch.nn else (lambda a: a)
    causal = np.triu(np.ones((tgt, src), bool), 1)
    per_head = np.random.default_rng(2).random((n * h, tgt, src)) < 0.3
    per_head[..., 0] = False  # every query keeps one key
    pad = np.zeros((n, src), bool)
    pad[0, -2:] = True
    return [{"attn_mask": c(causal), "is_causal": True},
            {"attn_mask": c(per_head), "key_padding_mask": c(np.where(pad, -np.inf, 0).astype(
                np.float32))},
            {"attn_mask": c(np.where(causal, -1e9, 0.5).astype(np.float32)),
             "key_padding_mask": c(pad), "need_weights": True,
             "average_attn_weights": False}]


@pytest.mark.filterwarnings("ignore:Support for mismatched")
@pytest.mark.parametrize("which", range(3))
def test_multihead_attention_mask_forms(which, rng):
    torch.manual_seed(0)
    tm, model = torch.nn.MultiheadAttention(8, 2), nn.MultiheadAttention(8, 2)
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    q, kv = randn(4, 2, 8), randn(5, 2, 8)
    kw_t = _attention_masks(torch.nn, 2, 2, 4, 5)[which]
    kw = _attention_masks(nn, 2, 2, 4, 5)[which]
    if "is_causal" in kw:  # self-attention for the causal mask
        kv = q[:, :, :]
        kw_t["attn_mask"], kw["attn_mask"] = kw_t["attn_mask"][:, :4], kw["attn_mask"][:, :4]
        if "need_weights" not in kw:
            kw_t["need_weights"] = kw["need_weights"] = False
    want = tm(*map(torch.from_numpy, (q, kv, kv)), **kw_t)
    got = compiler.compile(lambda q, kv: model(q, kv, kv, **kw), q, kv,
                           backend="reference")(q, kv)
    want = [w.detach().numpy() for w in want if w is not None]
    _compare([g for g in _flat(got) if g is not None], want, f"mask form {which}")


# ---- what cannot be traced says what to write instead ---------------------------------------
@pytest.mark.parametrize(("fn", "match"), [
    (lambda x: x[x > 0], r"torch\.where\(mask, x, 0\)"),
    (lambda x: x[0, x[0] > 0], "boolean mask"),
    (lambda x: x.__setitem__(x[:, 0].argmax(0), 1.0), "x.scatter"),
    (lambda x: x.__setitem__(x[:, 0] > 0, x[:2]), "data-dependent shape"),
    (lambda x: x.__setitem__((np.array([0, 1]), 0), 1.0), "index one at a time"),
    (lambda x: x.topk(6), "k=6"),
    (lambda x: x.scatter(1, np.array([[0, 5]]), 1.0), "out of range"),
    (lambda x: x.scatter(1, np.array([0, 1]), 1.0), "rank"),
    (lambda x: x.scatter(1, np.array([[0, 1]]), 1.0, reduce="multiply"), "multiply"),
    (lambda x: x.scatter_reduce(1, np.array([[0, 1]]), x, "prod"), "prod"),
    (lambda x: x.index_select(0, np.zeros((2, 2), np.int64)), "1-D"),
    (lambda x: x[np.array([True, False])], "leading axes"),
])
def test_untraceable_uses_say_what_to_write(fn, match):
    with pytest.raises(ir.LaminaError, match=match):
        trace(fn, X)
