"""ONNX's recurrent operators (RNN, GRU, LSTM).

With their default activations and no `clip`, peepholes or `input_forget` (what torch and
most exporters write), each becomes one registry operator (`rnn`, `gru`, `lstm`, ONNX's own
semantics in ONNX's layout; layout=1 is transposed around it), which the backends run as a
whole sequence.

Anything else is unrolled over the static sequence length into straight-line code: the
input projection of every step at once (one `linear`), then per step a `linear` of the
hidden state, the gate activations and the state update, in the order ONNX's equations
state them. Directions "forward", "reverse" and "bidirectional", both layouts, `clip`,
peepholes, `input_forget` and `linear_before_reset` follow the operator definitions.
Variable sequence lengths (`sequence_lens` below the full length) are refused on both paths.
"""

from __future__ import annotations

import numpy as np

from ..builder import Builder, OnnxNode, Unsupported
from .common import handler, like


def _activation(b: Builder, name: str, x, alpha, beta):
    """One of ONNX's recurrent activation functions (alpha/beta where it takes them)."""
    if name in ("Relu", "Tanh", "Sigmoid", "Softplus"):
        return b.call(name.lower(), x)
    if name == "LeakyRelu":
        return b.call("leaky_relu", x, alpha=alpha if alpha is not None else 0.01)
    if name == "Elu":
        return b.call("elu", x, alpha=alpha if alpha is not None else 1.0)
    if name == "Softsign":
        return b.call("div", x, b.call("add", b.call("abs", x), like(x, 1)))
    if name == "HardSigmoid":
        a, c = alpha if alpha is not None else 0.2, beta if beta is not None else 0.5
        return b.call("clip", b.call("add", b.call("mul", x, like(x, a)), like(x, c)),
                      min=0.0, max=1.0)
    if name == "Affine":
        return b.call("add", b.call("mul", x, like(x, alpha)), like(x, beta))
    if name == "ScaledTanh":
        return b.call("mul", b.call("tanh", b.call("mul", x, like(x, beta))), like(x, alpha))
    raise Unsupported(f"recurrent activation {name}")


class _Recurrence:
    """What the three operators share: attributes, inputs in [seq, batch, ...] layout, the
    per-direction weights, and the assembly of Y, Y_h (and Y_c)."""

    def __init__(self, b: Builder, n: OnnxNode, x, w, r, bias, seq_lens, gates: int,
                 defaults: list[str]):
        self.b, self.n = b, n
        self.layout = n.get("layout", 0)
        self.x = b.call("transpose", x, perm=(1, 0, 2)) if self.layout else x
        self.seq, self.batch = self.x.shape[:2]
        direction = n.get("direction", "forward")
        self.dirs = {"forward": [False], "reverse": [True],
                     "bidirectional": [False, True]}[direction]
        self.hidden = n.get("hidden_size", r.shape[-1])
        self.gates, self.w, self.r = gates, w, r
        self.clip = n.get("clip")
        acts = list(n.get("activations", defaults * len(self.dirs)))
        alphas, betas = list(n.get("activation_alpha", [])), list(n.get("activation_beta", []))
        self.acts = [(a, alphas[k] if k < len(alphas) else None,
                      betas[k] if k < len(betas) else None) for k, a in enumerate(acts)]
        self.per_dir = len(defaults)
        self.bias = bias
        if seq_lens is not None:
            lens = b.const(seq_lens, "sequence_lens")
            if (lens != self.seq).any():
                raise Unsupported("sequence_lens shorter than the sequence (variable lengths)")

    def act(self, d: int, k: int, x):
        name, alpha, beta = self.acts[d * self.per_dir + k]
        return _activation(self.b, name, x, alpha, beta)

    def clipped(self, x):
        c = self.clip
        return x if c is None else self.b.call("clip", x, min=-float(c), max=float(c))

    def weights(self, d: int):
        """(W [G*H, in], R [G*H, H], Wb [G*H] or None, Rb [G*H] or None) of direction d."""
        b, gh = self.b, self.gates * self.hidden
        w = b.reshape(b.call("slice", self.w, starts=[d], ends=[d + 1], axes=[0]),
                      self.w.shape[1:])
        r = b.reshape(b.call("slice", self.r, starts=[d], ends=[d + 1], axes=[0]),
                      self.r.shape[1:])
        if self.bias is None:
            return w, r, None, None
        wb, rb = (b.reshape(b.call("slice", self.bias, starts=[d, k * gh],
                                   ends=[d + 1, (k + 1) * gh], axes=[0, 1]), (gh,))
                  for k in (0, 1))
        return w, r, wb, rb

    def state(self, init, d: int):
        """The initial hidden (or cell) state of direction d: given, or zeros."""
        b = self.b
        if init is None:
            return np.zeros((self.batch, self.hidden), b_dtype(self.x))
        return b.reshape(b.call("slice", init, starts=[d], ends=[d + 1], axes=[0]),
                         (self.batch, self.hidden))

    def steps(self, d: int, reverse: bool, wb):
        """The input projection of each step (in the order the direction visits them)."""
        b = self.b
        w = self.weights(d)[0]
        proj = b.call("linear", self.x, w, *([wb] if wb is not None else []))
        order = range(self.seq - 1, -1, -1) if reverse else range(self.seq)
        return [(t, b.reshape(b.call("slice", proj, starts=[t], ends=[t + 1], axes=[0]),
                              (self.batch, proj.shape[-1]))) for t in order]

    def split(self, x, axis: int = 1):
        """The gates' parts: of a [batch, G*H] pre-activation, or of a [G*H, ...] weight
        (axis 0)."""
        out = self.b.call("split", x, axis=axis, sizes=[self.hidden] * self.gates)
        return out if isinstance(out, tuple) else (out,)

    def outputs(self, hs: list[dict], finals: list[list]):
        """Y [seq, dirs, batch, H] (or batch first), then each final state [dirs, batch, H];
        None for an output nothing reads."""
        b = self.b
        h, bt = self.hidden, self.batch
        states = []
        for k, final in enumerate(finals, 1):
            if not any(self.n.used[k:k + 1]):
                states.append(None)
                continue
            parts = [b.reshape(s, (1, bt, h)) for s in final]
            s = parts[0] if len(parts) == 1 else b.call("concat", *parts, axis=0)
            states.append(b.call("transpose", s, perm=(1, 0, 2)) if self.layout else s)
        if not any(self.n.used[:1]):
            return (None, *states)
        per_dir = [b.call("concat", *[b.reshape(hs[d][t], (1, 1, bt, h))
                                      for t in range(self.seq)], axis=0)
                   if self.seq > 1 else b.reshape(hs[d][0], (1, 1, bt, h))
                   for d in range(len(self.dirs))]
        y = per_dir[0] if len(per_dir) == 1 else b.call("concat", *per_dir, axis=1)
        if self.layout:
            y = b.call("transpose", y, perm=(2, 0, 1, 3))
        return (y, *states)


def b_dtype(x):
    return x.dtype if isinstance(x, np.ndarray) else x.type.np_dtype


GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def _zero_const(x) -> bool:
    return isinstance(x, np.ndarray) and not x.any()


def _whole(b: Builder, n: OnnxNode, op: str, x, w, r, bias, seq_lens, states: list,
           defaults: list[str], peep=None, **attrs):
    """The node as one registry operator, or None where that does not express it (other
    activations, clip, peepholes, input_forget): then it is unrolled."""
    direction, layout = n.get("direction", "forward"), n.get("layout", 0)
    dirs = 2 if direction == "bidirectional" else 1
    acts = n.get("activations")
    if (acts is not None and list(acts) != defaults * dirs) or n.get("clip") is not None \
            or n.get("input_forget", 0) or not (peep is None or _zero_const(peep)):
        return None
    t_len = x.shape[1 if layout else 0]
    if seq_lens is not None and (b.const(seq_lens, "sequence_lens") != t_len).any():
        raise Unsupported("sequence_lens shorter than the sequence (variable lengths)")
    hidden = n.get("hidden_size", r.shape[-1])
    if layout:  # [batch, seq, ...] and states [batch, dirs, H]: ONNX's layout 0 inside
        x = b.call("transpose", x, perm=(1, 0, 2))
        states = [s if s is None else b.call("transpose", s, perm=(1, 0, 2)) for s in states]
    dtype = b_dtype(x)
    if bias is None:
        bias = np.zeros((dirs, 2 * GATES[op] * hidden), dtype)
    while states and (states[-1] is None or _zero_const(states[-1])):
        states.pop()  # trailing zero states are the operator's default
    zeros = np.zeros((dirs, x.shape[1], hidden), dtype)
    states = [zeros if s is None else s for s in states]
    outs = b.call(op, x, w, r, bias, *states, hidden_size=hidden, direction=direction,
                  **attrs)
    if not layout:
        return outs
    y, *finals = outs
    return (b.call("transpose", y, perm=(2, 0, 1, 3)) if any(n.used[:1]) else None,
            *[b.call("transpose", f, perm=(1, 0, 2)) for f in finals])


@handler
def RNN(b: Builder, n: OnnxNode, x, w, r, bias=None, seq_lens=None, h0=None):
    whole = _whole(b, n, "rnn", x, w, r, bias, seq_lens, [h0], ["Tanh"])
    if whole is not None:
        return whole
    rec = _Recurrence(b, n, x, w, r, bias, seq_lens, 1, ["Tanh"])
    hs, finals = [], []
    for d, reverse in enumerate(rec.dirs):
        _, rw, wb, rb = rec.weights(d)
        h, seen = rec.state(h0, d), {}
        for t, xt in rec.steps(d, reverse, wb):
            pre = b.call("add", xt, b.call("linear", h, rw, *([rb] if rb is not None else [])))
            h = rec.act(d, 0, rec.clipped(pre))
            seen[t] = h
        hs.append(seen)
        finals.append(h)
    return rec.outputs(hs, [finals])


@handler
def GRU(b: Builder, n: OnnxNode, x, w, r, bias=None, seq_lens=None, h0=None):
    whole = _whole(b, n, "gru", x, w, r, bias, seq_lens, [h0], ["Sigmoid", "Tanh"],
                   linear_before_reset=bool(n.get("linear_before_reset", 0)))
    if whole is not None:
        return whole
    rec = _Recurrence(b, n, x, w, r, bias, seq_lens, 3, ["Sigmoid", "Tanh"])
    before_reset = n.get("linear_before_reset", 0)
    hs, finals = [], []
    for d, reverse in enumerate(rec.dirs):
        _, rw, wb, rb = rec.weights(d)
        *rz_r, rh = rec.split(rw, axis=0)
        rb_parts = rec.split(b.reshape(rb, (1, rb.shape[0]))) if rb is not None else None
        h, seen = rec.state(h0, d), {}
        for t, xt in rec.steps(d, reverse, wb):
            xz, xr, xh = rec.split(xt)
            gate = []
            for k, xg in enumerate((xz, xr)):
                hr = b.call("linear", h, rz_r[k])
                pre = b.call("add", xg, hr)
                if rb_parts is not None:
                    pre = b.call("add", pre, rb_parts[k])
                gate.append(rec.act(d, 0, rec.clipped(pre)))
            z, rr = gate
            if before_reset:
                hh = b.call("linear", h, rh)
                if rb_parts is not None:
                    hh = b.call("add", hh, rb_parts[2])
                pre = b.call("add", xh, b.call("mul", rr, hh))
            else:
                pre = b.call("add", xh, b.call("linear", b.call("mul", rr, h), rh))
                if rb_parts is not None:
                    pre = b.call("add", pre, rb_parts[2])
            cand = rec.act(d, 1, rec.clipped(pre))
            # (1 - z) * cand + z * h
            one_minus = b.call("sub", like(z, 1), z)
            h = b.call("add", b.call("mul", one_minus, cand), b.call("mul", z, h))
            seen[t] = h
        hs.append(seen)
        finals.append(h)
    return rec.outputs(hs, [finals])


@handler
def LSTM(b: Builder, n: OnnxNode, x, w, r, bias=None, seq_lens=None, h0=None, c0=None,
         peep=None):
    whole = _whole(b, n, "lstm", x, w, r, bias, seq_lens, [h0, c0],
                   ["Sigmoid", "Tanh", "Tanh"], peep)
    if whole is not None:
        return whole
    rec = _Recurrence(b, n, x, w, r, bias, seq_lens, 4, ["Sigmoid", "Tanh", "Tanh"])
    couple = n.get("input_forget", 0)
    hs, finals_h, finals_c = [], [], []
    for d, reverse in enumerate(rec.dirs):
        _, rw, wb, rb = rec.weights(d)
        p_i = p_o = p_f = None
        if peep is not None:
            pd = b.reshape(b.call("slice", peep, starts=[d], ends=[d + 1], axes=[0]),
                           (1, 3 * rec.hidden))
            p_i, p_o, p_f = b.call("split", pd, axis=1, sizes=[rec.hidden] * 3)
        h, c, seen = rec.state(h0, d), rec.state(c0, d), {}
        for t, xt in rec.steps(d, reverse, wb):
            pre = b.call("add", xt, b.call("linear", h, rw, *([rb] if rb is not None else [])))
            gi, go, gf, gc = rec.split(pre)
            if p_i is not None:
                gi, gf = b.call("add", gi, b.call("mul", p_i, c)), \
                    b.call("add", gf, b.call("mul", p_f, c))
            i = rec.act(d, 0, rec.clipped(gi))
            f = b.call("sub", like(i, 1), i) if couple else rec.act(d, 0, rec.clipped(gf))
            cand = rec.act(d, 1, rec.clipped(gc))
            c = b.call("add", b.call("mul", f, c), b.call("mul", i, cand))
            if p_o is not None:
                go = b.call("add", go, b.call("mul", p_o, c))
            o = rec.act(d, 0, rec.clipped(go))
            h = b.call("mul", o, rec.act(d, 2, c))
            seen[t] = h
        hs.append(seen)
        finals_h.append(h)
        finals_c.append(c)
    return rec.outputs(hs, [finals_h, finals_c])
