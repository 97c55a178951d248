"""Operator declarations; importing this package registers every operator."""

from . import backward, elementwise, fused, loss, nn, reduce, shape  # noqa: F401  (they register)
from .registry import REQUIRED, Attr, Fusion, OpDef, all_ops, get, names, register

__all__ = ["REQUIRED", "Attr", "Fusion", "OpDef", "all_ops", "get", "names", "register"]
