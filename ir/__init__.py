"""Lamina's IR: typed SSA graphs of registered operators, with a verifier and a text form."""

from . import ops
from .dot import to_dot
from .errors import (
    InputError,
    InvalidAttributeError,
    LaminaError,
    ParseError,
    ShapeError,
    UnknownOpError,
    VerifyError,
)
from .graph import Graph, Node, Value
from .printer import print_graph
from .serialize import load, save
from .tensor_type import DTYPES, TensorType
from .text import parse
from .verify import verify

__all__ = [
    "DTYPES", "Graph", "InputError", "InvalidAttributeError", "LaminaError", "Node", "ParseError",
    "ShapeError", "TensorType", "UnknownOpError", "Value", "VerifyError", "load", "ops", "parse",
    "print_graph", "save", "to_dot", "verify",
]


def __getattr__(name):
    # the old name of InvalidAttributeError, kept for one release
    if name == "AttributeError_":
        import warnings

        warnings.warn("ir.AttributeError_ is now ir.InvalidAttributeError", DeprecationWarning,
                      stacklevel=2)
        return InvalidAttributeError
    raise AttributeError(f"module 'ir' has no attribute {name!r}")
