"""TransformerDecoderLayer, the encoder/decoder stacks and Transformer against torch.nn, with
torch's weights loaded through load_state_dict: state_dict keys, the forward pass (ordinary
inputs, a large common offset, extreme values, a batch of one) under every mask form torch
takes (bool and additive float attention masks, key padding masks, the causal mask), and five
SGD steps through compile_training compared with torch's."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

import compiler
from compiler import nn, optim
from ir import LaminaError, ShapeError
from tests.conftest import assert_close

torch = pytest.importorskip("torch")

pytestmark = [  # torch's own notes on the masks and its fast path, not ours
    pytest.mark.filterwarnings("ignore:Support for mismatched"),
    pytest.mark.filterwarnings("ignore:enable_nested_tensor is True"),
]

E, H, FF = 8, 2, 16  # d_model, heads, feed-forward width
T, S, N = 4, 5, 3  # target and source lengths, batch


@dataclass
class C:
    """A model built by `build(lib)` on inputs of `shapes`; `masks(lib, n)` gives the keyword
    masks for batch size n (numpy for Lamina, torch tensors for torch)."""

    id: str
    build: object
    shapes: list
    masks: object = None
    batch_first: bool = False
    kw: dict = field(default_factory=dict)


def _lib_mask(lib, array):
    return torch.from_numpy(array) if lib is torch.nn else array


def _causal(n):
    return nn.Transformer.generate_square_subsequent_mask(n)


def _padding(n, length, first_padded=2):
    """Key padding [n, length], bool: the last positions of each sequence after the first
    `first_padded` (never a whole row: torch gives NaN there, as we do)."""
    m = np.zeros((n, length), bool)
    for i in range(n):
        m[i, max(1, length - 1 - i):] = True
    return m


def _decoder_masks(lib, n):
    return {"tgt_mask": _lib_mask(lib, _causal(T)),
            "tgt_key_padding_mask": _lib_mask(lib, _padding(n, T)),
            "memory_key_padding_mask": _lib_mask(lib, _padding(n, S))}


def _bool_memory_mask(lib, n):
    m = np.zeros((T, S), bool)
    m[0, 3:] = True
    m[2, :2] = True
    return {"memory_mask": _lib_mask(lib, m), "tgt_mask": _lib_mask(lib, np.triu(
        np.ones((T, T), bool), 1)), "tgt_is_causal": True}


def _float_padding(lib, n):
    pad = np.where(_padding(n, S), -np.inf, 0).astype(np.float32)
    return {"memory_key_padding_mask": _lib_mask(lib, pad),
            "memory_mask": _lib_mask(lib, np.random.default_rng(1).standard_normal(
                (T, S)).astype(np.float32))}


def _transformer_masks(lib, n):
    return {"src_key_padding_mask": _lib_mask(lib, _padding(n, S)),
            "tgt_mask": _lib_mask(lib, _causal(T)),
            "memory_key_padding_mask": _lib_mask(lib, _padding(n, S))}


def _encoder_masks(lib, n):
    m = np.zeros((S, S), bool)
    m[1, 4] = m[3, 0] = True
    return {"mask": _lib_mask(lib, m),
            "src_key_padding_mask": _lib_mask(lib, np.where(_padding(n, S), -1e9, 0).astype(
                np.float32))}


def _causal_encoder(lib, n):
    return {"mask": _lib_mask(lib, _causal(S)), "is_causal": True}


def _decoder(**kw):
    return lambda lib: lib.TransformerDecoderLayer(E, H, FF, dropout=0.0, **kw)


def _transformer(**kw):
    return lambda lib: lib.Transformer(E, H, 2, 2, FF, dropout=0.0, **kw)


def _encoder_stack(lib):
    layer = lib.TransformerEncoderLayer(E, H, FF, dropout=0.0)
    return lib.TransformerEncoder(layer, 2, lib.LayerNorm(E), enable_nested_tensor=False)


def _decoder_stack(lib):
    return lib.TransformerDecoder(lib.TransformerDecoderLayer(E, H, FF, dropout=0.0,
                                                              norm_first=True), 3)


CASES = [
    C("decoder", _decoder(), [(T, N, E), (S, N, E)]),
    C("decoder_masks", _decoder(), [(T, N, E), (S, N, E)], _decoder_masks),
    C("decoder_bool_masks_causal_hint", _decoder(norm_first=True), [(T, N, E), (S, N, E)],
      _bool_memory_mask),
    C("decoder_float_masks", _decoder(activation="gelu"), [(T, N, E), (S, N, E)],
      _float_padding),
    C("decoder_batch_first_no_bias", _decoder(batch_first=True, bias=False,
                                              layer_norm_eps=1e-3),
      [(N, T, E), (N, S, E)], _decoder_masks, batch_first=True),
    C("decoder_unbatched", _decoder(), [(T, E), (S, E)]),
    C("decoder_stack", _decoder_stack, [(T, N, E), (S, N, E)], _decoder_masks),
    C("encoder_stack_masks", _encoder_stack, [(S, N, E)], _encoder_masks),
    C("encoder_stack_causal", _encoder_stack, [(S, N, E)], _causal_encoder),
    C("transformer", _transformer(), [(S, N, E), (T, N, E)], _transformer_masks),
    C("transformer_batch_first_norm_first", _transformer(batch_first=True, norm_first=True,
                                                         activation="gelu"),
      [(N, S, E), (N, T, E)], _transformer_masks, batch_first=True),
]


def _with_masks(model, masks):
    """The model called with its masks as keyword arguments: a module of tensor inputs."""
    lib = torch.nn if isinstance(model, torch.nn.Module) else nn
    kw = masks or {}

    class Masked(lib.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, *xs):
            return self.inner(*xs, **kw)

    return Masked()


def _pair(c: C, n: int):
    torch.manual_seed(0)
    tm, model = c.build(torch.nn).eval(), c.build(nn).eval()
    assert list(model.state_dict()) == list(tm.state_dict())
    with torch.no_grad():  # weights away from their initial values
        for v in tm.parameters():
            v.add_(torch.randn_like(v) * 0.2)
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    masks = c.masks
    return (_with_masks(tm, masks(torch.nn, n) if masks else None),
            _with_masks(model, masks(nn, n) if masks else None))


def _inputs(kind, c: C, rng):
    shapes = c.shapes
    if kind == "batch_of_one" and len(shapes[0]) == 3:
        b = 0 if c.batch_first else 1
        shapes = [tuple(1 if i == b else d for i, d in enumerate(s)) for s in shapes]
    xs = []
    for s in shapes:
        x = rng.standard_normal(s)
        if kind == "offset":
            x = 100 + 0.1 * x
        elif kind == "extreme":
            x = np.resize(np.array([-1e3, -30, -1e-6, 0, 1e-6, 30, 1e3]), s) * np.sign(x + 0.3)
        xs.append(x.astype(np.float32))
    return xs


def _batch(c: C, xs) -> int:
    return 1 if xs[0].ndim == 2 else xs[0].shape[0 if c.batch_first else 1]


def _torch_forward(tm, xs):
    # with gradients on: torch's inference fast path (nested tensors) is not taken
    return tm(*(torch.from_numpy(x) for x in xs)).detach().numpy()


KINDS = ["normal", "offset", "extreme", "batch_of_one"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_forward_matches_torch(c: C, kind, rng):
    if kind == "batch_of_one" and c.id.endswith("unbatched"):
        pytest.skip("no batch axis")
    xs = _inputs(kind, c, rng)
    tm, model = _pair(c, _batch(c, xs))
    expected = _torch_forward(tm, xs)
    got = compiler.compile(model, *xs, backend="reference", opt_level=0)(*xs)
    tol = 2e-3 if kind == "extreme" else 2e-4
    assert_close(got, expected, rtol=tol, atol=tol, what=f"{c.id} {kind}")


def test_transformer_on_llvm(rng):
    c = next(c for c in CASES if c.id == "transformer")
    xs = _inputs("normal", c, rng)
    tm, model = _pair(c, N)
    got = compiler.compile(model, *xs)(*xs)
    assert_close(got, _torch_forward(tm, xs), rtol=2e-4, atol=2e-4, what="llvm")


def test_masks_as_traced_inputs(rng):
    """Padding masks that arrive with the batch (bool graph inputs) and a float causal mask
    built in the graph from a traced tensor."""
    c = next(c for c in CASES if c.id == "transformer")
    tm, model = _pair(c, N)
    src, tgt = _inputs("normal", c, rng)
    pad = _padding(N, S)

    def forward(lib, src, tgt, pad):
        causal = (tgt[:, 0, 0:1] * 0 + 1).expand(T, T).triu(1) if lib is nn else \
            torch.ones(T, T).triu(1)
        mask = causal.masked_fill(causal > 0, float("-inf"))
        return (model.inner if lib is nn else tm.inner)(src, tgt, tgt_mask=mask,
                                                        src_key_padding_mask=pad,
                                                        memory_key_padding_mask=pad)

    got = compiler.compile(lambda *xs: forward(nn, *xs), src, tgt, pad,
                           backend="reference")(src, tgt, pad)
    want = forward(torch, *map(torch.from_numpy, (src, tgt, pad))).detach().numpy()
    assert_close(got, want, rtol=2e-4, atol=2e-4)


TRAINED = ["decoder_masks", "decoder_batch_first_no_bias", "encoder_stack_masks",
           "transformer", "transformer_batch_first_norm_first"]


@pytest.mark.parametrize("case", TRAINED)
def test_trains_like_torch(case, rng):
    """Five SGD steps (momentum 0.9) under an MSE loss: every parameter after every step."""
    c = next(c for c in CASES if c.id == case)
    xs = _inputs("normal", c, rng)
    tm, model = _pair(c, _batch(c, xs))
    tm.train(), model.train()
    y = rng.standard_normal(_torch_forward(tm, xs).shape).astype(np.float32)
    step = compiler.compile_training(model, nn.MSELoss(), optim.SGD(0.05, momentum=0.9),
                                     tuple(xs) if len(xs) > 1 else xs[0], y,
                                     backend="reference")
    theirs = torch.optim.SGD(tm.parameters(), 0.05, momentum=0.9)
    for t in range(5):
        got = step(*xs, y)
        theirs.zero_grad()
        want = torch.nn.functional.mse_loss(tm(*map(torch.from_numpy, xs)),
                                            torch.from_numpy(y))
        want.backward()
        theirs.step()
        np.testing.assert_allclose(got, want.item(), rtol=1e-4, atol=1e-5,
                                   err_msg=f"loss {t}")
        state = step.state_dict()
        for k, v in tm.state_dict().items():
            np.testing.assert_allclose(state[k], v.numpy(), rtol=2e-4, atol=2e-5,
                                       err_msg=f"{k} after step {t + 1}")


def test_state_dict_and_defaults_are_torchs():
    torch.manual_seed(0)
    t, m = torch.nn.Transformer(), nn.Transformer()
    assert list(m.state_dict()) == list(t.state_dict())
    assert {k: v.shape for k, v in m.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in t.state_dict().items()}
    # Xavier-initialised matrices, as torch's _reset_parameters
    w = m.state_dict()["decoder.layers.0.linear1.weight"]
    assert np.abs(w).max() <= np.sqrt(6 / (512 + 2048)) + 1e-7
    assert m.d_model == 512 and m.nhead == 8 and not m.batch_first


def test_generate_square_subsequent_mask_is_torchs():
    for n in (1, 4):
        np.testing.assert_array_equal(nn.Transformer.generate_square_subsequent_mask(n),
                                      torch.nn.Transformer.generate_square_subsequent_mask(n))
    assert nn.Transformer.generate_square_subsequent_mask(3, dtype=np.float64).dtype == \
        np.float64


def test_stack_layers_are_independent_copies():
    layer = nn.TransformerDecoderLayer(E, H, FF)
    stack = nn.TransformerDecoder(layer, 2)
    a, b = stack.layers[0], stack.layers[1]
    assert a.linear1.weight is not b.linear1.weight
    np.testing.assert_array_equal(a.linear1.weight, b.linear1.weight)
    assert a.dropout.seed != b.dropout.seed  # their own dropout masks


def test_custom_encoder_and_decoder():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, FF), 1)
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(E, H, FF), 1)
    m = nn.Transformer(E, H, custom_encoder=enc, custom_decoder=dec)
    assert m.encoder is enc and m.decoder is dec
    assert "encoder.norm.weight" not in m.state_dict()


@pytest.mark.parametrize(("shapes", "match"), [
    ([(S, 2, E), (T, 3, E)], "batch number"),
    ([(S, 2, E), (T, 2, E + 1)], "feature number"),
])
def test_transformer_bad_inputs_name_the_layer(shapes, match):
    m = nn.Transformer(E, H, 1, 1, FF).eval()
    xs = [np.zeros(s, np.float32) for s in shapes]
    with pytest.raises(ShapeError, match=match):
        compiler.compile(m, *xs, backend="reference")


@pytest.mark.parametrize(("build", "match"), [
    (lambda: nn.TransformerDecoderLayer(E, 3), "multiple of num_heads"),
    (lambda: nn.TransformerDecoderLayer(E, H, activation="swish"), "activation"),
    (lambda: nn.TransformerDecoder(nn.TransformerDecoderLayer(E, H), -1), "num_layers"),
    (lambda: nn.Transformer.generate_square_subsequent_mask(3, dtype="int64"), "float"),
])
def test_bad_arguments_are_lamina_errors(build, match):
    with pytest.raises(LaminaError, match=match):
        build()


def test_is_causal_needs_a_mask_as_in_torch():
    layer = nn.TransformerDecoderLayer(E, H, FF).eval()

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, tgt, memory):
            return self.layer(tgt, memory, tgt_is_causal=True)

    x = np.zeros((T, N, E), np.float32)
    with pytest.raises(ShapeError, match="is_causal needs an explicit attn_mask"):
        compiler.compile(M(), x, np.zeros((S, N, E), np.float32), backend="reference")
