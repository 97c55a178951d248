"""The ONNX operator table: one function per ONNX operator, named like it, by family."""

from . import elementwise, nn, resize, rnn, shape  # noqa: F401  (each family registers)
from .common import HANDLERS

__all__ = ["HANDLERS"]
