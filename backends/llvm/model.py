"""CompiledModel: the callable a compilation returns.

It owns the execution engine (so the code stays alive), the weight arrays and compile-time
arrays its pointers refer to, and the arena. A call checks the inputs, makes them
contiguous, allocates the outputs and makes one foreign call into `lamina_main`.
Concurrent calls each take an arena of their own from a pool (artifact.NativeCall).
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np

import ir
from backends import artifact

from . import runtime

_ENTRY = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


class NativeCode:
    """A model's MCJIT engine and the LLVM context its module lives in (one context per
    model, so nothing of it outlives the model). Freed together, engine first: the engine
    owns the module, and the module must go before its context."""

    def __init__(self, context: llvm.ContextRef):
        self.context = context
        self.engine: llvm.ExecutionEngine | None = None

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
        self.context.close()

    def __del__(self):
        if not sys.is_finalizing():  # as llvmlite's own objects, leave the rest to exit
            self.close()


class CompiledModel(artifact.NativeCall):
    """A graph compiled to native code. Call it with numpy arrays; it returns an array, or a
    tuple of arrays for several outputs.

    Attributes: graph (what runs), llvm_ir (the optimised module text, with the FP mode and
    target in its header), asm (the assembly, produced on first access), fp_mode ("strict"
    or "fast"), num_threads, arena_bytes, target, max_concurrent_calls (settable).

    Inputs must match the graph's types exactly (InputError otherwise): anything else is
    passed through np.asarray first, so a list of Python floats arrives as f64 and an f32
    model refuses it; non-contiguous or misaligned arrays are copied, read-only ones are
    read in place. Outputs are new arrays on every call, so they never alias an input.
    Thread safety: calls may come from many threads at once, and run at once: each takes
    an arena of its own from the model's pool (at most `max_concurrent_calls` arenas;
    further callers wait for one). The shared thread pool takes one parallel loop at a
    time; a caller that finds it busy runs its loop's tasks on its own thread."""

    backend = "llvm"

    def __init__(self, graph: ir.Graph, code: NativeCode, llvm_ir: str, target, cg,
                 arena_bytes: int):
        self.graph = graph
        self.llvm_ir = llvm_ir
        self.target = target
        self.fp_mode = cg.fp_mode
        self.num_threads = cg.num_threads
        self.arena_bytes = arena_bytes
        self._code = code  # freed with the model
        entry = code.engine.get_function_address("lamina_main")
        if not entry:  # calling it would jump to address 0
            raise ir.LaminaError("the compiled code has no entry point lamina_main")
        weights = [np.ascontiguousarray(graph.weights[name], dtype=v.type.np_dtype)
                   for name, v in graph.params.items()]
        self._bind(graph, _ENTRY(entry), weights + list(cg.extra), arena_bytes, cg.errors)
        self._asm: str | None = None

    def run_raw(self, addresses, arena: int | None = None) -> int:
        """Run the entry point on raw addresses with no checks and no copies: the inputs',
        then the outputs' (the caller vouches for their sizes and dtypes), and optionally an
        arena of `arena_bytes` bytes, 64-byte aligned, in place of one from the pool. Returns
        the entry's status (0: success). For tests that place buffers between guard pages."""
        n = self._n_in + len(self._out_types)
        if len(addresses) != n:
            raise ir.InputError(f"run_raw takes {n} addresses (inputs, then outputs), got "
                                f"{len(addresses)}")
        io = (ctypes.c_void_p * max(1, n))(*addresses)
        if arena is not None:
            return self._fn(io, self._weights, arena)
        own = self._take()
        try:
            return self._fn(io, self._weights, own.address)
        finally:
            self._free.put(own)

    @property
    def asm(self) -> str:
        """Assembly of the whole module (generated again from the optimised IR)."""
        if self._asm is None:
            header = "".join(line.replace(";", "#", 1) + "\n" for line in
                             self.llvm_ir.splitlines()[:3])
            with _parsed(self.llvm_ir) as (mod, _):
                self._asm = header + self.target.machine.emit_assembly(mod)
        return self._asm

    @property
    def constant_arrays(self) -> list[np.ndarray]:
        """The compile-time arrays (packed weights, index tables) the entry point reads from
        its weights table after the graph's own weights, in order."""
        return self._keep[len(self.graph.params):]

    def emit_object(self) -> bytes:
        """A position-independent ELF object of the optimised module, for use without the
        JIT (compiler/tools/aot.py writes the C header that describes lamina_main). A model
        compiled for several threads calls the thread pool, so the pool's code is linked
        into the same object: it needs only libc, libm and libpthread to link."""
        target = llvm.Target.from_triple(llvm.get_process_triple())
        machine = target.create_target_machine(cpu=self.target.cpu,
                                               features=self.target.features, opt=3,
                                               reloc="pic", codemodel="default")
        with _parsed(self.llvm_ir) as (mod, context):
            if self.calls_thread_pool:
                runtime.link_into(mod, context, machine)
            return machine.emit_object(mod)

    def save(self, path) -> Path:
        """Write this model to one `.lamina` file (see backends/artifact.py): the optimised
        graph, its weights, the compile-time arrays, the native code as a shared library
        (linked with the system C compiler) and metadata. compiler.load runs it in any
        process on a CPU with these features, without LLVM. Returns the path."""
        meta = {"llvm_version": ".".join(map(str, llvm.llvm_version_info)),
                "target": {"cpu": self.target.cpu, "features": self.target.features,
                           "vector_bytes": self.target.vector_bytes},
                "fp_mode": self.fp_mode, "num_threads": self.num_threads,
                "arena_bytes": self.arena_bytes, "errors": self._errors,
                "uses_pool": self.calls_thread_pool,
                "pass_pipeline": getattr(self, "pass_pipeline", None)}
        return artifact.write(path, graph=self.graph, object_code=self.emit_object(),
                              constants=self.constant_arrays, meta=meta)

    @property
    def calls_thread_pool(self) -> bool:
        """Whether the code calls the thread pool (some phase runs in parallel)."""
        return f"@{runtime.PFOR_NAME}(" in self.llvm_ir

    def kernel_names(self) -> list[str]:
        """Names of the generated functions (phases are named after their operator)."""
        return [line.split("@")[1].split("(")[0].strip('"') for line in
                self.llvm_ir.splitlines() if line.startswith("define ")]

    def kernel_ir(self, name: str) -> str:
        """The optimised IR of one function of the module."""
        lines, keep = [], False
        for line in self.llvm_ir.splitlines():
            if line.startswith("define ") and (f'@"{name}"(' in line or f"@{name}(" in line):
                keep = True
            if keep:
                lines.append(line)
                if line == "}":
                    break
        if not lines:
            raise ir.LaminaError(f"no function {name!r}; see kernel_names()")
        return "\n".join(lines)

    def kernel_asm(self, name: str) -> str:
        """The assembly of one function of the module."""
        lines, keep = [], False
        for line in self.asm.splitlines():
            if line.startswith((f"{name}:", f'"{name}":')):
                keep = True
            if keep:
                lines.append(line)
                if line.startswith(".Lfunc_end"):
                    break
        if not lines:
            raise ir.LaminaError(f"no function {name!r}; see kernel_names()")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"<compiled @{self.graph.name} on llvm: {self.target.describe()}, "
                f"{self.fp_mode} fp, {self.num_threads} thread(s)>")


@contextlib.contextmanager
def _parsed(text: str):
    """(module, its context) parsed from `text` in a fresh context, both freed on exit."""
    context = llvm.create_context()
    try:
        mod = llvm.parse_assembly(text, context)
        try:
            yield mod, context
        finally:
            mod.close()
    finally:
        context.close()

