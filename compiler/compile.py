"""compile(): model or graph -> optimised graph -> a callable on numpy arrays."""

from __future__ import annotations

import os

import numpy as np

import ir
import passes as _passes
from backends import reference

from .tracing import trace


class ReferenceModel:
    """A graph run by the numpy reference interpreter."""

    backend = "reference"

    def __init__(self, graph: ir.Graph):
        self.graph = graph

    def __call__(self, *args):
        out = reference.run(self.graph, *args)
        return out[0] if len(out) == 1 else tuple(out)

    def __repr__(self):
        return f"<compiled @{self.graph.name} on {self.backend}>"


def to_graph(model, *example_inputs) -> ir.Graph:
    """A graph from a compiler.nn model (traced), an ir.Graph, or a saved graph file."""
    if isinstance(model, ir.Graph):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if path.endswith(".onnx"):
            from .onnx_import import load_onnx

            # symbolic dimensions (a dynamic batch) take the example inputs' sizes
            return load_onnx(path, input_shapes=[np.shape(x) for x in example_inputs] or None)
        return ir.load(path)
    return trace(model, *example_inputs)


def compile(model, *example_inputs, opt_level: int = 2, passes=None, backend: str = "llvm",
            **options):
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
    if backend == "reference":
        if options:
            raise ir.LaminaError(f"the reference backend takes no options, got {sorted(options)}")
        return ReferenceModel(graph)
    if backend == "llvm":
        from backends import llvm

        return llvm.compile_graph(graph, **options)
    raise ir.LaminaError(f"unknown backend {backend!r}; choose 'reference' or 'llvm'")
