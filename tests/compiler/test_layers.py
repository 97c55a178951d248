"""Every layer compiler.nn exports traces, runs, round-trips its IR text and its state dict.

Cases are keyed by class: a layer exported without a case here fails
`test_every_exported_layer_has_a_case`, so nobody has to remember to add one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import compiler
import ir
from compiler import nn
from tests.conftest import assert_close

_rng = np.random.default_rng(0)


def f32(*shape):
    return _rng.standard_normal(shape).astype(np.float32)


def i64(high, *shape):
    return _rng.integers(0, high, shape).astype(np.int64)


@dataclass
class Case:
    build: Callable[[], nn.Module]  # a fresh layer (fresh random parameters)
    inputs: tuple[np.ndarray, ...]
    shapes: tuple[tuple[int, ...], ...]  # every output's shape, nesting flattened
    keys: tuple[str, ...] = ()  # torch's state_dict keys, in torch's order


LSTM_KEYS = tuple(f"{w}_l0{s}" for s in ("", "_reverse")
                  for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
RNN_KEYS = tuple(f"{w}_l{i}" for i in (0, 1)
                 for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
MHA_KEYS = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
NORM_KEYS = ("norm.weight", "norm.bias")
ENCODER_KEYS = tuple(f"self_attn.{k}" for k in MHA_KEYS) + tuple(
    f"{m}.{p}" for m in ("linear1", "linear2", "norm1", "norm2") for p in ("weight", "bias"))
DECODER_KEYS = tuple(f"{a}.{k}" for a in ("self_attn", "multihead_attn") for k in MHA_KEYS) + \
    tuple(f"{m}.{p}" for m in ("linear1", "linear2", "norm1", "norm2", "norm3")
          for p in ("weight", "bias"))

CASES: dict[type, Case] = {
    nn.Linear: Case(lambda: nn.Linear(4, 3), (f32(2, 4),), ((2, 3),), ("weight", "bias")),
    nn.Conv2d: Case(lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
                    (f32(1, 4, 7, 7),), ((1, 6, 4, 4),), ("weight", "bias")),
    nn.MaxPool2d: Case(lambda: nn.MaxPool2d(3, 2, ceil_mode=True), (f32(1, 2, 8, 8),),
                       ((1, 2, 4, 4),)),
    nn.AvgPool2d: Case(lambda: nn.AvgPool2d(3, 2, padding=1), (f32(1, 2, 7, 7),),
                       ((1, 2, 4, 4),)),
    nn.AdaptiveAvgPool2d: Case(lambda: nn.AdaptiveAvgPool2d(1), (f32(2, 3, 5, 5),),
                               ((2, 3, 1, 1),)),
    nn.BatchNorm1d: Case(lambda: nn.BatchNorm1d(4), (f32(3, 4),), ((3, 4),), BN_KEYS),
    nn.BatchNorm2d: Case(lambda: nn.BatchNorm2d(3), (f32(2, 3, 4, 4),), ((2, 3, 4, 4),),
                         BN_KEYS),
    nn.LayerNorm: Case(lambda: nn.LayerNorm(5), (f32(2, 3, 5),), ((2, 3, 5),),
                       ("weight", "bias")),
    nn.Dropout: Case(lambda: nn.Dropout(0.5), (f32(4, 5),), ((4, 5),)),
    nn.Embedding: Case(lambda: nn.Embedding(10, 4), (i64(10, 2, 3),), ((2, 3, 4),),
                       ("weight",)),
    nn.Flatten: Case(lambda: nn.Flatten(), (f32(2, 3, 4),), ((2, 12),)),
    nn.Identity: Case(lambda: nn.Identity(), (f32(2, 3),), ((2, 3),)),
    nn.ReLU: Case(lambda: nn.ReLU(), (f32(2, 3),), ((2, 3),)),
    nn.ReLU6: Case(lambda: nn.ReLU6(), (f32(2, 3) * 8,), ((2, 3),)),
    nn.LeakyReLU: Case(lambda: nn.LeakyReLU(0.2), (f32(2, 3),), ((2, 3),)),
    nn.Sigmoid: Case(lambda: nn.Sigmoid(), (f32(2, 3),), ((2, 3),)),
    nn.Tanh: Case(lambda: nn.Tanh(), (f32(2, 3),), ((2, 3),)),
    nn.GELU: Case(lambda: nn.GELU(), (f32(2, 3),), ((2, 3),)),
    **{cls: Case(cls, (f32(2, 3) * 4,), ((2, 3),)) for cls in (
        nn.SiLU, nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.ELU, nn.SELU, nn.Softplus,
        nn.Softsign, nn.Hardtanh)},
    nn.Unflatten: Case(lambda: nn.Unflatten(1, (2, -1)), (f32(3, 8),), ((3, 2, 4),)),
    nn.Softmax: Case(lambda: nn.Softmax(1), (f32(2, 3, 4),), ((2, 3, 4),)),
    nn.LogSoftmax: Case(lambda: nn.LogSoftmax(-1), (f32(2, 3),), ((2, 3),)),
    nn.CrossEntropyLoss: Case(lambda: nn.CrossEntropyLoss(), (f32(4, 5), i64(5, 4)), ((),)),
    nn.MSELoss: Case(lambda: nn.MSELoss(), (f32(3, 4), f32(3, 4)), ((),)),
    nn.Sequential: Case(lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
                        (f32(3, 4),), ((3, 2),),
                        ("0.weight", "0.bias", "2.weight", "2.bias")),
    nn.RNN: Case(lambda: nn.RNN(4, 6, num_layers=2, nonlinearity="relu"), (f32(3, 2, 4),),
                 ((3, 2, 6), (2, 2, 6)), RNN_KEYS),
    nn.LSTM: Case(lambda: nn.LSTM(4, 6, batch_first=True, bidirectional=True),
                  (f32(2, 3, 4),), ((2, 3, 12), (2, 2, 6), (2, 2, 6)), LSTM_KEYS),
    nn.GRU: Case(lambda: nn.GRU(4, 6), (f32(3, 2, 4), f32(1, 2, 6)), ((3, 2, 6), (1, 2, 6)),
                 tuple(k for k in LSTM_KEYS if "reverse" not in k)),
    nn.MultiheadAttention: Case(lambda: nn.MultiheadAttention(8, 2),
                                (f32(3, 2, 8), f32(4, 2, 8), f32(4, 2, 8)),
                                ((3, 2, 8), (2, 3, 4)), MHA_KEYS),
    nn.TransformerEncoderLayer: Case(
        lambda: nn.TransformerEncoderLayer(8, 2, 16), (f32(3, 2, 8),), ((3, 2, 8),),
        tuple(f"self_attn.{k}" for k in MHA_KEYS) + tuple(
            f"{m}.{p}" for m in ("linear1", "linear2", "norm1", "norm2")
            for p in ("weight", "bias"))),
    nn.TransformerDecoderLayer: Case(
        lambda: nn.TransformerDecoderLayer(8, 2, 16), (f32(3, 2, 8), f32(4, 2, 8)),
        ((3, 2, 8),), DECODER_KEYS),
    nn.TransformerEncoder: Case(
        lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 2,
                                      norm=nn.LayerNorm(8), enable_nested_tensor=False),
        (f32(3, 2, 8),), ((3, 2, 8),),
        tuple(f"layers.{i}.{k}" for i in (0, 1) for k in ENCODER_KEYS) + NORM_KEYS),
    nn.TransformerDecoder: Case(
        lambda: nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), 2),
        (f32(3, 2, 8), f32(4, 2, 8)), ((3, 2, 8),),
        tuple(f"layers.{i}.{k}" for i in (0, 1) for k in DECODER_KEYS)),
    nn.Transformer: Case(
        lambda: nn.Transformer(8, 2, 1, 1, 16), (f32(4, 2, 8), f32(3, 2, 8)), ((3, 2, 8),),
        tuple(f"encoder.layers.0.{k}" for k in ENCODER_KEYS) + tuple(
            f"encoder.{k}" for k in NORM_KEYS) + tuple(
            f"decoder.layers.0.{k}" for k in DECODER_KEYS) + tuple(
            f"decoder.{k}" for k in NORM_KEYS)),
    nn.EmbeddingBag: Case(lambda: nn.EmbeddingBag(10, 4, mode="mean"), (i64(10, 3, 5),),
                          ((3, 4),), ("weight",)),
    # issue 19's further layers (torch parity in tests/compiler/test_more_layers.py)
    nn.GroupNorm: Case(lambda: nn.GroupNorm(2, 4), (f32(2, 4, 3, 3),), ((2, 4, 3, 3),),
                       ("weight", "bias")),
    nn.InstanceNorm1d: Case(lambda: nn.InstanceNorm1d(3, affine=True), (f32(2, 3, 5),),
                            ((2, 3, 5),), ("weight", "bias")),
    nn.InstanceNorm2d: Case(lambda: nn.InstanceNorm2d(3, track_running_stats=True),
                            (f32(2, 3, 4, 4),), ((2, 3, 4, 4),), BN_KEYS[2:]),
    nn.RMSNorm: Case(lambda: nn.RMSNorm(5), (f32(2, 5),), ((2, 5),), ("weight",)),
    nn.LocalResponseNorm: Case(lambda: nn.LocalResponseNorm(3), (f32(2, 4, 3, 3),),
                               ((2, 4, 3, 3),)),
    nn.Conv1d: Case(lambda: nn.Conv1d(2, 4, 3, padding=1), (f32(2, 2, 6),), ((2, 4, 6),),
                    ("weight", "bias")),
    nn.MaxPool1d: Case(lambda: nn.MaxPool1d(2), (f32(2, 3, 6),), ((2, 3, 3),)),
    nn.AvgPool1d: Case(lambda: nn.AvgPool1d(3, 1), (f32(2, 3, 6),), ((2, 3, 4),)),
    nn.PReLU: Case(lambda: nn.PReLU(3), (f32(2, 3, 4),), ((2, 3, 4),), ("weight",)),
    nn.PixelShuffle: Case(lambda: nn.PixelShuffle(2), (f32(1, 8, 2, 3),), ((1, 2, 4, 6),)),
    nn.PixelUnshuffle: Case(lambda: nn.PixelUnshuffle(2), (f32(1, 2, 4, 6),),
                            ((1, 8, 2, 3),)),
    nn.Upsample: Case(lambda: nn.Upsample(scale_factor=2, mode="bilinear"),
                      (f32(1, 2, 3, 3),), ((1, 2, 6, 6),)),
    nn.CosineSimilarity: Case(lambda: nn.CosineSimilarity(), (f32(3, 4), f32(3, 4)),
                              ((3,),)),
    nn.Bilinear: Case(lambda: nn.Bilinear(3, 4, 2), (f32(5, 3), f32(5, 4)), ((5, 2),),
                      ("weight", "bias")),
    nn.Conv3d: Case(lambda: nn.Conv3d(2, 4, 3, padding=1), (f32(1, 2, 4, 4, 4),),
                    ((1, 4, 4, 4, 4),), ("weight", "bias")),
    nn.ConvTranspose1d: Case(lambda: nn.ConvTranspose1d(2, 3, 3, stride=2), (f32(2, 2, 5),),
                             ((2, 3, 11),), ("weight", "bias")),
    nn.ConvTranspose2d: Case(lambda: nn.ConvTranspose2d(2, 3, 3, 2, 1, output_padding=1),
                             (f32(1, 2, 4, 4),), ((1, 3, 8, 8),), ("weight", "bias")),
    nn.ConvTranspose3d: Case(lambda: nn.ConvTranspose3d(2, 3, 2, stride=2),
                             (f32(1, 2, 2, 3, 2),), ((1, 3, 4, 6, 4),), ("weight", "bias")),
    nn.MaxPool3d: Case(lambda: nn.MaxPool3d(2), (f32(1, 2, 4, 4, 4),), ((1, 2, 2, 2, 2),)),
    nn.AvgPool3d: Case(lambda: nn.AvgPool3d(3, 1, 1), (f32(1, 2, 3, 4, 5),),
                       ((1, 2, 3, 4, 5),)),
    nn.AdaptiveAvgPool1d: Case(lambda: nn.AdaptiveAvgPool1d(3), (f32(2, 3, 7),), ((2, 3, 3),)),
    nn.AdaptiveAvgPool3d: Case(lambda: nn.AdaptiveAvgPool3d(2), (f32(1, 2, 5, 4, 3),),
                               ((1, 2, 2, 2, 2),)),
    nn.AdaptiveMaxPool1d: Case(lambda: nn.AdaptiveMaxPool1d(2), (f32(2, 3, 5),), ((2, 3, 2),)),
    nn.AdaptiveMaxPool2d: Case(lambda: nn.AdaptiveMaxPool2d((2, 3)), (f32(1, 2, 5, 7),),
                               ((1, 2, 2, 3),)),
    nn.AdaptiveMaxPool3d: Case(lambda: nn.AdaptiveMaxPool3d(1), (f32(1, 2, 3, 3, 3),),
                               ((1, 2, 1, 1, 1),)),
    **{cls: Case(cls, (f32(3, 4), f32(3, 4)), ((),)) for cls in (
        nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss)},
    nn.NLLLoss: Case(lambda: nn.NLLLoss(), (f32(4, 5), i64(5, 4)), ((),)),
    nn.BCELoss: Case(lambda: nn.BCELoss(), (np.full((3, 4), 0.3, np.float32),
                                            np.full((3, 4), 0.6, np.float32)), ((),)),
    nn.BCEWithLogitsLoss: Case(lambda: nn.BCEWithLogitsLoss(pos_weight=np.ones(4)),
                               (f32(3, 4), f32(3, 4)), ((),), ("pos_weight",)),
    nn.KLDivLoss: Case(lambda: nn.KLDivLoss(reduction="batchmean"),
                       (f32(3, 4), np.full((3, 4), 0.25, np.float32)), ((),)),
}

# exported Module subclasses that are not layers on their own
NOT_LAYERS = {nn.Module: "the base class", nn.ModuleList: "a container without forward()"}


def exported_layers() -> set[type]:
    return {obj for name in nn.__all__ if inspect.isclass(obj := getattr(nn, name))
            and issubclass(obj, nn.Module)}


def test_every_exported_layer_has_a_case():
    missing = sorted(c.__name__ for c in exported_layers() - set(CASES) - set(NOT_LAYERS))
    assert not missing, f"add a Case to tests/compiler/test_layers.py for {missing}"
    assert set(CASES) <= exported_layers()


def _flat(out) -> list:
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in _flat(o)]
    return [out]


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_traces_and_runs(cls, mode, opt_level):
    """Compiled as is (O0) and through the default pipeline (O2), in both modes."""
    case = CASES[cls]
    model = case.build().train(mode == "train")
    fn = compiler.compile(model, *case.inputs, backend="reference", opt_level=opt_level)
    outs = _flat(fn(*case.inputs))
    assert [o.shape for o in outs] == list(case.shapes)
    assert [tuple(v.shape) for v in fn.graph.outputs] == list(case.shapes)
    for o in outs:
        assert np.isfinite(o).all()
    # calling the layer eagerly on arrays gives the same numbers, nested as forward() nests
    eager = model(*case.inputs)
    for a, b in zip(_flat(eager), outs, strict=True):
        assert_close(b, a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_modes_reach_the_graph(mode):
    """train()/eval() switch dropout and batch-norm statistics in the traced IR."""
    model = nn.Sequential(nn.BatchNorm1d(4), nn.Dropout(0.5)).train(mode == "train")
    g = compiler.trace(model, f32(3, 4))
    assert {n.op: n.attrs["training"] for n in g.nodes} == {
        "batch_norm": mode == "train", "dropout": mode == "train"}


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_ir_text_round_trip(cls):
    case = CASES[cls]
    model = case.build().eval()
    g = compiler.trace(model, *case.inputs)
    ir.verify(g)
    back = ir.parse(str(g), g.weights)
    assert str(back) == str(g)
    for a, b in zip(_flat(compiler.compile(back, opt_level=0)(*case.inputs)),
                    _flat(compiler.compile(g, opt_level=0)(*case.inputs)), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_state_dict_round_trip(cls):
    case = CASES[cls]
    src, dst = case.build().eval(), case.build().eval()
    state = src.state_dict()
    dst.load_state_dict({k: v.copy() for k, v in state.items()})
    assert list(dst.state_dict()) == list(state)
    for k, v in dst.state_dict().items():
        assert v.dtype == state[k].dtype and v.shape == state[k].shape
        np.testing.assert_array_equal(v, state[k])
    for a, b in zip(_flat(src(*case.inputs)), _flat(dst(*case.inputs))):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_torch_key_names(cls):
    """Keys and order as torch writes them (checked against torch itself in
    test_torch_parity.py; spelled out here so the check runs without torch)."""
    assert tuple(CASES[cls].build().state_dict()) == CASES[cls].keys


def test_weights_in_the_graph_are_named_by_state_dict_keys():
    case = CASES[nn.TransformerEncoderLayer]
    model = case.build().eval()
    g = compiler.trace(model, *case.inputs)
    assert list(g.params) and set(g.params) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert g.weights[k] is v


def test_load_state_dict_rejects_wrong_keys_and_shapes():
    model = nn.LSTM(3, 4)
    state = model.state_dict()
    with pytest.raises(nn.StateDictError, match=r"missing.*bias_hh_l0"):
        model.load_state_dict({k: v for k, v in state.items() if k != "bias_hh_l0"})
    with pytest.raises(nn.StateDictError, match=r"unexpected.*extra"):
        model.load_state_dict({**state, "extra": np.zeros(1)})
    with pytest.raises(nn.StateDictError, match=r"weight_ih_l0.*expected shape"):
        model.load_state_dict({**state, "weight_ih_l0": np.zeros((4, 3), np.float32)})
    model.load_state_dict({"weight_hh_l0": np.ones((16, 4))}, strict=False)
    assert model.weight_hh_l0.dtype == np.float32 and model.weight_hh_l0.sum() == 64


def test_parameters_modules_and_repr():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    assert [type(m).__name__ for m in model.modules()] == [
        "Sequential", "Conv2d", "BatchNorm2d", "ReLU"]
    assert [p.shape for p in model.parameters()] == [(4, 3, 3, 3), (4,), (4,), (4,)]
    assert dict(model.named_buffers()).keys() == {
        "1.running_mean", "1.running_var", "1.num_batches_tracked"}
    assert not model.eval().training and all(not m.training for m in model.modules())
    assert "(0): Conv2d(3, 4" in repr(model)


@pytest.mark.parametrize(("layer", "bound"), [
    (lambda: nn.Linear(16, 4), 1 / 4), (lambda: nn.Conv2d(2, 3, 3), 1 / np.sqrt(18)),
    (lambda: nn.LSTM(5, 16), 1 / 4), (lambda: nn.GRU(5, 9, num_layers=2), 1 / 3),
    (lambda: nn.RNN(5, 25, bidirectional=True), 1 / 5),
], ids=["Linear", "Conv2d", "LSTM", "GRU", "RNN"])
def test_initialisation_bounds(layer, bound):
    """torch's default rule U(-1/sqrt(fan_in), 1/sqrt(fan_in)); recurrent: 1/sqrt(hidden)."""
    for k, p in layer().state_dict().items():
        assert np.abs(p).max() <= bound + 1e-7, k
        if p.size >= 16:
            assert np.abs(p).max() > bound * 0.7, k  # spread over the range, not degenerate


def test_multihead_attention_initialisation():
    """torch: xavier-uniform in_proj_weight, zero biases."""
    m = nn.MultiheadAttention(16, 4)
    assert np.abs(m.in_proj_weight).max() <= np.sqrt(6 / (16 + 48)) + 1e-7
    assert not m.in_proj_bias.any() and not m.out_proj.bias.any()


def test_manual_seed_makes_layers_reproducible():
    nn.manual_seed(3)
    a = nn.GRU(3, 4).state_dict()
    nn.manual_seed(3)
    b = nn.GRU(3, 4).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_recurrent_unbatched_and_initial_state():
    lstm = nn.LSTM(3, 4, num_layers=2).eval()
    x, h0, c0 = f32(5, 3), f32(2, 4), f32(2, 4)
    out, (h, c) = lstm(x, h0, c0)
    assert out.shape == (5, 4) and h.shape == c.shape == (2, 4)
    batched, (hb, cb) = lstm(x[:, None], h0[:, None], c0[:, None])
    assert_close(out, batched[:, 0])
    assert_close(h, hb[:, 0])
    assert_close(c, cb[:, 0])
    # the last step's output is the last layer's final h
    assert_close(out[-1], h[-1])


def test_recurrent_graph_is_unrolled_compactly():
    """One input projection per layer and direction; per step one hidden projection."""
    g = compiler.trace(nn.GRU(4, 6, bidirectional=True), f32(5, 2, 4))
    linears = [n for n in g.nodes if n.op == "linear"]
    assert len(linears) == 2 + 2 * 5
    assert {n.name for n in linears if n.inputs[0].name == "x"} == {"l0", "l0_reverse"}
    assert sum(n.op == "split" and len(n.outputs) == 5 for n in g.nodes) == 2


@pytest.mark.parametrize("build", [
    lambda: nn.LSTM(3, 4, proj_size=2), lambda: nn.RNN(3, 4, nonlinearity="gelu"),
    lambda: nn.GRU(3, 0), lambda: nn.MultiheadAttention(10, 3),
    lambda: nn.MultiheadAttention(8, 2, add_bias_kv=True),
    lambda: nn.TransformerEncoderLayer(8, 2, activation="swish"),
    lambda: nn.Conv2d(3, 4, 3, padding_mode="mirror"), lambda: nn.Conv2d(3, 4, 3, groups=2),
    lambda: nn.MaxPool2d(2, return_indices=True), lambda: nn.Dropout(1.0),
    lambda: nn.CrossEntropyLoss(label_smoothing=1.5), lambda: nn.MSELoss(reduction="avg"),
], ids=["lstm_proj", "rnn_act", "gru_size", "mha_heads", "mha_bias_kv", "encoder_act",
        "conv_pad_mode", "conv_groups", "pool_indices", "dropout_p", "ce_smoothing", "mse_red"])
def test_unsupported_or_invalid_arguments_are_lamina_errors(build):
    with pytest.raises(ir.LaminaError):
        build()


def test_adaptive_avg_pool_to_sizes_that_tile_the_input():
    x = f32(1, 2, 6, 4)
    y = nn.AdaptiveAvgPool2d((3, 2))(x)
    assert_close(y, x.reshape(1, 2, 3, 2, 2, 2).mean(axis=(3, 5)))
    # 6 rows to 4: torch's overlapping windows [0,2), [1,3), [3,5), [4,6)
    rows = [(0, 2), (1, 3), (3, 5), (4, 6)]
    expected = np.stack([x[:, :, lo:hi].mean(axis=2) for lo, hi in rows], axis=2)
    assert_close(nn.AdaptiveAvgPool2d(4)(x), expected, rtol=1e-6, atol=1e-6)


def test_batch_norm_without_affine_or_running_stats_has_torchs_keys():
    assert list(nn.BatchNorm2d(3, affine=False).state_dict()) == [
        "running_mean", "running_var", "num_batches_tracked"]
    assert list(nn.BatchNorm1d(3, track_running_stats=False).state_dict()) == [
        "weight", "bias"]
    x = f32(5, 3)
    y = nn.BatchNorm1d(3, track_running_stats=False).eval()(x)  # batch statistics always
    assert_close(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-5, atol=1e-5)


def test_eager_calls_take_torch_style_arguments():
    """None, a tuple state and keyword arguments, as torch code passes them."""
    lstm = nn.LSTM(3, 4)
    x, h0, c0 = f32(5, 2, 3), f32(1, 2, 4), f32(1, 2, 4)
    out, (h, c) = lstm(x, (h0, c0))
    assert h.shape == c.shape == (1, 2, 4)
    out2, (_, c2) = lstm(x, h0, c0)
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(c, c2)
    zero = lstm(x, None)[0]
    np.testing.assert_array_equal(zero, lstm(x, (np.zeros_like(h0), np.zeros_like(c0)))[0])
    mha = nn.MultiheadAttention(4, 2)
    q = f32(3, 2, 4)
    mask = np.triu(np.full((3, 3), -np.inf, np.float32), 1)
    out, weights = mha(q, q, q, attn_mask=mask, need_weights=False)
    assert out.shape == (3, 2, 4) and weights is None
    _, weights = mha(q, q, q, attn_mask=mask)
    assert np.all(np.triu(weights, 1) == 0)  # causal: nothing attends ahead
