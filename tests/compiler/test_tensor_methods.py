"""Traced tensors behave like torch tensors (issue 19, must 2).

Each case is one function `fn(lib, *inputs)` written once, the way torch code is written:
it runs in torch eager with lib=torch on torch tensors, and is compiled by Lamina with
lib=compiler.functional on the same numpy inputs, on the reference and LLVM backends. The
results must agree in value, shape and dtype; nested results keep their structure.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import compiler
import ir
from backends.reference import run
from compiler import functional as F
from compiler import nn
from compiler.frontends.tracing import trace
from passes.autodiff import grad

torch = pytest.importorskip("torch")

BACKENDS = ["reference", "llvm"]
_rng = np.random.default_rng(5)


def randn(*shape):
    return _rng.standard_normal(shape).astype(np.float32)


def ints(lo, hi, *shape):
    return _rng.integers(lo, hi, shape).astype(np.int64)


X = randn(3, 4)
Y = randn(3, 4)
TIES = np.array([[1, 3, 3, -2], [0, 0, 0, 0], [5, -1, 5, 2]], np.float32)
NAN = np.array([[1, np.nan, 3, np.nan], [-np.inf, 2, np.inf, 0], [2, 2, 1, 1]], np.float32)
X3 = randn(2, 3, 4)
IDS = ints(0, 9, 3, 4)
MASK = X > 0.3
OFFSET = (1000 + 0.01 * _rng.standard_normal((3, 16))).astype(np.float32)

CASES = {
    # comparisons and logic
    "gt": (lambda t, x, y: x > y, [X, Y]),
    "lt_scalar": (lambda t, x: x < 0.5, [X]),
    "ge_ties_nan": (lambda t, x, y: x >= y, [NAN, TIES]),
    "le_ties_nan": (lambda t, x, y: x <= y, [NAN, TIES]),
    "eq_ne": (lambda t, x, y: (x == y, x != y), [NAN, TIES]),
    "int_vs_float_scalar": (lambda t, i: (i > 4.5, i == 3, i * 0.5, i / 2), [IDS]),
    "and_or_xor_not": (lambda t, x, y: ((x > 0) & (y < 0), (x > 0) | (y < 0),
                                        (x > 0) ^ (y < 0), ~(x > 0)), [X, Y]),
    "logical": (lambda t, x, m: (m.logical_not(), m.logical_and(x > 0), x.isnan(),
                                 x.logical_or(m), m.logical_xor(x)),
                [NAN, MASK]),
    "bool_arithmetic": (lambda t, x, m: (x * m, m + x, m.float() - 1), [X, MASK]),
    # masks and selection
    "masked_fill": (lambda t, x, m: x.masked_fill(m, -math.inf), [X, MASK]),
    "masked_fill_broadcast": (lambda t, x, m: x.masked_fill(m[0], 7.0), [X3, MASK]),
    "where": (lambda t, c, x, y: t.where(c, x, y), [MASK, X, Y]),
    "where_scalars": (lambda t, c, x: (t.where(c, x, 0.0), t.where(c, 1.0, x)), [MASK, X]),
    "where_method": (lambda t, c, x, y: x.where(c, y), [MASK, X, Y]),
    "where_promotes": (lambda t, c, x, i: t.where(c, x, i), [MASK, X, IDS]),
    "clamp": (lambda t, x: (x.clamp(-0.5, 0.5), x.clamp(min=0), x.clamp(max=-0.2)), [NAN]),
    "clamp_int": (lambda t, i: (i.clamp(2, 6), i.clamp(min=3)), [IDS]),
    "clamp_tensor_bounds": (lambda t, x, lo: x.clamp(lo, lo + 1), [X, Y]),
    "maximum_minimum": (lambda t, x, y: (x.maximum(y), t.minimum(x, y)), [X, Y]),
    # reductions with dim and keepdim
    "max_dim": (lambda t, x: x.max(1), [TIES]),
    "min_dim_keepdim": (lambda t, x: x.min(dim=0, keepdim=True), [TIES]),
    "max_nan_inf": (lambda t, x: (x.max(1), x.min(1)), [NAN]),
    "max_all_and_other": (lambda t, x, y: (x.max(), x.min(), x.max(y), t.max(x, 1)), [X, Y]),
    "max_3d_negative_dim": (lambda t, x: x.max(-2), [X3]),
    "max_int": (lambda t, i: (i.max(1), i.min(), i.argmax(0)), [IDS]),
    "argmax_argmin": (lambda t, x: (x.argmax(1), x.argmin(0, keepdim=True), x.argmax(),
                                    t.argmin(x), x.argmax(keepdim=True)), [TIES]),
    "argmax_nan": (lambda t, x: (x.argmax(1), x.argmin(1)), [NAN]),
    "sum_mean": (lambda t, x: (x.sum(1), x.sum((0, 2), keepdim=True), x.mean(-1, True),
                               x.sum(), t.mean(x, 0)), [X3]),
    "sum_int_bool": (lambda t, i, m: (i.sum(1), m.sum(), m.sum(0, keepdim=True)), [IDS, MASK]),
    "var_std": (lambda t, x: (x.var(1), x.var(1, unbiased=False), x.var(correction=0),
                              x.std(0, keepdim=True), x.std(), x.var((0, 2))), [X3]),
    "var_std_offset": (lambda t, x: (x.var(1), x.std(1, correction=0)), [OFFSET]),
    "amax_amin": (lambda t, x: (x.amax((0, 1)), x.amin(-1, keepdim=True)), [X3]),
    "cumsum": (lambda t, x: (x.cumsum(1), t.cumsum(x, 0), x.cumsum(-1)), [X3]),
    "cumsum_int_inf": (lambda t, i, x: (i.cumsum(1), x.cumsum(1)), [IDS, NAN]),
    "gather": (lambda t, x, i, j: (x.gather(1, i), t.gather(x, 0, j)),
               [X, ints(0, 4, 3, 4), ints(0, 3, 2, 4)]),
    "gather_narrower": (lambda t, x, i: x.gather(2, i), [X3, ints(0, 4, 2, 2, 6)]),
    # shapes
    "expand": (lambda t, x: (x[:, :1].expand(3, 5), x[None].expand(2, -1, -1),
                             x[0].expand_as(x)), [X]),
    "repeat": (lambda t, x: (x.repeat(2, 3), x.repeat(2, 1, 1), x[0].repeat(3)), [X]),
    "chunk_split": (lambda t, x: (x.chunk(3, dim=1), x.split(2, dim=-1), x.split([1, 3], 2),
                                  x.chunk(2), t.split(x, 1)), [X3]),
    "stack_cat": (lambda t, x, y: (t.stack([x, y]), t.stack([x, y], dim=-1),
                                   t.cat([x, y], dim=1), t.cat((x, y, x))), [X, Y]),
    "unbind_movedim": (lambda t, x: (x.unbind(1), x.movedim(0, -1), x.narrow(2, 1, 2),
                                   x.narrow(-1, -3, 2)), [X3]),
    "tril_triu": (lambda t, x: (x.tril(), x.triu(1), t.tril(x, -1), x.triu(-2)), [X3]),
    "tril_wide": (lambda t, x: (x.tril(1), x.triu()), [randn(3, 6)]),
    "to_dtype": (lambda t, x: (x.to(torch.float64), x.double().float(), x.long(), x.int(),
                               (x > 0).to(x.dtype), x.to(torch.int64), x.type_as(x > 0),
                               x.to("cpu"), x.to(float), x.to(int), x.to(dtype=torch.int32)),
                 [X * 4]),
    "float_of_int": (lambda t, i: (i.float(), i.to(torch.float32) / 3, i.bool()), [IDS]),
    "detach": (lambda t, x: x.detach() * 2, [X]),
    "full_like": (lambda t, x: (t.zeros_like(x), t.ones_like(x), t.full_like(x, 2.5)), [X]),
    # indexing
    "index_basic": (lambda t, x: (x[1], x[:, 1:3], x[..., None], x[::2, -1], x[None, ..., 0],
                                  x[-1, 1:]), [X3]),
    "index_tensor": (lambda t, x, i: (x[i], x[:, i], x[1:, i[0]], x[..., i[:, 0]]),
                     [X3, ints(-2, 2, 2, 3)]),
    "index_int_and_tensor": (lambda t, x, i: (x[0, :, i], x[:, 0, i], x[i, 0]),
                             [randn(2, 3, 4, 5), ints(0, 2, 3)]),
    "index_list": (lambda t, x: (x[[0, 2]], x[:, [3, 0, 0]]), [X]),
    # einsum
    "einsum_matmul": (lambda t, x, y: (t.einsum("ij,kj->ik", x, y), t.einsum("ij,jk", x, y.T)),
                      [X, Y]),
    "einsum_attention": (lambda t, q, k: t.einsum("bhqd,bhkd->bhqk", q, k),
                         [randn(2, 3, 4, 5), randn(2, 3, 6, 5)]),
    "einsum_reductions": (lambda t, x, y: (t.einsum("ijk->", x), t.einsum("ijk->kj", x),
                                           t.einsum("ijk,ik->j", x, y[:2]),
                                           t.einsum("i,j->ij", x[0, 0], x[1, 1]),
                                           t.einsum("ij,jk,kl->il", x[0], x[0].T, x[1])),
                          [X3, Y]),
}


def _to_numpy(out):
    if isinstance(out, (tuple, list)):
        return tuple(_to_numpy(o) for o in out)
    return out.detach().numpy()


def _compare(got, want, what):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), f"{what}: {got!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            _compare(g, w, f"{what}[{i}]")
        return
    got = np.asarray(got)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, torch {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, torch {want.shape}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def _flat(out) -> list:
    return [a for o in out for a in _flat(o)] if isinstance(out, (tuple, list)) else [out]


def _nest(structure, flat: list):
    if isinstance(structure, tuple):
        return tuple(_nest(s, flat) for s in structure)
    return flat.pop(0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_method_matches_torch(name, backend):
    fn, inputs = CASES[name]
    want = _to_numpy(fn(torch, *(torch.from_numpy(x.copy()) for x in inputs)))
    compiled = compiler.compile(lambda *xs: fn(F, *xs), *inputs, backend=backend)
    got = compiled(*inputs)
    if isinstance(want, tuple):  # the values in torch's nesting, however compile() nests
        got = _nest(want, _flat(got))
    _compare(got, want, name)


# ---- gradients through the methods, against torch's autograd ------------------------------
GATHER = ints(0, 4, 3, 5)  # repeated indices: their gradients add up
GRAD_CASES = {
    "max_dim_ties": (lambda t, x: x.max(1).values, TIES),
    "min_dim_keepdim": (lambda t, x: x.min(0, keepdim=True)[0], TIES),
    "max_all": (lambda t, x: x.max(), X),
    "gather": (lambda t, x: x.gather(1, t.tensor_of(GATHER)), X),
    "index_tensor_repeats": (lambda t, x: x[t.tensor_of(np.array([0, 2, 0]))], X),
    "cumsum": (lambda t, x: x.cumsum(1), X3),
    "var_std": (lambda t, x: x.var(1) + x.std(0).sum(), X3),
    "masked_fill_where": (lambda t, x: t.where(x > 0, x * 2, x.masked_fill(x < -0.5, 1.0)), X),
    "clamp": (lambda t, x: x.clamp(-0.5, 0.5) + x.clamp(min=0.1), X),
    "expand_repeat": (lambda t, x: x[:, :1].expand(3, 4) * x.repeat(1, 1) + x.repeat(2, 1)[1:4],
                      X),
    "tril": (lambda t, x: x.tril(-1) + x.triu(1) * 2, X3),
    "einsum": (lambda t, x: t.einsum("ijk,ilk->jl", x, x), X3),
    "stack_cat_chunk": (lambda t, x: t.cat([*x.chunk(2, 1), t.stack([x, x], 0)[1]], 1), X),
}


class _Torch:
    """torch, plus `tensor_of` for constant index arrays."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def tensor_of(a):
        return torch.from_numpy(a)


class _Lamina:
    def __getattr__(self, name):
        return getattr(F, name)

    @staticmethod
    def tensor_of(a):
        return a


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradient_matches_torch(name):
    fn, x = GRAD_CASES[name]
    out_shape = fn(_Torch(), torch.from_numpy(x.copy())).shape
    r = np.random.default_rng(3).standard_normal(out_shape).astype(np.float32)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (fn(_Torch(), tx) * torch.tensor(r, dtype=torch.float64)).sum().backward()
    g = trace(lambda x: (fn(_Lamina(), x) * r).sum(), x)
    gg = grad(g, wrt=[], inputs=True)
    for backend in BACKENDS:
        if backend == "reference":
            dx = run(gg, x)[1]
        else:
            dx = compiler.compile(gg, x, backend=backend)(x)[1]
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-5,
                                   err_msg=f"{name} ({backend})")


# ---- attention with boolean masks, written the usual way ------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_multihead_attention_takes_traced_boolean_masks(backend):
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    model = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})

    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = model

        def forward(self, x, causal, padding):
            return self.mha(x, x, x, attn_mask=causal, key_padding_mask=padding)[0]

    x = randn(2, 5, 8)
    causal = np.triu(np.ones((5, 5), bool), 1)
    padding = np.array([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]], bool)
    with torch.no_grad():
        want = tm(*(torch.from_numpy(x),) * 3, attn_mask=torch.from_numpy(causal),
                  key_padding_mask=torch.from_numpy(padding))[0].numpy()
    got = compiler.compile(Masked(), x, causal, padding, backend=backend)(x, causal, padding)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _gpt_attention(lib, tril, n_embd=8, n_head=2, block=6):
    """nanoGPT's CausalSelfAttention, verbatim but for `lib` (torch.nn or compiler.nn), `F`
    and the buffer's constructor."""
    functional = torch.nn.functional if lib is torch.nn else F

    class CausalSelfAttention(lib.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = lib.Linear(n_embd, 3 * n_embd)
            self.c_proj = lib.Linear(n_embd, n_embd)
            self.n_head, self.n_embd = n_head, n_embd
            self.register_buffer("bias", tril(block).reshape(1, 1, block, block))

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = functional.softmax(att, dim=-1)
            y = att @ v
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            # the same mask again, built from the traced scores themselves
            causal = torch.ones_like(att) if lib is torch.nn else F.ones_like(att)
            keep = causal.tril().bool()
            return self.c_proj(y), att.masked_fill(~keep, 0.0).sum(-1)

    return CausalSelfAttention()


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpt_style_causal_mask(backend):
    torch.manual_seed(0)
    tm = _gpt_attention(torch.nn, lambda n: torch.tril(torch.ones(n, n)))
    model = _gpt_attention(nn, lambda n: np.tril(np.ones((n, n), np.float32)))
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = randn(2, 5, 8)
    with torch.no_grad():
        want = [t.numpy() for t in tm(torch.from_numpy(x))]
    got = compiler.compile(model, x, backend=backend)(x)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


# ---- what cannot be traced says so -----------------------------------------------------------
@pytest.mark.parametrize("fn,message", [
    (lambda x: x[x > 0], "boolean mask"),
    (lambda x: x[ints(0, 2, 2), np.array([0, 7])], "out of range"),
    (lambda x: x.__setitem__(x.argmax(0), 1.0), "assignment at traced index"),
    (lambda x: (x > 0) & (x > 1).long(), "bool tensors"),
    (lambda x: x.long().mean(), "float"),
    (lambda x: x.to(np.float16), "dtype"),
    (lambda x: F.einsum("ii->i", x), "repeated index"),
    (lambda x: x.gather(0, ints(0, 2, 3)), "rank"),
], ids=["bool_index", "two_tensor_indices_out_of_range", "setitem_traced_index",
        "bitwise_int", "mean_int", "float16", "einsum_diagonal", "gather_rank"])
def test_untraceable_uses_are_named(fn, message):
    with pytest.raises(ir.LaminaError, match=message):
        trace(fn, X)
