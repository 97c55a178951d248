"""Each layer against the torch.nn layer of the same name and arguments, with torch's weights
loaded the way a user would: `load_state_dict({k: v.detach().numpy() ...})`.

Constructors are called with identical arguments on both sides, so this checks the API
(names, defaults, parameter keys and layouts) as well as the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

import compiler
from compiler import nn
from tests.conftest import assert_close

torch = pytest.importorskip("torch")


@dataclass
class P:
    """One parity case: `name(*args, **kwargs)` on both sides, called on `inputs`."""

    name: str
    args: tuple
    inputs: list  # shapes (float32 inputs) or arrays
    kwargs: dict = field(default_factory=dict)
    mode: str = "eval"
    call: dict = field(default_factory=dict)  # keyword arguments of forward()
    id: str = ""
    tol: float = 1e-5


def _f(*shape):
    return ("f32", shape)


CASES = [
    P("Linear", (5, 3), [_f(2, 5)]),
    P("Linear", (5, 3), [_f(2, 4, 5)], {"bias": False}, id="no_bias_3d"),
    P("Conv2d", (3, 4, 3), [_f(2, 3, 7, 7)], {"padding": 1}),
    P("Conv2d", (4, 6, 3), [_f(1, 4, 9, 8)], {"stride": 2, "groups": 2, "dilation": 2,
                                              "padding": 2}, id="groups_stride_dilation"),
    P("Conv2d", (4, 4, (3, 1)), [_f(1, 4, 6, 6)], {"groups": 4, "bias": False,
                                                   "stride": (1, 2)}, id="depthwise"),
    P("Conv2d", (2, 3, 4), [_f(1, 2, 7, 7)], {"padding": "same"}, id="same_even_kernel"),
    P("Conv2d", (2, 3, 3), [_f(1, 2, 6, 5)], {"padding": (2, 1), "padding_mode": "reflect"},
      id="reflect"),
    P("Conv2d", (2, 3, 3, 2, 1), [_f(1, 2, 6, 5)], {"padding_mode": "replicate"},
      id="replicate_positional"),
    P("MaxPool2d", (2,), [_f(1, 3, 6, 6)]),
    P("MaxPool2d", (3, 2), [_f(1, 2, 8, 8)], {"ceil_mode": True}, id="ceil"),
    P("MaxPool2d", (3, 2, 1), [_f(1, 2, 7, 6)], {"dilation": 2}, id="pad_dilation"),
    P("MaxPool2d", (3, 2, 1, 1, False, True), [_f(1, 2, 8, 7)], id="positional_ceil"),
    P("AvgPool2d", (3, 2, 1), [_f(1, 2, 8, 8)], {"ceil_mode": True}, id="ceil_pad"),
    P("AvgPool2d", (3, 2, 1), [_f(1, 2, 7, 7)], {"count_include_pad": False},
      id="exclude_pad"),
    P("AdaptiveAvgPool2d", (1,), [_f(2, 3, 5, 4)]),
    P("AdaptiveAvgPool2d", ((2, None),), [_f(2, 3, 6, 4)], id="tiling"),
    P("BatchNorm1d", (4,), [_f(6, 4)], id="eval_2d"),
    P("BatchNorm1d", (4,), [_f(3, 4, 5)], mode="train", id="train_3d"),
    P("BatchNorm2d", (3,), [_f(2, 3, 4, 5)], id="eval"),
    P("BatchNorm2d", (3,), [_f(2, 3, 4, 5)], {"eps": 1e-3}, mode="train", id="train"),
    P("BatchNorm2d", (3,), [_f(2, 3, 4, 5)], {"affine": False}, id="no_affine"),
    P("BatchNorm1d", (3,), [_f(4, 3)], {"track_running_stats": False}, id="untracked_eval"),
    P("LayerNorm", (6,), [_f(2, 3, 6)]),
    P("LayerNorm", ((3, 6),), [_f(2, 3, 6)], {"eps": 1e-6}, id="2d_shape"),
    P("LayerNorm", (6,), [_f(2, 6)], {"elementwise_affine": False}, id="no_affine"),
    P("Embedding", (10, 4), [np.array([[1, 2, 9], [0, 0, 3]], np.int64)]),
    P("Embedding", (10, 4, 0), [np.array([[1, 2, 9], [0, 0, 3]], np.int64)],
      id="padding_idx"),
    P("Dropout", (0.3,), [_f(4, 5)]),
    P("Dropout", (0.3, False), [_f(4, 5)], id="inplace_flag"),
    P("Flatten", (), [_f(2, 3, 4, 2)]),
    P("Flatten", (0, 1), [_f(2, 3, 4)], id="dims"),
    P("Identity", (), [_f(2, 3)]),
    P("ReLU", (), [_f(3, 4)]),
    P("ReLU", (True,), [_f(3, 4)], id="inplace_flag"),
    P("ReLU6", (), [("scaled", (3, 4))]),
    P("LeakyReLU", (0.2, True), [_f(3, 4)]),
    P("Sigmoid", (), [_f(3, 4)]),
    P("Tanh", (), [_f(3, 4)]),
    P("GELU", (), [_f(3, 4)]),
    P("GELU", (), [_f(3, 4)], {"approximate": "tanh"}, id="tanh"),
    *[c for name, args, kw in [
        ("SiLU", (), {}), ("Mish", (), {}), ("Hardswish", (), {}), ("Hardsigmoid", (), {}),
        ("ELU", (), {}), ("ELU", (0.5, True), {}), ("SELU", (), {"inplace": False}),
        ("Softplus", (), {}), ("Softplus", (2.0, 5.0), {}), ("Softsign", (), {}),
        ("Hardtanh", (-2.0, 0.5), {}), ("LeakyReLU", (), {})]
      for c in (P(name, args, [("scaled", (3, 4))], kw, id=f"scaled{args}"),
                P(name, args, [("extreme", (3, 4))], kw, id=f"extreme{args}"),
                P(name, args, [("offset", (1, 5))], kw, id=f"batch_of_one{args}"))],
    P("Unflatten", (1, (2, 3)), [_f(4, 6, 5)]),
    P("Unflatten", (-1, (2, -1)), [_f(2, 6)], id="last_inferred"),
    P("Softmax", (1,), [_f(2, 3, 4)]),
    P("LogSoftmax", (-1,), [_f(2, 3, 4)]),
    P("CrossEntropyLoss", (), [_f(4, 5), np.array([0, 4, 2, 2], np.int64)], id="indices"),
    P("CrossEntropyLoss", (), [_f(4, 5), ("probs", (4, 5))], id="probabilities"),
    P("CrossEntropyLoss", (), [_f(2, 3, 4), np.array([[0, 1, 2, 0], [2, 2, 1, 0]], np.int64)],
      {"reduction": "none"}, id="spatial_none"),
    P("CrossEntropyLoss", (None, None, -100, None, "sum"),
      [_f(4, 5), np.array([0, 4, 2, 2], np.int64)], id="positional_sum"),
    P("MSELoss", (), [_f(3, 4), _f(3, 4)]),
    P("MSELoss", (), [_f(3, 4), _f(3, 4)], {"reduction": "none"}, id="none"),
    P("MSELoss", (None, None, "sum"), [_f(3, 4), _f(3, 4)], id="positional_sum"),
    P("RNN", (4, 5), [_f(6, 2, 4)]),
    P("RNN", (4, 5, 2), [_f(2, 6, 4), _f(2, 2, 5)],
      {"nonlinearity": "relu", "batch_first": True}, id="relu_2layers_batch_first_h0"),
    P("LSTM", (4, 5), [_f(6, 2, 4)]),
    P("LSTM", (4, 5), [_f(6, 4)], id="unbatched"),
    P("LSTM", (4, 5, 2), [_f(3, 6, 4)], {"batch_first": True}, id="2layers_batch_first"),
    P("LSTM", (4, 5, 2), [_f(6, 3, 4)], {"bidirectional": True, "bias": False},
      id="bidirectional"),
    P("LSTM", (4, 5, 2), [_f(6, 3, 4), ("hc", (4, 3, 5))],
      {"bidirectional": True}, id="bidirectional_h0_c0"),
    P("GRU", (4, 5), [_f(6, 2, 4)]),
    P("GRU", (4, 5, 2), [_f(3, 6, 4), _f(2, 3, 5)], {"batch_first": True},
      id="2layers_batch_first_h0"),
    P("GRU", (4, 5, 3), [_f(6, 3, 4)], {"bidirectional": True}, id="3layers_bidirectional"),
    P("MultiheadAttention", (8, 2), [_f(3, 2, 8), _f(5, 2, 8), _f(5, 2, 8)]),
    P("MultiheadAttention", (8, 4), [_f(2, 3, 8), _f(2, 5, 8), _f(2, 5, 8)],
      {"batch_first": True}, call={"attn_mask": ("mask", (3, 5)),
                                   "average_attn_weights": False}, id="batch_first_mask"),
    P("MultiheadAttention", (8, 2), [_f(3, 2, 8), _f(5, 2, 6), _f(5, 2, 4)],
      {"kdim": 6, "vdim": 4, "bias": False},
      call={"key_padding_mask": np.array([[0, 0, 1, 0, 1], [0, 0, 0, 0, 0]], bool)},
      id="kdim_vdim_padding_mask"),
    P("MultiheadAttention", (8, 2), [_f(3, 2, 8), _f(5, 2, 8), _f(5, 2, 8)],
      call={"attn_mask": np.triu(np.ones((3, 5), bool), 1), "need_weights": False},
      id="bool_mask_no_weights"),
    P("MultiheadAttention", (8, 2), [_f(3, 8), _f(4, 8), _f(4, 8)], id="unbatched"),
    P("TransformerEncoderLayer", (8, 2, 16), [_f(5, 2, 8)]),
    P("TransformerEncoderLayer", (8, 2, 16), [_f(2, 5, 8)],
      {"batch_first": True, "norm_first": True, "activation": "gelu"},
      call={"src_mask": ("mask", (5, 5))}, id="norm_first_gelu_mask"),
]


def _array(spec, rng):
    if isinstance(spec, np.ndarray):
        return spec
    kind, shape = spec
    if kind == "scaled":
        return (rng.standard_normal(shape) * 5).astype(np.float32)
    if kind == "probs":
        p = rng.random(shape).astype(np.float32)
        return p / p.sum(1, keepdims=True)
    if kind == "mask":  # an additive float mask
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "hc":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "extreme":  # tails, the kinks at 0 and +-3, and non-finite values
        v = np.array([-1e4, -100, -30, -3, -1e-6, 0, 1e-6, 3, 30, 100, np.inf, np.nan],
                     np.float32)
        return np.resize(v, shape)
    if kind == "offset":
        return (rng.standard_normal(shape) * 0.1 + 10).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def _flat(out) -> list:
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in _flat(o)]
    return [out]


class _Call(nn.Module):
    """forward() with keyword arguments (masks) fixed, so the layer can be traced."""

    def __init__(self, layer, call):
        super().__init__()
        self.layer, self.call = layer, call

    def forward(self, *xs):
        return self.layer(*xs, **self.call)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("c", CASES, ids=lambda c: f"{c.name}-{c.id or 'default'}")
def test_matches_torch(c: P, rng):
    torch.manual_seed(0)
    tm = getattr(torch.nn, c.name)(*c.args, **c.kwargs).train(c.mode == "train")
    model = getattr(nn, c.name)(*c.args, **c.kwargs).train(c.mode == "train")
    assert list(model.state_dict()) == list(tm.state_dict())
    with torch.no_grad():  # batch-norm statistics that differ from the defaults
        for k, v in tm.state_dict().items():
            if k.endswith("running_var"):
                v.uniform_(0.5, 2)
            elif k.endswith(("running_mean", "bias")) and "BatchNorm" in c.name:
                v.normal_()
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    inputs = [_array(s, rng) for s in c.inputs]
    call = {k: _array(v, rng) if isinstance(v, tuple) else v for k, v in c.call.items()}
    t_in = [torch.tensor(x) for x in inputs]  # copies: inplace=True layers write to them
    if c.name == "LSTM" and len(t_in) == 2:  # torch takes (h0, c0) as one tuple
        inputs.append(inputs[1] * 0.5)
        t_in = [t_in[0], (t_in[1], torch.tensor(inputs[2]))]
    t_call = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v
              for k, v in call.items()}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        # torch's fused inference path for attention turns a float src_mask into NaNs
        # (torch 2.13); its ordinary path is the documented semantics
        torch.backends.mha.set_fastpath_enabled(False)
        with torch.no_grad():
            expected = _flat(tm(*t_in, **t_call))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    wrapped = _Call(model, call) if call else model
    got = _flat(compiler.compile(wrapped, *inputs, backend="reference", opt_level=0,
                                 training=c.mode == "train")(*inputs))
    # None results (attention weights not asked for) on both sides, or left out by compile
    got, expected = ([a for a in out if a is not None] for out in (got, expected))
    assert len(got) == len(expected)
    for i, (a, e) in enumerate(zip(got, expected)):
        assert_close(a, e.numpy(), rtol=c.tol, atol=c.tol, what=f"output {i}")


ACTIVATIONS = ["SiLU", "Mish", "Hardswish", "Hardsigmoid", "ELU", "SELU", "Softplus",
               "Softsign", "Hardtanh", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "ReLU6"]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activations_on_llvm(name, rng):
    """The same layers through native code, on ordinary and extreme values."""
    x = np.concatenate([_array(("scaled", (2, 12)), rng), _array(("extreme", (1, 12)), rng)])
    if name == "GELU":  # torch gives NaN for GELU(+inf); the limit (and Lamina) says +inf
        x[np.isinf(x)] = 1e4
    with torch.no_grad():
        expected = getattr(torch.nn, name)()(torch.from_numpy(x)).numpy()
    got = compiler.compile(getattr(nn, name)(), x, backend="llvm")(x)
    assert_close(got, expected, rtol=1e-5, atol=1e-6, what=name)


def test_small_cnn_loads_torch_weights(rng):
    """A whole model: Sequential's numbered keys ('0.weight') and nested modules."""
    def build(lib):
        return lib.Sequential(
            lib.Conv2d(3, 8, 3, padding=1), lib.BatchNorm2d(8), lib.ReLU(), lib.MaxPool2d(2),
            lib.Conv2d(8, 8, 3, groups=2), lib.ReLU6(), lib.AdaptiveAvgPool2d(1),
            lib.Flatten(), lib.Dropout(0.2), lib.Linear(8, 4), lib.LogSoftmax(-1))

    tm, model = build(torch.nn).eval(), build(nn).eval()
    with torch.no_grad():
        tm[1].running_mean.normal_()
        tm[1].running_var.uniform_(0.5, 2)
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((2, 3, 10, 10)).astype(np.float32)
    with torch.no_grad():
        expected = tm(torch.from_numpy(x)).numpy()
    for level in (0, 2):
        assert_close(compiler.compile(model, x, opt_level=level)(x), expected, rtol=1e-5,
                     atol=1e-5, what=f"O{level}")


def test_transformer_block_with_embedding_loads_torch_weights(rng):
    class Tiny(nn.Module):
        def __init__(self, lib):
            super().__init__()
            self.embed = lib.Embedding(20, 8)
            self.encoder = lib.TransformerEncoderLayer(8, 2, 32, batch_first=True)
            self.head = lib.Linear(8, 20)

        def forward(self, ids):
            return self.head(self.encoder(self.embed(ids)))

    class TorchTiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(20, 8)
            self.encoder = torch.nn.TransformerEncoderLayer(8, 2, 32, batch_first=True)
            self.head = torch.nn.Linear(8, 20)

        def forward(self, ids):
            return self.head(self.encoder(self.embed(ids)))

    tm, model = TorchTiny().eval(), Tiny(nn).eval()
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    ids = rng.integers(0, 20, (2, 7)).astype(np.int64)
    with torch.no_grad():
        expected = tm(torch.from_numpy(ids)).numpy()
    for level in (0, 2):
        assert_close(compiler.compile(model, ids, opt_level=level)(ids), expected, rtol=1e-4,
                     atol=1e-5, what=f"O{level}")
