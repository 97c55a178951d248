"""Optimizers as IR: each one writes its update rule into the training graph.

An optimizer is a description (hyperparameters) plus two things the training compiler asks
of it: the state it keeps (per parameter, `slots`, zeros to begin with; and global scalars,
`scalars`), and `update`, which appends the nodes computing a parameter's new value and new
state from its gradient. Parameters and state are inputs of the compiled step and their
new values outputs, so one graph execution does forward, backward and update. The learning
rate is an input too (a float scalar read from `optimizer.lr` at every call), so schedules
need no recompilation; the other hyperparameters are constants of the graph.

The formulas are torch's (torch.optim.SGD and Adam/AdamW, without amsgrad or dampening).
"""

from __future__ import annotations

import numpy as np

import ir
from ir import LaminaError


class OptimizerError(LaminaError):
    """Hyperparameters an optimizer cannot use."""


class Builder:
    """Graph.call naming the new nodes after what they compute (`sgd.fc.weight`), plus
    scalar constants."""

    def __init__(self, graph: ir.Graph, base: str):
        self.graph, self.base = graph, base

    def call(self, op: str, *inputs, name: str | None = None, **attrs):
        return self.graph.call(op, *inputs, name=name or self.base, **attrs)

    def const(self, value: float, like: ir.Value) -> ir.Value:
        return self.call("constant", value=float(value), dtype=like.dtype)

    def axpy(self, a: float, x: ir.Value, y: ir.Value) -> ir.Value:
        """a * x + y."""
        return self.call("add", self.call("mul", x, self.const(a, x)), y)


class Optimizer:
    """Base class: `lr` plus the state and update rule subclasses define."""

    name = "optimizer"
    slots: tuple[str, ...] = ()  # per-parameter state, each shaped like the parameter

    def __init__(self, lr: float):
        _check(lr >= 0, f"learning rate must be >= 0, got {lr}")
        self.lr = float(lr)

    def scalars(self) -> dict[str, float]:
        """Global scalar state and its initial values."""
        return {}

    def update_scalars(self, b: Builder, scalars: dict[str, ir.Value]) -> dict[str, ir.Value]:
        """New values of the global scalars, computed once per step before the updates."""
        return {}

    def update(self, b: Builder, p: ir.Value, dp: ir.Value, state: dict[str, ir.Value],
               scalars: dict[str, ir.Value], lr: ir.Value) -> tuple[ir.Value, dict]:
        """(new parameter, new per-parameter state) from the gradient `dp`; `scalars` are
        the already updated global scalars."""
        raise NotImplementedError

    def build(self, graph: ir.Graph, params: list[tuple[str, ir.Value, ir.Value]],
              lr: ir.Value) -> tuple[list[ir.Value], list[tuple[ir.Value, ir.Value, np.ndarray]]]:
        """Append every update to `graph`; `params` holds (name, value, gradient) and `lr`
        is a scalar value. Adds the state as graph inputs and returns the new parameter
        values (in order) and the state as (input, new value, initial array) triples."""
        dtype = params[0][1].dtype if params else "f32"
        state = []
        scalars = {key: graph.add_input(graph.fresh_name(f"{self.name}.{key}"),
                                        ir.TensorType((), dtype)) for key in self.scalars()}
        new_scalars = self.update_scalars(Builder(graph, self.name), scalars)
        for key, init in self.scalars().items():
            v = scalars[key]
            state.append((v, new_scalars[key], np.array(init, v.type.np_dtype)))
        new_params = []
        for name, p, dp in params:
            slots = {s: graph.add_input(graph.fresh_name(f"{self.name}.{s}.{name}"), p.type)
                     for s in self.slots}
            b = Builder(graph, f"{self.name}.{name}")
            rate = lr if lr.dtype == p.dtype else b.call("cast", lr, dtype=p.dtype)
            typed = {k: v if v.dtype == p.dtype else b.call("cast", v, dtype=p.dtype)
                     for k, v in new_scalars.items()}
            new_p, new_slots = self.update(b, p, dp, slots, typed, rate)
            new_params.append(new_p)
            for s, v in slots.items():
                state.append((v, new_slots[s], np.zeros(v.shape, v.type.np_dtype)))
        return new_params, state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise OptimizerError(message)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight
    decay, as torch.optim.SGD computes it (dampening 0):

        g = dp + weight_decay * p
        buf = momentum * buf + g                 (buf starts at zero, so step 1 gives g)
        g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    """

    name = "sgd"

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False):
        super().__init__(lr)
        _check(momentum >= 0, f"momentum must be >= 0, got {momentum}")
        _check(weight_decay >= 0, f"weight_decay must be >= 0, got {weight_decay}")
        _check(not nesterov or momentum > 0, "Nesterov momentum needs momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = float(momentum), float(
            weight_decay), bool(nesterov)

    @property
    def slots(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.momentum else ()

    def update(self, b, p, dp, state, scalars, lr):
        g = b.axpy(self.weight_decay, p, dp) if self.weight_decay else dp
        new = {}
        if self.momentum:
            buf = b.axpy(self.momentum, state["momentum_buffer"], g)
            new["momentum_buffer"] = buf
            g = b.axpy(self.momentum, buf, g) if self.nesterov else buf
        return b.call("sub", p, b.call("mul", g, lr), name=f"{p.name}.new"), new


class Adam(Optimizer):
    """Adam (torch.optim.Adam; with `decoupled_weight_decay`, AdamW):

        t = t + 1
        g = dp + weight_decay * p                (L2 form; AdamW instead does
                                                  p = p * (1 - lr * weight_decay))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    name = "adam"
    slots = ("exp_avg", "exp_avg_sq")

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 decoupled_weight_decay: bool = False):
        super().__init__(lr)
        b1, b2 = betas
        _check(0 <= b1 < 1 and 0 <= b2 < 1, f"betas must lie in [0, 1), got {betas}")
        _check(eps >= 0, f"eps must be >= 0, got {eps}")
        _check(weight_decay >= 0, f"weight_decay must be >= 0, got {weight_decay}")
        self.betas, self.eps = (float(b1), float(b2)), float(eps)
        self.weight_decay, self.decoupled_weight_decay = float(weight_decay), bool(
            decoupled_weight_decay)

    def scalars(self) -> dict[str, float]:
        return {"step": 0.0}

    def update_scalars(self, b, scalars):
        t = b.call("add", scalars["step"], b.const(1.0, scalars["step"]))
        return {"step": t}

    def update(self, b, p, dp, state, scalars, lr):
        (b1, b2), t = self.betas, scalars["step"]
        g, out_name = dp, f"{p.name}.new"
        if self.weight_decay and self.decoupled_weight_decay:
            shrink = b.call("sub", b.const(1.0, p), b.call("mul", lr, b.const(self.weight_decay,
                                                                                p)))
            p = b.call("mul", p, shrink)
        elif self.weight_decay:
            g = b.axpy(self.weight_decay, p, dp)
        m = b.axpy(b1, state["exp_avg"], b.call("mul", g, b.const(1 - b1, g)))
        v = b.axpy(b2, state["exp_avg_sq"],
                   b.call("mul", b.call("mul", g, g), b.const(1 - b2, g)))

        def correction(beta):  # 1 - beta^t
            return b.call("sub", b.const(1.0, t), b.call("pow", b.const(beta, t), t))

        denom = b.call("add", b.call("div", b.call("sqrt", v), b.call("sqrt", correction(b2))),
                       b.const(self.eps, v))
        step = b.call("mul", b.call("div", lr, correction(b1)), b.call("div", m, denom))
        return b.call("sub", p, step, name=out_name), {"exp_avg": m, "exp_avg_sq": v}


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW; weight_decay defaults to 0.01)."""

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(lr, betas, eps, weight_decay, decoupled_weight_decay=True)
