"""SGD and Adam as IR against hand-written numpy implementations of torch's formulas."""

from __future__ import annotations

import numpy as np
import pytest

import ir
from backends.reference import run
from compiler import optim


def sgd_reference(p, g, buf, *, lr, momentum=0.0, weight_decay=0.0, nesterov=False,
                  first=False):
    """torch.optim.SGD's step for one parameter (dampening 0)."""
    d = g + weight_decay * p
    if momentum:
        buf = d.copy() if first else momentum * buf + d
        d = d + momentum * buf if nesterov else buf
    return p - lr * d, buf


def adam_reference(p, g, m, v, t, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                   decoupled=False):
    """torch.optim.Adam / AdamW's step for one parameter; t counts from 1."""
    b1, b2 = betas
    if decoupled:
        p = p * (1 - lr * weight_decay)
    elif weight_decay:
        g = g + weight_decay * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


SHAPES = {"w": (3, 4), "b": (5,)}


def update_graph(opt: optim.Optimizer, dtype="f64"):
    """Inputs: lr, then (p, dp) per parameter, then the optimizer's state; outputs: the new
    parameters, then the new state."""
    g = ir.Graph("update")
    lr = g.add_input("lr", ir.TensorType((), dtype))
    params = []
    for name, shape in SHAPES.items():
        p = g.add_input(name, ir.TensorType(shape, dtype))
        dp = g.add_input(f"grad.{name}", ir.TensorType(shape, dtype))
        params.append((name, p, dp))
    new_params, state = opt.build(g, params, lr)
    g.outputs = [*new_params, *(new for _, new, _ in state)]
    ir.verify(g)
    return g, state


def run_steps(opt, steps, rng):
    """Run the IR update for `steps` steps with random gradients and a changing lr;
    returns the parameter history and the gradients and rates used."""
    g, state = update_graph(opt)
    values = {name: rng.standard_normal(shape) for name, shape in SHAPES.items()}
    st = [init for _, _, init in state]
    history, grads, rates = [dict(values)], [], []
    for k in range(steps):
        gr = {name: rng.standard_normal(shape) for name, shape in SHAPES.items()}
        lr = opt.lr * (1 + 0.5 * k)  # the learning rate is an input: schedules need no rebuild
        args = [np.array(lr)]
        for name in SHAPES:
            args += [values[name], gr[name]]
        out = run(g, *args, *st)
        values = dict(zip(SHAPES, out[:len(SHAPES)]))
        st = out[len(SHAPES):]
        history.append(dict(values))
        grads.append(gr)
        rates.append(lr)
    return history, grads, rates


SGD_CONFIGS = [
    {"lr": 0.1},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.1},
    {"lr": 0.02, "momentum": 0.9, "weight_decay": 0.01, "nesterov": True},
]


@pytest.mark.parametrize("config", SGD_CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_sgd_matches_numpy(config, rng):
    history, grads, rates = run_steps(optim.SGD(**config), 4, rng)
    hyper = {k: v for k, v in config.items() if k != "lr"}
    for name in SHAPES:
        p, buf = history[0][name], None
        for k, (gr, lr) in enumerate(zip(grads, rates)):
            p, buf = sgd_reference(p, gr[name], buf, lr=lr, first=k == 0, **hyper)
            np.testing.assert_allclose(history[k + 1][name], p, rtol=1e-12, atol=1e-14)


ADAM_CONFIGS = [
    {"lr": 1e-2},
    {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6},
    {"lr": 1e-2, "weight_decay": 0.1},
    {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True},
]


@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_adam_matches_numpy(config, rng):
    history, grads, rates = run_steps(optim.Adam(**config), 5, rng)
    hyper = {k: v for k, v in config.items() if k not in ("lr", "decoupled_weight_decay")}
    for name in SHAPES:
        p = history[0][name]
        m = v = np.zeros_like(p)
        for k, (gr, lr) in enumerate(zip(grads, rates)):
            p, m, v = adam_reference(p, gr[name], m, v, k + 1, lr=lr,
                                     decoupled=config.get("decoupled_weight_decay", False),
                                     **hyper)
            np.testing.assert_allclose(history[k + 1][name], p, rtol=1e-12, atol=1e-14)


def test_adamw_is_adam_with_decoupled_decay(rng):
    a = run_steps(optim.AdamW(lr=1e-2, weight_decay=0.05), 3, np.random.default_rng(1))[0]
    b = run_steps(optim.Adam(lr=1e-2, weight_decay=0.05, decoupled_weight_decay=True), 3,
                  np.random.default_rng(1))[0]
    for x, y in zip(a, b):
        for name in SHAPES:
            np.testing.assert_array_equal(x[name], y[name])


def test_state_is_declared_and_printed():
    g, state = update_graph(optim.Adam())
    names = [v.name for v, _, _ in state]
    assert names == ["adam.step", "adam.exp_avg.w", "adam.exp_avg_sq.w", "adam.exp_avg.b",
                     "adam.exp_avg_sq.b"]
    assert str(ir.parse(str(g))) == str(g)
    assert [v.name for v in g.outputs[:2]] == ["w.new", "b.new"]
    assert update_graph(optim.SGD(0.1))[1] == []  # plain SGD keeps no state


@pytest.mark.parametrize("make, message", [
    (lambda: optim.SGD(lr=-1), "learning rate"),
    (lambda: optim.SGD(nesterov=True), "Nesterov"),
    (lambda: optim.SGD(momentum=-0.5), "momentum"),
    (lambda: optim.Adam(betas=(0.9, 1.0)), "betas"),
    (lambda: optim.Adam(eps=-1), "eps"),
])
def test_bad_hyperparameters(make, message):
    with pytest.raises(optim.OptimizerError, match=message):
        make()
