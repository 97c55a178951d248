"""The LLVM backend: a verified graph compiled, through llvmlite, to one native entry point.

    model = backends.llvm.compile_graph(graph, num_threads=2)
    y = model(x)            # one foreign call; inputs checked, outputs allocated
    print(model.llvm_ir)    # optimised LLVM IR (fp mode and target in its header)
    print(model.asm)

Lowerings register per operator (`@lowering("conv2d")`) in the modules imported below; a graph
with an operator that has none is refused at compile time.
"""

from . import (  # noqa: F401  (they register their lowerings)
    backward,
    bf16,
    conv,
    dropout,
    elementwise,
    fused,
    int8,
    linalg,
    loss,
    narrow,
    nn,
    pool,
    recurrent,
    reduce,
    shape,
    volumetric,
)
from .driver import compile_graph
from .model import CompiledModel
from .registry import LOWERINGS, lowered_ops, lowering
from .target import host_target

__all__ = ["LOWERINGS", "CompiledModel", "compile_graph", "host_target", "lowered_ops",
           "lowering"]
