"""LSTM, GRU and MultiheadAttention against onnxruntime, an implementation independent of
both Lamina and torch (so these checks run where torch is not installed).

The layers' torch-layout parameters are converted to ONNX's: ONNX stacks LSTM gates as
(i, o, f, c) where torch has (i, f, g, o), and GRU gates as (z, r, h) where torch has
(r, z, n); torch's GRU applies the reset gate after the hidden projection, which is ONNX's
linear_before_reset=1.
"""

from __future__ import annotations

import re

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


def onnx_model(nodes, inputs: dict, initializers: dict, outputs: list[str]):
    graph = helper.make_graph(
        nodes, "check",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in inputs.items()],
        [_unknown(k, RANKS[k]) for k in outputs],
        [numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def ort_run(nodes, inputs: dict, initializers: dict, outputs: list[str]):
    model = onnx_model(nodes, inputs, initializers, outputs)
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


# ---- ONNX's LSTM / GRU / RNN imported as one registry operator ------------------------------
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def recurrent_node(op, rng, t=7, batch=1, inp=10, hidden=20, direction="forward", states=0,
                   bias=True, layout=0, **attrs):
    """One ONNX recurrent node with random weights: (node, feeds, initialisers, outputs).
    Weights in (-0.8, 0.8): gates saturate as well as not."""
    d, g = 2 if direction == "bidirectional" else 1, GATES[op]
    inits = {"W": rng.uniform(-0.8, 0.8, (d, g * hidden, inp)).astype(np.float32),
             "R": rng.uniform(-0.8, 0.8, (d, g * hidden, hidden)).astype(np.float32)}
    if bias:
        inits["B"] = rng.uniform(-0.5, 0.5, (d, 2 * g * hidden)).astype(np.float32)
    lead = (batch, t) if layout else (t, batch)
    feeds = {"X": rng.standard_normal((*lead, inp)).astype(np.float32)}
    state = (batch, d, hidden) if layout else (d, batch, hidden)
    names = ["initial_h", "initial_c"][:states]
    feeds.update({k: rng.standard_normal(state).astype(np.float32) for k in names})
    ins = ["X", "W", "R", "B" if bias else "", "", *names]
    while not ins[-1]:
        ins.pop()
    outs = ["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"]
    if layout:
        attrs["layout"] = layout
    node = helper.make_node(op, ins, outs, hidden_size=hidden, direction=direction, **attrs)
    return node, feeds, inits, outs


CONFIGS = {  # id: (op, keyword arguments of recurrent_node)
    "lstm-b1": ("LSTM", {}),
    "lstm-b16-states": ("LSTM", {"batch": 16, "states": 2}),
    "lstm-b16-bidirectional-states": ("LSTM", {"batch": 16, "direction": "bidirectional",
                                               "states": 2}),
    "lstm-b1-reverse-h0-nobias": ("LSTM", {"direction": "reverse", "states": 1,
                                           "bias": False}),
    "lstm-b3-bidirectional-layout1-h32": ("LSTM", {"batch": 3, "direction": "bidirectional",
                                                   "layout": 1, "states": 2, "hidden": 32}),
    "gru-b1-lbr": ("GRU", {"linear_before_reset": 1}),
    "gru-b16-bidirectional-h0-lbr": ("GRU", {"batch": 16, "direction": "bidirectional",
                                             "states": 1, "linear_before_reset": 1}),
    "gru-b16-h0": ("GRU", {"batch": 16, "states": 1}),
    "gru-b1-bidirectional-nobias": ("GRU", {"direction": "bidirectional", "bias": False}),
    "rnn-b16-h0": ("RNN", {"batch": 16, "states": 1}),
    "rnn-b1-bidirectional": ("RNN", {"direction": "bidirectional"}),
}
RUNS = {"reference": {"backend": "reference"},
        "llvm-1t": {"backend": "llvm", "num_threads": 1},
        "llvm-2t": {"backend": "llvm", "num_threads": 2}}


def ort_batch_first(node, feeds, inits, outs):
    """onnxruntime's outputs for a layout=1 node (which it refuses to run): the same node
    with layout 0 on the transposed inputs, its outputs transposed back."""
    plain = onnx.NodeProto()
    plain.CopyFrom(node)
    del plain.attribute[:]
    plain.attribute.extend(a for a in node.attribute if a.name != "layout")
    feeds = {k: v.swapaxes(0, 1).copy() for k, v in feeds.items()}
    y, *finals = ort_run([plain], feeds, inits, outs)
    return [y.transpose(2, 0, 1, 3), *(f.swapaxes(0, 1) for f in finals)]


@pytest.mark.parametrize("run", RUNS, ids=list(RUNS))
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
def test_onnx_recurrent_operator_matches_onnxruntime(rng, config, run):
    """The ONNX operator, imported as one `lstm`/`gru`/`rnn` node, against onnxruntime
    running the same ONNX operator (every output: Y, Y_h and Y_c)."""
    op, kw = CONFIGS[config]
    node, feeds, inits, outs = recurrent_node(op, rng, **kw)
    expected = ort_batch_first(node, feeds, inits, outs) if kw.get("layout") else \
        ort_run([node], feeds, inits, outs)
    g = compiler.load_onnx(onnx_model([node], feeds, inits, outs))
    assert [n.op for n in g.nodes if n.op in ("lstm", "gru", "rnn")] == [op.lower()]
    got = compiler.compile(g, opt_level=2, **RUNS[run])(*feeds.values())
    assert len(got) == len(expected)
    for name, a, e in zip(outs, got, expected):
        assert_close(a, e, rtol=1e-5, atol=2e-5, what=f"{config} {name} ({run})")


def test_import_is_one_node_not_an_unrolled_sequence(rng):
    """A 64-step LSTM becomes one `lstm` node (the unrolled form had hundreds)."""
    node, feeds, inits, outs = recurrent_node("LSTM", rng, t=64, hidden=32)
    g = compiler.load_onnx(onnx_model([node], feeds, inits, outs))
    assert [n.op for n in g.nodes] == ["lstm"]


@pytest.mark.parametrize("attrs", [{"clip": 2.0}, {"input_forget": 1},
                                   {"activations": ["HardSigmoid", "Tanh", "Tanh"]}],
                         ids=["clip", "input_forget", "activations"])
def test_what_the_operator_lacks_is_unrolled(rng, attrs):
    """clip, input_forget and other activations are not the registry operator's: those
    nodes take the unrolled path, still matching onnxruntime."""
    node, feeds, inits, outs = recurrent_node("LSTM", rng, t=3, batch=2, hidden=5, **attrs)
    expected = ort_run([node], feeds, inits, outs)
    g = compiler.load_onnx(onnx_model([node], feeds, inits, outs))
    assert "lstm" not in {n.op for n in g.nodes} and len(g.nodes) > 20
    got = compiler.compile(g, opt_level=2)(*feeds.values())
    for name, a, e in zip(outs, got, expected):
        assert_close(a, e, rtol=1e-5, atol=2e-5, what=name)


def _recorded_lowering(monkeypatch, graph, **options):
    """Compile `graph` for LLVM, recording the phases its recurrent node emits and the GEMMs
    its lowering asks for."""
    from backends.llvm import kernel, recurrent

    phases, gemms = [], []
    original_phase, original_gemm = kernel.Kernel.phase, recurrent.gemm_phase

    def phase(self, n_items, body, **kw):
        if self.node.op in ("lstm", "gru", "rnn"):
            phases.append((n_items, kw.get("parallel", True)))
        return original_phase(self, n_items, body, **kw)

    def gemm(k, g, dtype, scratch=None):
        gemms.append((g.batch, g.m, g.n, g.k))
        return original_gemm(k, g, dtype, scratch)

    monkeypatch.setattr(kernel.Kernel, "phase", phase)
    monkeypatch.setattr(recurrent, "gemm_phase", gemm)
    return compiler.compile(graph, opt_level=2, **options), phases, gemms


@pytest.mark.parametrize("steps", [4, 32])
def test_input_projection_is_one_gemm_and_the_loop_one_phase(monkeypatch, rng, steps):
    """The LLVM lowering of a bidirectional LSTM: the input projection of every step and
    both directions is one GEMM [T*B, I] x [I, >= 2*4*H]; the time loop is one serial phase;
    the number of phases does not grow with the sequence."""
    node, feeds, inits, outs = recurrent_node("LSTM", rng, t=steps, batch=3, inp=10, hidden=20,
                                              direction="bidirectional")
    g = compiler.load_onnx(onnx_model([node], feeds, inits, outs))
    fn, phases, gemms = _recorded_lowering(monkeypatch, g, num_threads=1)
    (gemm,) = gemms
    assert gemm[:2] == (1, steps * 3) and gemm[3] == 10 and gemm[2] >= 2 * 4 * 20
    # packing x for the GEMM, the GEMM, the time loop (weights packed at compile time)
    assert len(phases) == 3 and phases[-1] == (1, False)
    for name, a, e in zip(outs, fn(feeds["X"]), ort_run([node], feeds, inits, outs)):
        assert_close(a, e, rtol=1e-5, atol=2e-5, what=name)


@pytest.mark.parametrize("op,batch,split", [("LSTM", 1, False), ("LSTM", 16, True),
                                            ("GRU", 7, True)])
def test_thread_counts_agree_bitwise(rng, op, batch, split):
    """With enough work per step (hidden 256, batch 7 or 16) each step's unit tiles are
    split over threads; a batch-1 step stays on one thread. The bits do not depend on the
    thread count."""
    node, feeds, inits, outs = recurrent_node(op, rng, t=5, batch=batch, inp=16, hidden=256,
                                              direction="bidirectional", states=1)
    g = compiler.load_onnx(onnx_model([node], feeds, inits, outs))
    results = {}
    for threads in (1, 2, 3):
        fn = compiler.compile(g, opt_level=2, num_threads=threads)
        if threads > 1:  # the steps' tasks go to the pool (not only the GEMM's), or not
            step_tasks = rf"call void @lamina_parallel_for\(ptr [^@]*@{op.lower()}\.step"
            assert bool(re.search(step_tasks, fn.llvm_ir)) == split
        results[threads] = fn(*feeds.values())
    for threads in (2, 3):
        for a, b in zip(results[1], results[threads]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("features", ["avx2", "sse"])
@pytest.mark.parametrize("op,attrs", [("LSTM", {}), ("GRU", {"linear_before_reset": 0})],
                         ids=["lstm", "gru"])
def test_narrower_vector_targets_match_onnxruntime(rng, features, op, attrs):
    """8 and 4 lanes, 16 registers (smaller register tiles): hidden 20 leaves a partial
    unit tile, batch 7 a partial row tile."""
    node, feeds, inits, outs = recurrent_node(op, rng, batch=7, states=1,
                                              direction="bidirectional", **attrs)
    expected = ort_run([node], feeds, inits, outs)
    g = compiler.load_onnx(onnx_model([node], feeds, inits, outs))
    got = compiler.compile(g, opt_level=2, target_features=features)(*feeds.values())
    for name, a, e in zip(outs, got, expected):
        assert_close(a, e, rtol=1e-5, atol=2e-5, what=f"{name} ({features})")


def test_runtime_weights_match_onnxruntime(rng):
    """W, R and B as graph inputs rather than initialisers: gathered into the packed layouts
    by a phase at run time; same numbers."""
    node, feeds, inits, outs = recurrent_node("GRU", rng, batch=4, states=1,
                                              direction="bidirectional")
    feeds = {**feeds, **inits}
    expected = ort_run([node], feeds, {}, outs)
    g = compiler.load_onnx(onnx_model([node], feeds, {}, outs))
    assert [n.op for n in g.nodes] == ["gru"]
    got = compiler.compile(g, opt_level=2)(*feeds.values())
    for name, a, e in zip(outs, got, expected):
        assert_close(a, e, rtol=1e-5, atol=2e-5, what=name)


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
