"""Numeric helpers for bisection: a graph retyped to float64, and error measures.

    g64 = retype(graph, "f64")           # the same computation with f32 promoted to f64
    err = Error.between(actual, exact)   # abs, rel and ULP error, and where the worst is
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import ir


def retype(graph: ir.Graph, dtype: str = "f64", source: str = "f32") -> ir.Graph:
    """A copy of `graph` in which every `source`-typed input, weight and value is `dtype`.

    Weights are cast; `dtype` attributes (cast, constant) naming `source` are changed;
    bodies of fused operators are retyped too; every other type is inferred again, so the
    copy verifies. Node i of the copy is node i of the original, with the same names."""
    src, dst = ir.DTYPES[source], ir.DTYPES[dtype]
    out = ir.Graph(graph.name)

    def t(tt: ir.TensorType) -> ir.TensorType:
        return ir.TensorType(tt.shape, dtype) if tt.dtype == source else tt

    env: dict[int, ir.Value] = {}
    for v in graph.inputs:
        env[id(v)] = out.add_input(v.name, t(v.type))
    for name, v in graph.params.items():
        data = graph.weights.get(name)
        if data is None:
            env[id(v)] = out.add_weight(name, type=t(v.type))
        else:
            env[id(v)] = out.add_weight(name, data.astype(dst) if data.dtype == src else data)
    for n in graph.nodes:
        attrs = {k: _retype_attr(k, a, dtype, source) for k, a in n.attrs.items()}
        new = out.create_node(n.op, [env[id(v)] for v in n.inputs], attrs, name=n.name)
        for old_v, new_v in zip(n.outputs, new.outputs):
            env[id(old_v)] = new_v
    out.outputs = [env[id(v)] for v in graph.outputs]
    return out


def _retype_attr(key: str, value, dtype: str, source: str):
    if isinstance(value, ir.Graph):
        return retype(value, dtype, source)
    if key == "dtype" and value == source:
        return dtype
    return value


@dataclass(frozen=True)
class Error:
    """How far `actual` is from `exact`: the largest absolute error, that error relative to
    the largest magnitude of `exact` (normwise, so zeros do not blow it up), the largest
    elementwise distance in units in the last place of `actual`'s dtype, and the index of
    the largest absolute error."""

    abs: float
    rel: float
    ulp: float
    index: tuple[int, ...] = ()

    @classmethod
    def between(cls, actual, exact) -> Error:
        a, e = np.asarray(actual), np.asarray(exact)
        if a.shape != e.shape:
            return cls(float("inf"), float("inf"), float("inf"))
        if a.size == 0:
            return cls(0.0, 0.0, 0.0)
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            same = (a64 == e64) | (np.isnan(a64) & np.isnan(e64))
            diff = np.where(same, 0.0, np.abs(a64 - e64))
        diff = np.where(np.isnan(diff), np.inf, diff)  # NaN on one side only
        worst = int(np.argmax(diff))
        err = float(diff.flat[worst])
        finite = e64[np.isfinite(e64)]
        scale = float(np.max(np.abs(finite))) if finite.size else 0.0
        rel = err / scale if scale > 0 else (0.0 if err == 0 else float("inf"))
        ulp = float(np.max(diff / _spacing(e64, a.dtype)))
        return cls(err, rel, ulp, tuple(int(i) for i in np.unravel_index(worst, a.shape)))

    def __str__(self) -> str:
        return f"abs {self.abs:.3g}, rel {self.rel:.3g}, {self.ulp:.3g} ULP"


def _spacing(exact: np.ndarray, dtype) -> np.ndarray:
    """One unit in the last place of `dtype` at each magnitude of `exact` (1 for integers)."""
    if not np.issubdtype(dtype, np.floating):
        return np.ones_like(exact)
    info = np.finfo(dtype)
    mag = np.abs(exact)
    mag = np.where(np.isfinite(mag), np.minimum(mag, float(info.max)), float(info.max))
    with np.errstate(over="ignore"):  # the spacing at the largest float is infinite
        return np.spacing(mag.astype(dtype)).astype(np.float64)


def same(a, b, contract) -> bool:
    """Whether `a` and `b` agree under a pass's numeric contract: bit for bit (NaN equal to
    NaN) when exact, numpy.allclose with its rtol/atol otherwise."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if contract.exact:
        if np.issubdtype(a.dtype, np.floating):
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(np.array_equal(a, b))
    return bool(np.allclose(a, b, rtol=contract.rtol, atol=contract.atol, equal_nan=True))
