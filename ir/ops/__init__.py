"""Operator declarations; importing this package registers every operator."""

from . import backward, elementwise, fused, loss, nn, recurrent, reduce, shape  # noqa: F401
from .registry import REQUIRED, Attr, Fusion, OpDef, all_ops, get, names, register

__all__ = ["REQUIRED", "Attr", "Fusion", "OpDef", "all_ops", "get", "names", "register"]
