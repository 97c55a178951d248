"""Lamina's user-facing driver: layers, tracing, compile(), importers and the CLI."""

from . import functional, nn, optim
from .bisection import BisectReport, bisect
from .compile import ReferenceModel, compile, to_graph
from .onnx_export import OnnxExportError, save_onnx
from .onnx_import import OnnxImportError, OnnxImportWarning, load_onnx
from .profiler import format_profile, profile
from .tracing import Tensor, TraceError, trace
from .training import TrainingError, TrainStep, compile_training

__all__ = ["BisectReport", "OnnxExportError", "OnnxImportError", "OnnxImportWarning",
           "ReferenceModel", "Tensor", "TraceError", "TrainStep", "TrainingError", "bisect",
           "compile", "compile_training", "format_profile", "functional", "load_onnx", "nn",
           "optim", "profile", "save_onnx", "to_graph", "trace"]
