"""The ONNX operator table: one function per ONNX operator, named like it, by family (each
family module registers its functions when imported)."""

from . import (  # noqa: F401
    elementwise,
    misc,
    nn,
    quant,
    resize,
    rnn,
    sequence,
    shape,
    signal,
    training,
    vision,
)
from .common import HANDLERS

__all__ = ["HANDLERS"]
