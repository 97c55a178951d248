"""The standard pipelines, as data: optimisation level -> pass names, in order.

O0 runs nothing (the graph is only copied and verified). O1 removes what inference does not
need without changing any number. O2 adds batch-norm folding (approximate, see its
contract), conv/linear epilogue fusion, and first the folding of quantize/dequantize pairs
into integer operators (approximate: within one quantization step). O3 also fuses
elementwise regions.
"""

from __future__ import annotations

import ir

from .manager import get

_CLEANUP = ["eliminate_dropout", "eliminate_identities", "fold_constants",
            "eliminate_common_subexpressions", "eliminate_dead_code"]

PIPELINES: dict[str, list[str]] = {
    "O0": [],
    "O1": _CLEANUP,
    # fold_quantized first: fold_constants would turn a quantized weight's dequantize
    # back into a float weight
    "O2": ["fold_quantized", *_CLEANUP, "fold_batch_norm", "fuse_conv_activation",
           "fuse_linear_activation", "eliminate_dead_code"],
    "O3": ["fold_quantized", *_CLEANUP, "fold_batch_norm", "fuse_conv_activation",
           "fuse_linear_activation", "fuse_elementwise", "eliminate_dead_code"],
}


def pipeline(level: int | str) -> list[str]:
    """The pass names of opt level `level` (0..3, or "O0".."O3")."""
    key = f"O{level}" if isinstance(level, int) and not isinstance(level, bool) else level
    if key not in PIPELINES:
        raise ir.LaminaError(f"unknown opt level {level!r}; known: {', '.join(PIPELINES)}")
    names = list(PIPELINES[key])
    for name in names:
        get(name)  # a typo in the table fails loudly here
    return names
