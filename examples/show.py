"""What every example does after tracing: compile at O3, run, compare with the reference."""

import numpy as np

import compiler
import ir


def compile_and_check(model, graph: ir.Graph, *inputs):
    """Compile natively (LLVM) and check against the unoptimised reference interpreter.

    Where the LLVM backend cannot lower some operator yet it says so, and the example goes
    on with the reference backend: that choice is printed, never silent."""
    try:
        fn = compiler.compile(model, *inputs, opt_level=3, backend="llvm")
    except ir.LaminaError as e:
        print(f"\n(llvm backend refused: {e})")
        fn = compiler.compile(model, *inputs, opt_level=3, backend="reference")
    backend = getattr(fn, "backend", "llvm")
    print(f"\n== optimised IR (opt_level=3, backend={backend}) ==")
    print(fn.graph)
    y = fn(*inputs)
    ref = compiler.compile(graph, *inputs, opt_level=0, backend="reference")(*inputs)
    err = np.abs(y - ref).max() / np.abs(ref).max()
    print(f"\noutput {ir.TensorType.of(y)}:\n{np.round(y, 4)}")
    print(f"max relative difference vs the unoptimised reference interpreter: {err:.2e}")
    assert err < 1e-4, "the compiled model disagrees with the reference"
    return fn
