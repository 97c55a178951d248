"""LSTM, GRU and MultiheadAttention against onnxruntime, an implementation independent of
both Lamina and torch (so these checks run where torch is not installed).

The layers' torch-layout parameters are converted to ONNX's: ONNX stacks LSTM gates as
(i, o, f, c) where torch has (i, f, g, o), and GRU gates as (z, r, h) where torch has
(r, z, n); torch's GRU applies the reset gate after the hidden projection, which is ONNX's
linear_before_reset=1.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import compiler
from compiler import nn
from tests.conftest import assert_close

OPSET = 17
RANKS = {"Y": 4, "Y_h": 3, "Y_c": 3}


def _unknown(name: str, rank: int):
    """An output of known rank and unnamed sizes (onnxruntime supplies them)."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [None] * rank)


def ort_run(nodes, inputs: dict, initializers: dict, outputs: list[str]):
    graph = helper.make_graph(
        nodes, "check",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in inputs.items()],
        [_unknown(k, RANKS[k]) for k in outputs],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(outputs, inputs)


def _gates(w: np.ndarray, order: list[int]) -> np.ndarray:
    """Restack the gate blocks of a [gates*H, ...] torch parameter in another order."""
    return np.concatenate([np.split(w, len(order))[i] for i in order])


def onnx_weights(model, order):
    """W [D, G*H, I], R [D, G*H, H], B [D, 2*G*H] from the layer's torch-named parameters."""
    sfx = ["", "_reverse"][: model.num_directions]
    p = model.state_dict()
    w = np.stack([_gates(p[f"weight_ih_l0{s}"], order) for s in sfx])
    r = np.stack([_gates(p[f"weight_hh_l0{s}"], order) for s in sfx])
    b = np.stack([np.concatenate([_gates(p[f"bias_ih_l0{s}"], order),
                                  _gates(p[f"bias_hh_l0{s}"], order)]) for s in sfx])
    return w, r, b


def lamina_vs_onnx(model, op, order, x, states):
    t_len, batch, _ = x.shape
    d, hid = model.num_directions, model.hidden_size
    w, r, b = onnx_weights(model, order)
    state_names = ["initial_h", "initial_c"][: len(states)]
    attrs = {"hidden_size": hid, "direction": "bidirectional" if d == 2 else "forward"}
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    outs = ["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"]
    node = helper.make_node(op, ["X", "W", "R", "B", "", *state_names], outs, **attrs)
    feeds = {"X": x, **dict(zip(state_names, states))}
    y, *finals = ort_run([node], feeds, {"W": w, "R": r, "B": b}, outs)
    # ONNX Y is [T, D, B, H]; torch's output is [T, B, D*H]
    expected = [y.transpose(0, 2, 1, 3).reshape(t_len, batch, d * hid), *finals]
    got = model(x, *states)
    got = [got[0], *got[1]] if isinstance(got[1], tuple) else list(got)
    assert len(got) == len(expected)
    for i, (a, e) in enumerate(zip(got, expected)):
        assert_close(a, e, rtol=1e-5, atol=1e-5, what=f"{op} output {i}")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "given_state"])
def test_lstm_matches_onnxruntime(rng, bidirectional, with_state):
    model = nn.LSTM(5, 7, bidirectional=bidirectional).eval()
    for v in model.state_dict().values():  # wider than the default init: gates saturate
        v[...] = rng.uniform(-0.8, 0.8, v.shape)
    d = model.num_directions
    x = rng.standard_normal((6, 3, 5)).astype(np.float32)
    states = [rng.standard_normal((d, 3, 7)).astype(np.float32) for _ in range(2)]
    lamina_vs_onnx(model, "LSTM", [0, 3, 1, 2], x, states if with_state else [])


@pytest.mark.parametrize("bidirectional", [False, True], ids=["forward", "bidirectional"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "given_state"])
def test_gru_matches_onnxruntime(rng, bidirectional, with_state):
    model = nn.GRU(4, 6, bidirectional=bidirectional).eval()
    for v in model.state_dict().values():
        v[...] = rng.uniform(-0.8, 0.8, v.shape)
    d = model.num_directions
    x = rng.standard_normal((5, 2, 4)).astype(np.float32)
    states = [rng.standard_normal((d, 2, 6)).astype(np.float32)]
    lamina_vs_onnx(model, "GRU", [1, 0, 2], x, states if with_state else [])


def test_lstm_bias_free_matches_onnxruntime(rng):
    """bias=False: ONNX's B input left out means zero biases."""
    model = nn.LSTM(3, 4, bias=False).eval()
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    p = model.state_dict()
    w, r = (_gates(p[k], [0, 3, 1, 2])[None] for k in ("weight_ih_l0", "weight_hh_l0"))
    node = helper.make_node("LSTM", ["X", "W", "R"], ["Y", "Y_h"], hidden_size=4)
    y, y_h = ort_run([node], {"X": x}, {"W": w, "R": r}, ["Y", "Y_h"])
    out, (h, _) = model(x)
    assert_close(out, y[:, 0], rtol=1e-5, atol=1e-5)
    assert_close(h, y_h, rtol=1e-5, atol=1e-5)


# ---- multi-head attention -----------------------------------------------------------------
def mha_onnx(model, q, k, v, mask=None):
    """torch's MultiheadAttention as ONNX MatMul/Add/Mul/Reshape/Transpose/Softmax nodes."""
    e, h = model.embed_dim, model.num_heads
    hd = e // h
    (tgt, n, _), src = q.shape, k.shape[0]
    w = np.split(model.in_proj_weight, 3)
    b = np.split(model.in_proj_bias, 3)
    inits = {f"W{c}": w[i].T.copy() for i, c in enumerate("qkv")}
    inits |= {f"b{c}": b[i] for i, c in enumerate("qkv")}
    inits |= {"Wo": model.out_proj.weight.T.copy(), "bo": model.out_proj.bias,
              "scale": np.array(1 / np.sqrt(hd), np.float32),
              "heads_q": np.array([tgt, n, h, hd], np.int64),
              "heads_kv": np.array([src, n, h, hd], np.int64),
              "merged": np.array([tgt, n, e], np.int64)}
    mk = helper.make_node
    nodes = []
    for c in "qkv":
        nodes += [mk("MatMul", [c, f"W{c}"], [f"{c}w"]), mk("Add", [f"{c}w", f"b{c}"], [f"{c}p"]),
                  mk("Reshape", [f"{c}p", "heads_q" if c == "q" else "heads_kv"], [f"{c}h"])]
    nodes += [
        mk("Transpose", ["qh"], ["Q"], perm=[1, 2, 0, 3]),  # [N, H, L, hd]
        mk("Transpose", ["kh"], ["KT"], perm=[1, 2, 3, 0]),  # [N, H, hd, S]
        mk("Transpose", ["vh"], ["V"], perm=[1, 2, 0, 3]),  # [N, H, S, hd]
        mk("MatMul", ["Q", "KT"], ["qk"]),
        mk("Mul", ["qk", "scale"], ["scores"]),
    ]
    feeds = {"q": q, "k": k, "v": v}
    last = "scores"
    if mask is not None:
        nodes.append(mk("Add", ["scores", "mask"], ["masked"]))
        feeds["mask"] = mask
        last = "masked"
    nodes += [
        mk("Softmax", [last], ["P"], axis=-1),
        mk("MatMul", ["P", "V"], ["O"]),  # [N, H, L, hd]
        mk("Transpose", ["O"], ["Ot"], perm=[2, 0, 1, 3]),
        mk("Reshape", ["Ot", "merged"], ["Om"]),
        mk("MatMul", ["Om", "Wo"], ["Ow"]),
        mk("Add", ["Ow", "bo"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes, "mha",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, a.shape)
         for name, a in feeds.items()],
        [_unknown("out", 3), _unknown("P", 4)],
        [numpy_helper.from_array(a, name) for name, a in inits.items()])
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model_proto)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model_proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(["out", "P"], feeds)


class _WithMask(nn.Module):
    def __init__(self, mha):
        super().__init__()
        self.mha = mha

    def forward(self, q, k, v, mask):
        return self.mha(q, k, v, attn_mask=mask, average_attn_weights=False)


@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "float_mask"])
def test_multihead_attention_matches_onnxruntime(rng, masked):
    model = nn.MultiheadAttention(12, 3).eval()
    for v in model.state_dict().values():  # non-zero biases too
        v[...] = rng.uniform(-0.5, 0.5, v.shape)
    q = rng.standard_normal((4, 2, 12)).astype(np.float32)
    k, v = (rng.standard_normal((5, 2, 12)).astype(np.float32) for _ in range(2))
    mask = rng.standard_normal((4, 5)).astype(np.float32) if masked else None
    out_e, p_e = mha_onnx(model, q, k, v, mask)
    if masked:
        out, weights = compiler.compile(_WithMask(model), q, k, v, mask, opt_level=0)(q, k, v, mask)
        assert_close(weights, p_e, rtol=1e-5, atol=1e-6)
    else:
        out, weights = model(q, k, v)
        assert_close(weights, p_e.mean(axis=1), rtol=1e-5, atol=1e-6)
    assert_close(out, out_e, rtol=1e-5, atol=1e-5)


def test_self_attention_matches_onnxruntime(rng):
    """Self-attention takes the packed single-projection path: same numbers."""
    model = nn.MultiheadAttention(8, 2).eval()
    for v in model.state_dict().values():
        v[...] = rng.uniform(-0.5, 0.5, v.shape)
    x = rng.standard_normal((3, 2, 8)).astype(np.float32)

    class Self(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = model

        def forward(self, x):
            return self.attn(x, x, x)

    g = compiler.trace(Self(), x)
    assert sum(n.op == "linear" for n in g.nodes) == 2  # packed in_proj + out_proj
    out, weights = compiler.compile(g, opt_level=0)(x)
    out_e, p_e = mha_onnx(model, x, x, x)
    assert_close(out, out_e, rtol=1e-5, atol=1e-5)
    assert_close(weights, p_e.mean(axis=1), rtol=1e-5, atol=1e-6)
