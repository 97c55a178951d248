"""The ATen operator table: one function per Core ATen operator, by family."""

from . import attention, elementwise, nn, recurrent, shape  # noqa: F401  (each registers its functions)
from .common import HANDLERS

__all__ = ["HANDLERS"]
