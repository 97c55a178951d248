"""Operator declarations; importing this package registers every operator."""

from . import (  # noqa: F401
    backward,
    elementwise,
    fused,
    loss,
    nn,
    quant,
    recurrent,
    reduce,
    shape,
    volumetric,
)
from .registry import REQUIRED, Attr, Fusion, OpDef, all_ops, get, names, register

__all__ = ["REQUIRED", "Attr", "Fusion", "OpDef", "all_ops", "get", "names", "register"]
