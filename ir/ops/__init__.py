"""Operator declarations; importing this package registers every operator."""

from . import (  # noqa: F401
    backward,
    bf16,
    bitwise,
    elementwise,
    fused,
    loss,
    narrow,
    nn,
    quant,
    recurrent,
    reduce,
    shape,
    trig,
    volumetric,
)
from .registry import REQUIRED, Attr, Fusion, OpDef, all_ops, get, names, register

__all__ = ["REQUIRED", "Attr", "Fusion", "OpDef", "all_ops", "get", "names", "register"]
