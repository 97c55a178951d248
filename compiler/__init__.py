"""Lamina's user-facing driver: layers, tracing, compile(), importers and the CLI."""

from . import functional, nn
from .compile import ReferenceModel, compile, to_graph
from .tracing import Tensor, TraceError, trace

__all__ = ["ReferenceModel", "Tensor", "TraceError", "compile", "functional", "nn", "to_graph",
           "trace"]
