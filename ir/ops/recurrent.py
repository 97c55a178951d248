"""Recurrent operators: lstm, gru and rnn over a whole sequence, as ONNX defines LSTM, GRU
and RNN with their default activations.

Layouts are ONNX's (layout=0): x [T, B, I]; w [D, G*H, I]; r [D, G*H, H]; b [D, 2*G*H]
(input biases, then recurrence biases); optional initial states [D, B, H]; outputs
y [T, D, B, H] and the final states [D, B, H]. D is 2 for direction="bidirectional", else 1.
Gates are stacked as ONNX stacks them: LSTM (i, o, f, c), GRU (z, r, h), RNN one.

They come from the ONNX importer (compiler.nn's LSTM and GRU trace to their cells, which are
differentiable), so they carry no gradient rule.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..tensor_type import TensorType
from .registry import REQUIRED, Attr, Fusion, OpDef, register
from .shape_rules import floats

DIRECTIONS = ("forward", "reverse", "bidirectional")


def num_directions(direction: str) -> int:
    return 2 if direction == "bidirectional" else 1


def reverses(direction: str) -> list[bool]:
    """Per direction index: whether it walks the sequence backwards."""
    return {"forward": [False], "reverse": [True], "bidirectional": [False, True]}[direction]


def _attrs(**extra) -> dict:
    return {"direction": Attr("str", "forward", lambda v: v in DIRECTIONS,
                              "forward, reverse or bidirectional"),
            "hidden_size": Attr("int", REQUIRED, lambda v: v > 0, "positive"), **extra}


def _infer(gates: int, states: int):
    """Shape inference for an operator with `gates` gate blocks and `states` state outputs."""

    def infer(x, w, r, b, *init, direction, hidden_size, **_):
        dtype = floats(x, w, r, b, *init)
        d, h = num_directions(direction), hidden_size
        if x.rank != 3:
            raise ShapeError(f"x must be [seq, batch, input], got {x}")
        t, n, i = x.shape
        if i < 1:
            raise ShapeError(f"x {x} has no input features")
        want = {"w": (w, (d, gates * h, i)), "r": (r, (d, gates * h, h)),
                "b": (b, (d, 2 * gates * h))}
        want.update({f"initial state {k}": (s, (d, n, h)) for k, s in enumerate(init)})
        for what, (typ, shape) in want.items():
            if typ.shape != shape:
                raise ShapeError(f"{what} must be {list(shape)} for direction={direction}, "
                                 f"hidden_size={h} and x {x}, got {typ}")
        state = TensorType((d, n, h), dtype)
        return (TensorType((t, d, n, h), dtype), *[state] * states)

    return infer


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow for large negative x."""
    return np.exp(-np.logaddexp(0, -x)).astype(x.dtype)


def _start(x, init, k: int, d: int, h: int) -> np.ndarray:
    """Initial state k of direction d: given, or zeros."""
    if len(init) > k:
        return init[k][d]
    return np.zeros((x.shape[1], h), x.dtype)


def _sequence(x, direction, cell, states: int, init, h):
    """Run `cell(d, x_t, *state) -> new state tuple (h first)` over the sequence in each
    direction; returns y and the final states."""
    t_len, batch = x.shape[:2]
    dirs = reverses(direction)
    y = np.zeros((t_len, len(dirs), batch, h), x.dtype)
    finals = [np.zeros((len(dirs), batch, h), x.dtype) for _ in range(states)]
    for d, rev in enumerate(dirs):
        state = tuple(_start(x, init, k, d, h) for k in range(states))
        for t in (range(t_len - 1, -1, -1) if rev else range(t_len)):
            state = cell(d, x[t], *state)
            y[t, d] = state[0]
        for k in range(states):
            finals[k][d] = state[k]
    return (y, *finals)


def _lstm(x, w, r, b, *init, direction, hidden_size):
    """ONNX LSTM: it = s(Xt Wi' + Ht-1 Ri' + Wbi + Rbi), ft, ot likewise, ct = tanh(...),
    Ct = ft * Ct-1 + it * ct, Ht = ot * tanh(Ct)."""
    h = hidden_size

    def cell(d, xt, hp, cp):
        g = xt @ w[d].T + hp @ r[d].T + b[d, :4 * h] + b[d, 4 * h:]
        i, o, f, c = (g[:, k * h:(k + 1) * h] for k in range(4))
        c_new = sigmoid(f) * cp + sigmoid(i) * np.tanh(c)
        return sigmoid(o) * np.tanh(c_new), c_new

    return _sequence(x, direction, cell, 2, init, h)


def _gru(x, w, r, b, *init, direction, hidden_size, linear_before_reset):
    """ONNX GRU: zt = s(Xt Wz' + Ht-1 Rz' + Wbz + Rbz), rt likewise,
    ht = tanh(Xt Wh' + (rt * Ht-1) Rh' + Rbh + Wbh)            (linear_before_reset=False)
    ht = tanh(Xt Wh' + rt * (Ht-1 Rh' + Rbh) + Wbh)            (linear_before_reset=True)
    Ht = (1 - zt) * ht + zt * Ht-1."""
    h = hidden_size

    def cell(d, xt, hp):
        wz, wr, wh = (w[d, k * h:(k + 1) * h] for k in range(3))
        rz, rr, rh = (r[d, k * h:(k + 1) * h] for k in range(3))
        wbz, wbr, wbh, rbz, rbr, rbh = (b[d, k * h:(k + 1) * h] for k in range(6))
        z = sigmoid(xt @ wz.T + hp @ rz.T + wbz + rbz)
        rt = sigmoid(xt @ wr.T + hp @ rr.T + wbr + rbr)
        if linear_before_reset:
            cand = np.tanh(xt @ wh.T + rt * (hp @ rh.T + rbh) + wbh)
        else:
            cand = np.tanh(xt @ wh.T + (rt * hp) @ rh.T + rbh + wbh)
        return ((1 - z) * cand + z * hp,)

    return _sequence(x, direction, cell, 1, init, h)


def _rnn(x, w, r, b, *init, direction, hidden_size):
    """ONNX RNN: Ht = tanh(Xt Wi' + Ht-1 Ri' + Wbi + Rbi)."""
    h = hidden_size

    def cell(d, xt, hp):
        return (np.tanh(xt @ w[d].T + hp @ r[d].T + b[d, :h] + b[d, h:]),)

    return _sequence(x, direction, cell, 1, init, h)


_DOC = ("over x [seq, batch, input] with w [dirs, {g}*H, input], r [dirs, {g}*H, H], "
        "b [dirs, {b}*H] and optional initial {s} [dirs, batch, H]; outputs y [seq, dirs, "
        "batch, H] and the final {f} [dirs, batch, H]; ONNX's {onnx} with default "
        "activations, gates {order}")

register(OpDef(
    name="lstm",
    infer=_infer(4, 2),
    compute=_lstm,
    attrs=_attrs(),
    arity=(4, 6),
    fusion=Fusion.OPAQUE,
    doc="LSTM " + _DOC.format(g=4, b=8, s="h (and c)", f="h and c", onnx="LSTM",
                              order="(i, o, f, c)")))

register(OpDef(
    name="gru",
    infer=_infer(3, 1),
    compute=_gru,
    attrs=_attrs(linear_before_reset=Attr("bool", False)),
    arity=(4, 5),
    fusion=Fusion.OPAQUE,
    doc="GRU " + _DOC.format(g=3, b=6, s="h", f="h", onnx="GRU", order="(z, r, h)")))

register(OpDef(
    name="rnn",
    infer=_infer(1, 1),
    compute=_rnn,
    attrs=_attrs(),
    arity=(4, 5),
    fusion=Fusion.OPAQUE,
    doc="Elman RNN (tanh) " + _DOC.format(g=1, b=2, s="h", f="h", onnx="RNN", order="one")))
