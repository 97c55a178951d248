"""Module-wide state of one compilation: the LLVM module, the target, the FP mode, and the
tables the driver reads back (compile-time arrays, error messages); the registry of weight
recipes; and `optimize`, the one place LLVM's optimisation pipeline is run.

Compile-time arrays come in two kinds. A table that depends only on shapes and attributes
(im2col row offsets, gather indices) is plain data: the compile cache stores it beside the
code. An array computed from weight *values* (packed weights) must be recomputed for every
graph that shares the code, so a lowering makes it through a *recipe*: a function
`recipe(node, *args) -> array` registered with `@weight_recipe`, called with the node and
literal arguments (ints, strings, tuples, arrays) that the cache can store and replay on a
hit (Kernel.weight_constant). A lowering that reads weight values any other way
(Kernel.weight_data) makes its compilation unshareable: the cache then keys it by its LLVM
text only, so it is lowered on every compile (see cache.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir as llir
from llvmlite.binding.newpassmanagers import NewPassManager

from .target import Target

WEIGHT_RECIPES: dict[str, Callable[..., np.ndarray]] = {}


def weight_recipe(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Register `fn(node, *args) -> array`, a compile-time array computed from the weights of
    `node` (see the module docstring). It must read weight values only through `node`'s
    graph and depend on nothing else but its arguments."""
    WEIGHT_RECIPES[f"{fn.__module__}.{fn.__qualname__}"] = fn
    return fn


def fp_mode(fast_math: bool) -> str:
    return "fast" if fast_math else "strict"


class Codegen:
    def __init__(self, name: str, target: Target, fast_math: bool, num_threads: int):
        self.module = llir.Module(name=name)
        self.module.triple = llvm.get_process_triple()
        self.module.data_layout = str(target.machine.target_data)
        self.target = target
        self.fast_math = fast_math
        self.fp_mode = fp_mode(fast_math)
        self.fmf: tuple[str, ...] = ("fast",) if fast_math else ()
        self.num_threads = num_threads
        self.phase_fns: dict[tuple, llir.Function] = {}
        self.extra: list[np.ndarray] = []  # compile-time arrays, passed after the weights
        # per compile-time array: None (plain data) or (recipe name, node index, args)
        self.recipes: list[tuple | None] = []
        self.node_index: dict[int, int] = {}  # id(node) -> its position in the graph
        self.reads_weights = False  # a lowering read weight values outside a recipe
        self.n_weights = 0  # graph weights come first in the weights table
        self.errors: list[str] = []  # runtime error code k is errors[k - 1]
        self._names = itertools.count()
        self.module.add_named_metadata("lamina.fp_mode", [llir.MetaDataString(
            self.module, self.fp_mode)])

    def lanes(self, itemsize: int) -> int:
        return self.target.lanes(itemsize)

    def unique(self, base: str) -> str:
        return f"{base}.{next(self._names)}"

    def add_extra(self, array: np.ndarray, recipe: tuple | None = None) -> int:
        """Register a compile-time array (made by `recipe`, or plain data); returns its slot
        in the weights table."""
        self.extra.append(array)
        self.recipes.append(recipe)
        return self.n_weights + len(self.extra) - 1

    def from_recipe(self, node, recipe: Callable[..., np.ndarray], args: tuple
                    ) -> tuple[np.ndarray, tuple | None]:
        """(recipe(node, *args), how to make it again: None where the node is not one of the
        compiled graph's, e.g. a node of a lowering's own expansion; the compilation then
        cannot be shared)."""
        name = f"{recipe.__module__}.{recipe.__qualname__}"
        if WEIGHT_RECIPES.get(name) is not recipe:
            raise TypeError(f"{name} is not registered with @weight_recipe")
        at = self.node_index.get(id(node))
        if at is None:
            self.reads_weights = True
        return recipe(node, *args), None if at is None else (name, at, args)

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
