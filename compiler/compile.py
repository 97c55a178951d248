"""compile(): model or graph -> optimised graph -> a callable on numpy arrays."""

from __future__ import annotations

import os

import numpy as np

import backends
import ir
import passes as _passes

from .frontends.tracing import trace


def to_graph(model, *example_inputs) -> ir.Graph:
    """A graph from a compiler.nn model (traced), an ir.Graph, or a saved graph file."""
    if isinstance(model, ir.Graph):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if path.endswith(".onnx"):
            from .frontends.onnx import load_onnx

            # symbolic dimensions (a dynamic batch) take the example inputs' sizes
            return load_onnx(path, input_shapes=[np.shape(x) for x in example_inputs] or None)
        return ir.load(path)
    return trace(model, *example_inputs)


def compile(model, *example_inputs, opt_level: int = 2, passes=None,
            backend: str = backends.DEFAULT, **options):
    """Trace (if needed), optimise and compile `model`; the result is called with numpy
    arrays and returns an array, or a tuple for several outputs. `fn.graph` is what runs.

    `backend` is "llvm" (native code, the default) or "reference" (the numpy interpreter);
    `passes` overrides the opt-level pipeline with a list of pass names; other keyword
    options go to the LLVM backend (num_threads, fast_math, cache_dir, target_features)."""
    try:
        example_inputs = tuple(np.asarray(x) for x in example_inputs)
    except ValueError as e:  # a ragged nested list
        raise ir.InputError(f"an example input is not an array: {e}") from None
    graph = to_graph(model, *example_inputs)
    ir.verify(graph)
    graph = _passes.optimize(graph, opt_level=opt_level, passes=passes)
    return backends.get(backend)(graph, **options)
