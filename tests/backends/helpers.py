"""Helpers for the LLVM backend tests: one-operator graphs and comparison with the oracle."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backends import llvm, reference
from ir import Graph, TensorType

_rng = np.random.default_rng(1234)


def randn(*shape, dtype=np.float32, scale=1.0):
    return (_rng.standard_normal(shape) * scale).astype(dtype)


def uniform(lo, hi, *shape, dtype=np.float32):
    return _rng.uniform(lo, hi, shape).astype(dtype)


def randint(lo, hi, *shape, dtype=np.int64):
    return _rng.integers(lo, hi, shape).astype(dtype)


@dataclass
class Case:
    """One operator applied to fixed operands; `weights` names operands that are weights."""

    op: str
    variant: str
    args: dict[str, np.ndarray]
    attrs: dict = field(default_factory=dict)
    weights: tuple[str, ...] = ()
    rtol: float = 1e-5
    atol: float = 1e-6

    @property
    def id(self) -> str:
        return f"{self.op}-{self.variant}"

    def graph(self) -> Graph:
        return op_graph(self.op, self.args, self.weights, **self.attrs)

    @property
    def inputs(self) -> list[np.ndarray]:
        return [a for k, a in self.args.items() if k not in self.weights]


def op_graph(op: str, args: dict, weights=(), **attrs) -> Graph:
    g = Graph()
    vals = [g.add_weight(k, a) if k in weights else g.add_input(k, TensorType.of(a))
            for k, a in args.items()]
    out = g.call(op, *vals, name="y", **attrs)
    g.outputs = list(out) if isinstance(out, tuple) else [out]
    return g


def as_list(out):
    return list(out) if isinstance(out, tuple) else [out]


def check_graph(g: Graph, inputs, rtol=1e-5, atol=1e-6, **options):
    """Compile `g` with the LLVM backend, run it, and compare with the reference."""
    model = llvm.compile_graph(g, **options)
    got = as_list(model(*inputs))
    want = reference.run(g, *inputs)
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == b.dtype, (i, a.shape, b.shape, a.dtype, b.dtype)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"output {i}")
    assert model.arena_canary_intact(), "a kernel wrote past the end of the arena"
    return model, got


def check_case(case: Case, **options):
    return check_graph(case.graph(), case.inputs, case.rtol, case.atol, **options)
