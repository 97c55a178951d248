"""Backends turn a verified, optimised graph into something that runs.

    fn = backends.get("llvm")(graph, num_threads=2)   # or backends.get() for the default
    y = fn(x)

The table below is the one place that knows which backends exist: `compiler.compile`, the
training step and the CLI's tools all choose through it. Each entry is a module exposing
`compile_graph(graph, **options) -> callable`; it is imported on first use, so a backend
whose dependencies are missing costs nothing until it is asked for.
"""

from __future__ import annotations

import importlib

from ir import LaminaError

BACKENDS = {
    "llvm": "backends.llvm",  # native code through llvmlite: vectorised, multi-threaded
    "reference": "backends.reference",  # the numpy interpreter, the oracle
}
DEFAULT = "llvm"


class UnknownBackendError(LaminaError, ValueError):
    """A backend name that is not in the table, or one that cannot be imported here."""


def get(name: str = DEFAULT):
    """The `compile_graph(graph, **options)` function of backend `name`."""
    if name not in BACKENDS:
        raise UnknownBackendError(f"unknown backend {name!r}; choose one of "
                                  f"{', '.join(BACKENDS)}")
    try:
        return importlib.import_module(BACKENDS[name]).compile_graph
    except ImportError as e:
        raise UnknownBackendError(f"the {name} backend is not available here ({e}); use "
                                  f"backend='reference'") from None


def available(name: str) -> bool:
    """Whether backend `name` can be used here (its dependencies import)."""
    try:
        get(name)
    except UnknownBackendError:
        return False
    return True
