"""Central finite differences in float64, the oracle every gradient here is checked against."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import ir
from backends.reference import run

EPS = 1e-6


def directions(shape, rng, max_elements: int = 40, n_random: int = 6):
    """Unit vectors for every element of a small tensor, else a few random directions."""
    size = int(np.prod(shape))
    if size <= max_elements:
        for i in range(size):
            e = np.zeros(size)
            e[i] = 1.0
            yield e.reshape(shape)
    else:
        for _ in range(n_random):
            yield rng.standard_normal(shape)


def check_directional(f: Callable[[np.ndarray], float], x: np.ndarray, analytic: np.ndarray,
                      rng, what: str, rtol: float = 1e-5, atol: float = 1e-7,
                      max_elements: int = 40, n_random: int = 6) -> None:
    """<analytic, v> against (f(x + eps v) - f(x - eps v)) / 2 eps for each direction v."""
    assert analytic.shape == x.shape, f"{what}: gradient shape {analytic.shape} != {x.shape}"
    got, want = [], []
    for v in directions(x.shape, rng, max_elements, n_random):
        want.append((f(x + EPS * v) - f(x - EPS * v)) / (2 * EPS))
        got.append(float(np.sum(analytic * v)))
    scale = max(1.0, float(np.max(np.abs(want))) if want else 1.0)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale, err_msg=what)


def check_graph_grads(g: ir.Graph, args: list[np.ndarray], names: list[str], grads,
                      rng, **tol) -> None:
    """Gradients `grads` of g's scalar output 0 with respect to the inputs or weights named
    `names` (g run on `args`), against finite differences of g itself."""
    inputs = [v.name for v in g.inputs]
    for name, dv in zip(names, grads, strict=True):
        if name in inputs:
            i = inputs.index(name)

            def f(x, i=i):
                return float(run(g, *args[:i], x, *args[i + 1:])[0])

            check_directional(f, args[inputs.index(name)], dv, rng, name, **tol)
        else:
            base = g.weights[name]

            def f(x, name=name, base=base):
                g.weights[name] = x
                try:
                    return float(run(g, *args)[0])
                finally:
                    g.weights[name] = base

            check_directional(f, base, dv, rng, name, **tol)


def to_float64(model) -> None:
    """Cast every float parameter and buffer of a compiler.nn model to float64, in place."""
    for m in model.modules():
        for table in (m._parameters, m._buffers):
            for k, a in table.items():
                if a is not None and a.dtype.kind == "f":
                    table[k] = a.astype(np.float64)
