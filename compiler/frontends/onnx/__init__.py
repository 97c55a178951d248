"""ONNX in and out: `load_onnx` (importer.py, with one function per ONNX operator in ops/)
and `save_onnx` (exporter.py, with one function per registry operator in export_ops.py).
The `onnx` package is imported only when a model is read or written."""

from .builder import OnnxImportError, OnnxImportWarning, OnnxOpsetWarning
from .emitter import OnnxExportError
from .exporter import save_onnx
from .importer import importable, input_dims, load_onnx, signature

__all__ = ["OnnxExportError", "OnnxImportError", "OnnxImportWarning", "OnnxOpsetWarning",
           "importable", "input_dims", "load_onnx", "save_onnx", "signature"]
