"""Lowerings: one function per operator that emits the LLVM code computing it.

`@lowering("conv2d")` registers a function `(k: Kernel) -> None` that reads the node's
buffers and attributes from `k` and emits one or more phases (see kernel.py). The operator
registry in `ir/` stays free of llvmlite; this table is the backend's own.
"""

from __future__ import annotations

from collections.abc import Callable

from ir import Graph, LaminaError

LOWERINGS: dict[str, Callable] = {}


def lowering(*ops: str):
    """Register the decorated function as the lowering of each operator in `ops`."""
    def deco(fn):
        for op in ops:
            if op in LOWERINGS:
                raise ValueError(f"operator {op} has two LLVM lowerings")
            LOWERINGS[op] = fn
        return fn

    return deco


def lowered_ops() -> list[str]:
    return sorted(LOWERINGS)


# Lowerings written for unsigned bytes (u8 is an LLVM i8, so a lowering that assumes signed
# integers would compare, extend or convert it wrongly): the quantized kernels, conversion,
# and data movement, which never looks at the values.
U8_LOWERINGS = frozenset({"quantize", "dequantize", "qlinear", "qconv2d", "qmatmul", "qadd",
                          "qmax_pool2d", "cast", "reshape", "flatten", "transpose", "concat",
                          "slice", "split"})


def check_lowerable(graph: Graph) -> None:
    """Refuse, naming it, the first node whose operator has no lowering (no numpy fallback),
    or whose lowering does not handle the unsigned bytes it is given."""
    for node in graph.nodes:
        if node.op not in LOWERINGS:
            raise LaminaError(
                f"node %{node.name} ({node.op}): the LLVM backend has no lowering for "
                f"operator '{node.op}'; compile with backend='reference' to interpret it")
        if node.op not in U8_LOWERINGS and any(
                v.type.dtype == "u8" for v in [*node.inputs, *node.outputs]):
            raise LaminaError(
                f"node %{node.name} ({node.op}): the LLVM backend computes u8 tensors only in "
                f"{', '.join(sorted(U8_LOWERINGS))}; cast to i32 first")
