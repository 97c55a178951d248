"""Graph-to-graph optimisation passes, a pass manager, pipelines O0..O3, a memory planner.

    optimized = passes.optimize(graph, opt_level=3, verify=True, print_after_changed=True)
    pm = passes.PassManager(["eliminate_dropout", "fold_batch_norm"], verify=True)
    optimized = pm.run(graph); print(pm.stats)
    plan = passes.plan_memory(optimized)

Each pass lives in its own module, named verb-noun, whose docstring shows its rewrite.
"""

from __future__ import annotations

import ir

from . import (  # noqa: F401  (importing a pass module registers the pass)
    eliminate_common_subexpressions,
    eliminate_dead_code,
    eliminate_dropout,
    eliminate_identities,
    fold_batch_norm,
    fold_constants,
    fold_quantized,
    fuse_conv_activation,
    fuse_elementwise,
    fuse_linear_activation,
)
from .manager import (
    EXACT,
    Contract,
    Pass,
    PassError,
    PassManager,
    Stats,
    approximate,
    get,
    graph_pass,
    names,
)
from .pipelines import PIPELINES, pipeline
from .plan_memory import MemoryPlan, plan_memory

__all__ = [
    "EXACT", "PIPELINES", "Contract", "MemoryPlan", "Pass", "PassError", "PassManager",
    "Stats", "approximate", "get", "graph_pass", "names", "optimize", "pipeline",
    "plan_memory",
]


def optimize(graph: ir.Graph, opt_level: int | str = 2, passes=None,
             **instrumentation) -> ir.Graph:
    """An optimised, verified copy of `graph` (the caller's graph is never changed).

    `passes` (pass names or Pass objects) replaces the opt-level pipeline. Instrumentation
    keywords go to PassManager: verify, print_after_all, print_after_changed, print_stats,
    stream."""
    if isinstance(passes, str):
        passes = [passes]
    chosen = pipeline(opt_level) if passes is None else list(passes)
    try:
        manager = PassManager(chosen, **instrumentation)
    except TypeError as e:
        raise ir.LaminaError(f"optimize: {e}; options are verify, print_after_all, "
                             "print_after_changed, print_stats, stream") from None
    out = manager.run(graph)
    ir.verify(out)
    return out
