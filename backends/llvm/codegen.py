"""Module-wide state of one compilation: the LLVM module, the target, the FP mode, and the
tables the driver reads back (compile-time arrays, error messages)."""

from __future__ import annotations

import itertools

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir as llir

from .target import Target


class Codegen:
    def __init__(self, name: str, target: Target, fast_math: bool, num_threads: int):
        self.module = llir.Module(name=name)
        self.module.triple = llvm.get_process_triple()
        self.module.data_layout = str(target.machine.target_data)
        self.target = target
        self.fast_math = fast_math
        self.fp_mode = "fast" if fast_math else "strict"
        self.fmf: tuple[str, ...] = ("fast",) if fast_math else ()
        self.num_threads = num_threads
        self.phase_fns: dict[tuple, llir.Function] = {}
        self.extra: list[np.ndarray] = []  # compile-time arrays, passed after the weights
        self.n_weights = 0  # graph weights come first in the weights table
        self.errors: list[str] = []  # runtime error code k is errors[k - 1]
        self._names = itertools.count()
        self.module.add_named_metadata("lamina.fp_mode", [llir.MetaDataString(
            self.module, self.fp_mode)])

    def lanes(self, itemsize: int) -> int:
        return self.target.lanes(itemsize)

    def unique(self, base: str) -> str:
        return f"{base}.{next(self._names)}"

    def add_extra(self, array: np.ndarray) -> int:
        """Register a compile-time array; returns its slot in the weights table."""
        self.extra.append(array)
        return self.n_weights + len(self.extra) - 1

    def add_error(self, message: str) -> int:
        self.errors.append(message)
        return len(self.errors)
