"""Recurrent layers (RNN, LSTM, GRU) with torch.nn's parameters, layouts and gate orders.

They are unrolled over time at trace time into registered primitives. Per layer and
direction, one `linear` projects the whole input sequence (`W_ih x + b_ih` for every step
at once) and one `split` cuts it into steps; each step then adds `linear(h, W_hh, b_hh)`
and applies the cell's gates. States are kept as [1, batch, hidden] so that the per-step
outputs concatenate along time into the layer's output directly. An LSTM(5, 8) on x
[2, 3, 5] starts:

    %lstm: f32[1,3,8] = constant() {shape=[1,3,8], value=0.0}                  # h0
    %lstm.l0: f32[2,3,32] = linear(%x, @lstm.weight_ih_l0, @lstm.bias_ih_l0)    # all steps
    %lstm.l0_1: f32[1,3,32], %lstm.l0.1: f32[1,3,32] = split(%lstm.l0) {sizes=[1,1]}
    %lstm.l0.t0: f32[1,3,32] = linear(%lstm, @lstm.weight_hh_l0, @lstm.bias_hh_l0)
    %lstm.l0.t0_1: f32[1,3,32] = add(%lstm.l0_1, %lstm.l0.t0)
    %lstm.l0.t0_2: f32[1,3,8], ... = split(%lstm.l0.t0_1) {axis=-1, sizes=[8,8,8,8]}
    ...   (sigmoid i, f, o; tanh g; c = f*c + i*g; h = o*tanh(c)), then step t1, ...
    %lstm.l0_2: f32[2,3,8] = concat(%lstm.l0.t0_11, %lstm.l0.t1_11) {axis=0}

Gate orders are torch's: LSTM (i, f, g, o); GRU (r, z, n) with
n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
"""

from __future__ import annotations

import math

from ir import ShapeError

from .. import functional as F
from ..frontends import tracing
from . import init
from .layers import next_dropout_seed
from .module import Module


class _RNNBase(Module):
    """Shared structure: parameters per layer and direction, unrolling, state plumbing."""

    gates = 1
    n_states = 1  # h, or (h, c) for the LSTM

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False):
        super().__init__()
        name = type(self).__name__
        init.check_sizes(name, ("input_size", "hidden_size", "num_layers"),
                         input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        if hidden_size <= 0 or input_size <= 0 or num_layers <= 0:
            raise ShapeError(f"{name}: input_size, hidden_size and num_layers must be positive, "
                             f"got {input_size}, {hidden_size}, {num_layers}")
        if not 0 <= dropout < 1:
            raise ShapeError(f"{name}: dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.bidirectional = bidirectional
        self.seed = next_dropout_seed()
        bound = 1 / math.sqrt(hidden_size)
        rows = self.gates * hidden_size
        for layer in range(num_layers):
            cols = input_size if layer == 0 else hidden_size * self.num_directions
            for sfx in self._suffixes():
                # torch's registration order, so state_dict() keys come out in its order
                setattr(self, f"weight_ih_l{layer}{sfx}", init.uniform((rows, cols), bound))
                setattr(self, f"weight_hh_l{layer}{sfx}", init.uniform((rows, hidden_size),
                                                                       bound))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{sfx}", init.uniform((rows,), bound))
                    setattr(self, f"bias_hh_l{layer}{sfx}", init.uniform((rows,), bound))

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _suffixes(self) -> list[str]:
        return ["", "_reverse"][: self.num_directions]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for flag in ("batch_first", "bidirectional"):
            if getattr(self, flag):
                s += f", {flag}=True"
        if not self.bias:
            s += ", bias=False"
        return s

    # ---- the cell (one time step) --------------------------------------------------------
    def cell(self, xp, state: tuple, w_hh, b_hh) -> tuple:
        """New state from the step's input projection `xp` [1, B, gates*H] and the old state."""
        raise NotImplementedError

    # ---- unrolling -----------------------------------------------------------------------
    def _run(self, x, states):
        """x: [T, B, I] (time-major); initial states as a tuple of [L*D, B, H] tensors or None.
        Returns the last layer's output [T, B, D*H] and the final states, same layout."""
        t_len, batch = x.shape[0], x.shape[1]
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        init_states = [self._state_pieces(s, shape, k, x.dtype) for k, s in enumerate(states)]
        finals = []
        for layer in range(self.num_layers):
            outs = []
            for d, sfx in enumerate(self._suffixes()):
                idx = layer * self.num_directions + d
                state = tuple(pieces[idx] for pieces in init_states)
                w_ih, w_hh = (getattr(self, f"weight_{k}_l{layer}{sfx}") for k in ("ih", "hh"))
                b_ih, b_hh = (getattr(self, f"bias_{k}_l{layer}{sfx}") if self.bias else None
                              for k in ("ih", "hh"))
                part = f"l{layer}{sfx}"
                with tracing.name_scope(part):
                    xp = F.linear(x, w_ih, b_ih)
                    steps = xp.split(1, 0) if t_len > 1 else (xp,)
                hs = [None] * t_len
                for t in reversed(range(t_len)) if d else range(t_len):
                    with tracing.name_scope(f"{part}.t{t}"):
                        state = self.cell(steps[t], state, w_hh, b_hh)
                    hs[t] = state[0]
                with tracing.name_scope(part):
                    outs.append(F.cat(hs, 0) if t_len > 1 else hs[0])
                finals.append(state)
            with tracing.name_scope(f"l{layer}"):
                x = F.cat(outs, -1) if len(outs) > 1 else outs[0]
                if self.dropout and self.training and layer < self.num_layers - 1:
                    x = F.dropout(x, self.dropout, True, self.seed * 1000 + layer)
        n = len(finals)
        final = tuple(F.cat([f[k] for f in finals], 0) if n > 1 else finals[0][k]
                      for k in range(self.n_states))
        return x, final

    def _state_pieces(self, s, shape, k, dtype):
        """An initial state [L*D, B, H] (zeros when None) as L*D tensors [1, B, H]."""
        if s is None:
            zero = tracing.op("constant", value=0.0, shape=(1, *shape[1:]), dtype=dtype)
            return [zero] * shape[0]
        if tuple(s.shape) != shape:
            what = ("h0", "c0")[k]
            raise ShapeError(f"{tracing.where()}{what} must be {list(shape)} "
                             f"(num_layers*num_directions, batch, hidden_size), got "
                             f"{list(s.shape)}")
        return list(s.split(1, 0)) if shape[0] > 1 else [s]

    def _forward(self, x, states):
        """torch's calling conventions around `_run`: batch_first, unbatched inputs."""
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            layout = "[B, T, I]" if self.batch_first else "[T, B, I]"
            raise ShapeError(f"{tracing.where()}expected input {layout} or [T, I] with "
                             f"I={self.input_size}, got {list(x.shape)}")
        if x.shape[-2 if x.ndim == 2 else (1 if self.batch_first else 0)] == 0:
            raise ShapeError(f"{tracing.where()}input has no time steps: {list(x.shape)}")
        unbatched = x.ndim == 2
        if unbatched:
            x = x.unsqueeze(1)
            states = tuple(None if s is None else s.unsqueeze(1) for s in states)
        elif self.batch_first:
            x = x.transpose(0, 1)
        out, final = self._run(x, states)
        if unbatched:
            return out.squeeze(1), tuple(s.squeeze(1) for s in final)
        if self.batch_first:
            out = out.transpose(0, 1)
        return out, final


class RNN(_RNNBase):
    """Elman RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False):
        if nonlinearity not in ("tanh", "relu"):
            raise ShapeError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional)
        self.nonlinearity = nonlinearity

    def cell(self, xp, state, w_hh, b_hh):
        pre = xp + F.linear(state[0], w_hh, b_hh)
        return (F.tanh(pre) if self.nonlinearity == "tanh" else F.relu(pre),)

    def forward(self, x, h0=None):
        """(output, h_n): output [T, B, D*H] ([B, T, D*H] if batch_first), h_n [L*D, B, H]."""
        out, (h,) = self._forward(x, (h0,))
        return out, h


class LSTM(_RNNBase):
    """Long short-term memory, gates (i, f, g, o) stacked in torch's order."""

    gates = 4
    n_states = 2

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0):
        if proj_size:
            raise ShapeError(f"LSTM: proj_size={proj_size} is not supported (only 0)")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional)

    def cell(self, xp, state, w_hh, b_hh):
        h, c = state
        i, f, g, o = (xp + F.linear(h, w_hh, b_hh)).split(self.hidden_size, -1)
        c = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
        return F.sigmoid(o) * F.tanh(c), c

    def forward(self, x, h0=None, c0=None):
        """(output, (h_n, c_n)). The initial state is torch's tuple `(h0, c0)` or, for
        tracing with positional inputs, `h0, c0` as two arguments."""
        if isinstance(h0, tuple):
            if c0 is not None or len(h0) != 2:
                raise ShapeError(f"{tracing.where()}pass the initial state as (h0, c0) or as "
                                 "two arguments, not both")
            h0, c0 = h0
        out, (h, c) = self._forward(x, (h0, c0))
        return out, (h, c)


class GRU(_RNNBase):
    """Gated recurrent unit, gates (r, z, n) in torch's order, torch's reset placement."""

    gates = 3

    def cell(self, xp, state, w_hh, b_hh):
        (h,) = state
        hid = self.hidden_size
        x_rz, x_n = xp.split([2 * hid, hid], -1)
        h_rz, h_n = F.linear(h, w_hh, b_hh).split([2 * hid, hid], -1)
        r, z = F.sigmoid(x_rz + h_rz).split(hid, -1)
        n = F.tanh(x_n + r * h_n)
        return (n + z * (h - n),)  # (1 - z) * n + z * h

    def forward(self, x, h0=None):
        """(output, h_n), as RNN."""
        out, (h,) = self._forward(x, (h0,))
        return out, h
