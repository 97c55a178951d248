"""Training side by side with torch: the same model in both libraries and a loop that takes
the same steps in each, checking the loss and every parameter after every step. torch is
the independent reference (its eager autograd and optimisers)."""

from __future__ import annotations

import numpy as np

from compiler import nn


def paired(build, jitter: float = 0.0):
    """(torch model, Lamina model): `build(torch.nn)` and `build(compiler.nn)`, Lamina's
    loaded from torch's state_dict; `jitter` first moves torch's parameters by that much
    noise (away from initialisations with special values, such as zero biases)."""
    import torch

    torch.manual_seed(0)
    tm, model = build(torch.nn), build(nn)
    if jitter:
        with torch.no_grad():
            for v in tm.parameters():
                v.add_(torch.randn_like(v) * jitter)
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm, model


def train_alongside(step, tm, theirs, loss, xs, y, steps: int = 5, tol: float = 1e-5):
    """Run Lamina's compiled training `step` and torch's `theirs` optimiser over `tm` on the
    same batch (`xs`, a tuple of inputs, and the target `y`); `loss(output, target)` is the
    torch loss. Returns the step."""
    import torch

    for t in range(steps):
        got = step(*xs, y)
        theirs.zero_grad()
        want = loss(tm(*(torch.from_numpy(x) for x in xs)), torch.from_numpy(y))
        want.backward()
        theirs.step()
        np.testing.assert_allclose(got, want.item(), rtol=tol, atol=tol, err_msg=f"loss, step {t}")
        state = step.state_dict()
        for k, v in tm.state_dict().items():
            np.testing.assert_allclose(state[k], v.numpy(), rtol=tol, atol=tol,
                                       err_msg=f"{k} after step {t + 1}")
    return step
