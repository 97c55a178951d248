"""Recurrent ATen operators kept whole: `aten.lstm` and `aten.gru` (the importer leaves them
out of the Core ATen decomposition, which would unroll them into one small operator per time
step and gate) become the registry's `lstm` / `gru`, one call per layer over the whole
sequence, whose kernels run each step's gates as one GEMM.

The registry uses ONNX's layouts: weights [D, G*H, I] with the gates stacked as ONNX stacks
them, biases [D, 2*G*H] (input, then recurrence), sequences [T, B, ...]. torch stacks its
gates (i, f, g, o) for LSTM and (r, z, n) for GRU, and its GRU applies the reset gate after
the recurrence product (ONNX's linear_before_reset)."""

from __future__ import annotations

import numpy as np

from .common import Builder, TorchNode, Unsupported, handler, is_const

# torch's gate blocks, in the order ONNX stacks them: LSTM (i, o, f, c), GRU (z, r, h)
ONNX_GATES = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}


def _onnx_gates(b: Builder, kind: str, w):
    """A torch weight or bias (gate blocks along dimension 0) with its blocks in ONNX order."""
    if not is_const(w):
        raise Unsupported(f"{kind} weights computed at run time")
    blocks = np.split(w, len(ONNX_GATES[kind]))
    out = np.concatenate([blocks[k] for k in ONNX_GATES[kind]])
    b.derive(out, w)
    return out


def _layer_weights(b: Builder, kind: str, params, has_biases: bool, layer: int, dirs: int):
    """(w [D, G*H, I], r [D, G*H, H], bias [D, 2*G*H]) of one layer, both directions."""
    per = 4 if has_biases else 2
    ws, rs, bs = [], [], []
    for d in range(dirs):
        p = params[(layer * dirs + d) * per:][:per]
        w_ih, w_hh = (_onnx_gates(b, kind, t) for t in p[:2])
        b_ih, b_hh = ((_onnx_gates(b, kind, t) for t in p[2:]) if has_biases else
                      (np.zeros(w_ih.shape[0], w_ih.dtype),) * 2)
        ws.append(w_ih)
        rs.append(w_hh)
        bs.append(np.concatenate([b_ih, b_hh]))
    stacked = [np.stack(group) for group in (ws, rs, bs)]
    for s, source in zip(stacked, (params[0], params[1], params[0])):
        b.derive(s, source)
    return stacked


def _run(b: Builder, n: TorchNode, kind: str, x, hx, params, has_biases, num_layers,
         dropout, train, bidirectional, batch_first):
    if train and dropout:
        raise Unsupported(f"{kind} with dropout between layers in training mode")
    if len(x.shape) != 3:
        raise Unsupported(f"{kind} of an unbatched (rank-{len(x.shape)}) input")
    dirs = 2 if bidirectional else 1
    seq = b.call("transpose", x, perm=[1, 0, 2]) if batch_first else x
    steps, batch = seq.shape[:2]
    finals: list[list] = [[] for _ in hx]
    extra = {"linear_before_reset": True} if kind == "gru" else {}
    for layer in range(num_layers):
        w, r, bias = _layer_weights(b, kind, params, has_biases, layer, dirs)
        hidden = r.shape[2]
        states = [b.call("slice", h, starts=[layer * dirs], ends=[(layer + 1) * dirs],
                         axes=[0]) for h in hx]
        y, *last = b.call(kind, seq, w, r, bias, *states, hidden_size=hidden,
                          direction="bidirectional" if dirs == 2 else "forward", **extra)
        # y [T, D, B, H] -> the next layer's input [T, B, D*H]
        seq = b.call("reshape", b.call("transpose", y, perm=[0, 2, 1, 3]),
                     shape=(steps, batch, dirs * hidden))
        for f, s in zip(finals, last):
            f.append(s)
    out = b.call("transpose", seq, perm=[1, 0, 2]) if batch_first else seq
    return (out, *[f[0] if len(f) == 1 else b.call("concat", *f, axis=0) for f in finals])


@handler
def lstm(b: Builder, n: TorchNode, x, hx, params, has_biases, num_layers, dropout, train,
         bidirectional, batch_first):
    if n.overload != "input":
        raise Unsupported(f"lstm.{n.overload} (packed sequences)")
    return _run(b, n, "lstm", x, hx, params, has_biases, num_layers, dropout, train,
                bidirectional, batch_first)


@handler
def gru(b: Builder, n: TorchNode, x, hx, params, has_biases, num_layers, dropout, train,
        bidirectional, batch_first):
    if n.overload != "input":
        raise Unsupported(f"gru.{n.overload} (packed sequences)")
    return _run(b, n, "gru", x, [hx], params, has_biases, num_layers, dropout, train,
                bidirectional, batch_first)
