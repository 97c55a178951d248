"""Lamina's IR: typed SSA graphs of registered operators, with a verifier and a text form."""

from . import ops
from .dot import to_dot
from .errors import (
    AttributeError_,
    InputError,
    LaminaError,
    ParseError,
    ShapeError,
    UnknownOpError,
    VerifyError,
)
from .graph import Graph, Node, Value
from .serialize import load, save
from .text import parse, print_graph
from .types import DTYPES, TensorType
from .verify import verify

__all__ = [
    "DTYPES", "AttributeError_", "Graph", "InputError", "LaminaError", "Node", "ParseError",
    "ShapeError", "TensorType", "UnknownOpError", "Value", "VerifyError", "load", "ops", "parse",
    "print_graph", "save", "to_dot", "verify",
]
