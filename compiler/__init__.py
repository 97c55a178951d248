"""Lamina's user-facing driver: layers, tracing, compile(), importers, training and the CLI."""

from backends.reference import ReferenceModel

from . import functional, nn
from .compile import compile, to_graph
from .frontends.onnx import (
    OnnxExportError,
    OnnxImportError,
    OnnxImportWarning,
    load_onnx,
    save_onnx,
)
from .frontends.tracing import Tensor, TraceError, trace
from .tools.bisection import BisectReport, bisect
from .tools.profiler import format_profile, profile
from .training import TrainingError, TrainStep, compile_training, optim

__all__ = ["BisectReport", "OnnxExportError", "OnnxImportError", "OnnxImportWarning",
           "ReferenceModel", "Tensor", "TraceError", "TrainStep", "TrainingError", "bisect",
           "compile", "compile_training", "format_profile", "functional", "load_onnx", "nn",
           "optim", "profile", "save_onnx", "to_graph", "trace"]
