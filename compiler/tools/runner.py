"""Small shared pieces of the tools: building an already-optimised graph with a backend,
example inputs for a graph, and calling a compiled model uniformly."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import backends
import ir


class BackendError(ir.LaminaError):
    """A backend that crashed while compiling a valid graph (a bug in the backend)."""


def build(graph: ir.Graph, backend: str = "reference", **options):
    """A callable running `graph` as it is (no passes) on `backend`. A crash inside the
    backend (not a LaminaError) becomes BackendError, so the tools can report it and
    write a reproducer instead of dying."""
    compile_graph = backends.get(backend)
    try:
        return compile_graph(graph, **options)
    except ir.LaminaError:
        raise
    except Exception as e:
        raise BackendError(f"internal error in backend {backend}: {type(e).__name__}: {e}") \
            from e


def example_inputs(graph: ir.Graph, given: Sequence = (), seed: int = 0) -> list[np.ndarray]:
    """`given` as arrays, or seeded random inputs of the graph's input types."""
    if given:
        return [np.asarray(a) for a in given]
    rng = np.random.default_rng(seed)
    out = []
    for v in graph.inputs:
        if v.type.dtype in ("f32", "f64"):
            out.append(rng.standard_normal(v.shape).astype(v.type.np_dtype))
        elif v.type.dtype == "bool":
            out.append(rng.random(v.shape) < 0.5)
        else:
            out.append(rng.integers(0, 2, v.shape).astype(v.type.np_dtype))
    return out


def outputs(fn, inputs: Sequence) -> list[np.ndarray]:
    """The outputs of a compiled model as a list, whether it returns one array or a tuple."""
    out = fn(*inputs)
    return [np.asarray(o) for o in (out if isinstance(out, (tuple, list)) else (out,))]
