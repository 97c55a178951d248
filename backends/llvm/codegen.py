"""Module-wide state of one compilation: the LLVM module, the target, the FP mode, and the
tables the driver reads back (compile-time arrays, error messages); and `optimize`, the one
place LLVM's optimisation pipeline is run."""

from __future__ import annotations

import itertools

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir as llir
from llvmlite.binding.newpassmanagers import NewPassManager

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


def optimize(mod: llvm.ModuleRef, machine: llvm.TargetMachine, speed_level: int = 3,
             **tuning: bool) -> None:
    """Run LLVM's default pipeline at `speed_level` on `mod` (new pass manager); `tuning`
    sets PipelineTuningOptions flags such as loop_vectorization=True.

    Every object is freed here, not left to the garbage collector: llvmlite 0.50's
    ModulePassManager never frees itself (its ObjectRef base's no-op _dispose shadows
    NewPassManager._dispose), which leaked the whole O3 pipeline, about 55 kB, per compile.
    A pass builder is not reused either: each run registers callbacks into it that point
    into that run's stack frame."""
    pto = llvm.create_pipeline_tuning_options(speed_level=speed_level)
    for name, value in tuning.items():
        setattr(pto, name, value)
    pb = llvm.create_pass_builder(machine, pto)
    mpm = pb.getModulePassManager()
    try:
        mpm.run(mod, pb)
    finally:
        if not mpm.closed:
            NewPassManager._dispose(mpm)  # what close() should have called
            mpm.detach()
        pb.close()
        pto.close()
