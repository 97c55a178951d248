"""What `lamina compile MODEL -o DIR` writes, from an optimised graph and its compiled model.

Always: `model.ir` (the optimised IR text), `model.npz` (the optimised graph with its weights,
itself a valid MODEL for every verb) and `passes.txt` (time and rewrites per pass). With the
LLVM backend, also `model.ll` (optimised LLVM IR), `model.s` (assembly), `model.o` (a
position-independent object file), `model.weights.bin` (the weights, 64-byte aligned),
`model.h` (a C header declaring the entry point, describing its arguments and saying how to
build) and, when a C compiler is on PATH, `model.so` (a shared library built from the object).
With `shared=True` (`--shared`), also `libmodel.so`: the model behind the small C API of
c_api.h (create / run / destroy, the signature, error codes), its weights built in, which
`model.h` then declares and documents (compiler/tools/c_api.py builds it).

The object links on its own: a model compiled for several threads has Lamina's thread pool
linked into it, so `cc main.c model.o -lpthread -lm` is the whole build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import ir
from backends import artifact

from . import c_api

ALIGN = 64


def write(directory: str | Path, graph: ir.Graph, model, stats: str, name: str = "model",
          shared: bool = False) -> tuple[list[Path], list[str]]:
    """Write the artefacts (and lib{name}.so with the C API when `shared`); returns (paths
    written, notes about what could not be)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    written, notes = [], []

    def put(filename: str, data: str | bytes) -> None:
        path = d / filename
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
        written.append(path)

    put(f"{name}.ir", f"{graph}\n")
    ir.save(graph, d / f"{name}.npz")
    written.append(d / f"{name}.npz")
    put("passes.txt", stats + "\n")
    llvm_ir = getattr(model, "llvm_ir", None)
    if llvm_ir is None:
        notes.append(f"backend {getattr(model, 'backend', '?')} makes no native code: wrote "
                     "the optimised IR only (use --backend llvm for LLVM IR, assembly and an "
                     "object file)")
        return written, notes
    put(f"{name}.ll", llvm_ir)
    asm = getattr(model, "asm", None)
    if asm is not None:
        put(f"{name}.s", asm)
    obj = _object_code(model, notes)
    if obj is None:
        return written, notes
    put(f"{name}.o", obj)
    offsets, blob = _weights_blob(graph, _constant_arrays(model, graph))
    put(f"{name}.weights.bin", blob)
    put(f"{name}.h", header(graph, model, offsets, name, shared))
    if artifact.c_compiler() is None:
        notes.append("no C compiler on PATH: wrote the object file, not a shared library")
        return written, notes
    so = d / f"{name}.so"
    failed = artifact.link_shared(d / f"{name}.o", so, _has_pool(model))
    if failed:
        notes.append(failed)
    else:
        written.append(so)
    if shared:
        lib, failed = c_api.build(d, name, graph, model, offsets, blob)
        notes += [failed] if failed else []
        written += [lib] if lib else []
    return written, notes


def _object_code(model, notes: list[str]) -> bytes | None:
    """The model's object code: from the backend if it can emit one, else by compiling its
    optimised LLVM IR again for the same CPU, position-independent."""
    emit = getattr(model, "emit_object", None)
    if callable(emit):
        return emit()
    target = getattr(model, "target", None)
    if target is None or not hasattr(target, "cpu"):
        notes.append("the compiled model exposes no target: no object file written")
        return None
    import llvmlite.binding as llvm  # the backend's own dependency, needed only here

    triple = llvm.get_process_triple()
    machine = llvm.Target.from_triple(triple).create_target_machine(
        cpu=target.cpu, features=target.features, opt=3, reloc="pic", codemodel="default")
    if getattr(model, "num_threads", 1) > 1:
        notes.append(f"compiled for {model.num_threads} threads by a backend that cannot "
                     "link its thread pool into the object: it calls lamina_parallel_for; "
                     "compile with --threads 1 for a self-contained object")
    return machine.emit_object(llvm.parse_assembly(model.llvm_ir))


def _constant_arrays(model, graph: ir.Graph) -> list[np.ndarray]:
    """The compile-time arrays (packed weights, tables) the entry point reads after the
    graph's weights. `constant_arrays` if the backend exposes it; until it does, the tail of
    the array list a CompiledModel keeps alive for its code, which is in the same order."""
    arrays = getattr(model, "constant_arrays", None)
    if arrays is None:
        kept = getattr(model, "_keep", None) or []
        arrays = kept[len(graph.params):]
    return [np.ascontiguousarray(a) for a in arrays]


def _weights_blob(graph: ir.Graph, constants: list[np.ndarray],
                  ) -> tuple[list[tuple[str, int, int]], bytes]:
    """(name, offset, nbytes) per entry of the weights table (the graph's weights, then the
    compile-time arrays, named `constant.K`), and the packed bytes."""
    parts, offsets, pos = [], [], 0
    tables = [(name, np.ascontiguousarray(graph.weights[name], dtype=v.type.np_dtype))
              for name, v in graph.params.items()]
    tables += [(f"constant.{k}", a) for k, a in enumerate(constants)]
    for name, array in tables:
        data = array.tobytes()
        pad = (-pos) % ALIGN
        parts += [b"\0" * pad, data]
        pos += pad
        offsets.append((name, pos, len(data)))
        pos += len(data)
    return offsets, b"".join(parts)


_CTYPES = {"f32": "float", "f64": "double", "i32": "int32_t", "i64": "int64_t", "bool": "uint8_t"}


def libraries(model) -> list[str]:
    """What the object needs besides itself and libc: libm, and libpthread for the pool."""
    return artifact.libraries(_has_pool(model))


def _has_pool(model) -> bool:
    return bool(getattr(model, "calls_thread_pool", False))


def _threads_note(model, macro: str) -> list[str]:
    threads = getattr(model, "num_threads", "?")
    if not _has_pool(model):
        return [f" * Threads: compiled for {threads}; lamina_main runs on the calling thread."]
    text = f"""Threads: compiled for {threads} ({macro}_NUM_THREADS); the object holds Lamina's
thread pool. Call lamina_pool_grow({macro}_NUM_THREADS - 1) once before the first
lamina_main to start its workers (without it every task runs on the calling thread, with
the same results), and lamina_pool_stop() to join them (before unloading a library)."""
    return [f" * {line}" for line in text.splitlines()]


def header(graph: ir.Graph, model, offsets, name: str = "model", shared: bool = False) -> str:
    """A C header for the entry point `lamina_main(io, weights, arena)`; with `shared`, first
    the C API of lib{name}.so (c_api.h)."""
    macro = name.upper().replace("-", "_").replace(".", "_")

    def decl(v: ir.Value) -> str:
        return f"{_CTYPES[v.type.dtype]}{''.join(f'[{d}]' for d in v.shape)}"

    io = [f" *   io[{i}] = input  %{v.name}: {decl(v)}" for i, v in enumerate(graph.inputs)]
    io += [f" *   io[{len(graph.inputs) + i}] = output {i}: {decl(v)}"
           for i, v in enumerate(graph.outputs)]
    def what(n: str) -> str:
        return f"@{n}: {decl(graph.params[n])}" if n in graph.params else \
            f"{n} (a compile-time array the backend made)"

    ws = [f" *   weights[{i}] = {what(n)}, at byte {off} of {name}.weights.bin ({size} bytes)"
          for i, (n, off, size) in enumerate(offsets)]
    arena = getattr(model, "arena_bytes", 0)
    build = f"cc main.c {name}.o {' '.join(libraries(model))}"
    api = [] if not shared else [
        f" * lib{name}.so: this model behind the C API declared below (lamina_create, ...),",
        " * its weights built in; lamina_main and the rest of this comment are for linking",
        f" * {name}.o directly (lib{name}.so keeps them private).",
    ]
    lines = [
        f"/* {name}.h: generated by `lamina compile` for graph @{graph.name}.",
        *api,
        f" * Build: {build}   (or load {name}.so), then call lamina_main.",
        f" * {name}.o needs nothing else: no Lamina library, no Python.",
        *_threads_note(model, macro),
        " *",
        " * io: pointers to the inputs, then to the outputs (C-contiguous, row-major):",
        *io,
        f" * weights: pointers into {name}.weights.bin ({ALIGN}-byte aligned when the file is",
        f" * loaded at an aligned address), at {name}_weight_offsets, in this order:",
        *(ws or [" *   (no weights)"]),
        f" * arena: {ALIGN}-byte aligned memory of {macro}_ARENA_BYTES bytes.",
        " * Returns 0, or k > 0 for the k-th runtime error the backend can detect.",
        f" * fp mode: {getattr(model, 'fp_mode', '?')}.",
        " */",
        f"#ifndef LAMINA_{macro}_H",
        f"#define LAMINA_{macro}_H",
        "#include <stdint.h>",
        "",
        *([c_api.api_header(name)] if shared else []),
        f"#define {macro}_NUM_INPUTS {len(graph.inputs)}",
        f"#define {macro}_NUM_OUTPUTS {len(graph.outputs)}",
        f"#define {macro}_NUM_WEIGHTS {len(offsets)}",
        f"#define {macro}_ARENA_BYTES {arena}",
        f"#define {macro}_NUM_THREADS {getattr(model, 'num_threads', 1)}",
        "",
    ]
    if offsets:
        lines += [f"static const uint64_t {name}_weight_offsets[{len(offsets)}] = "
                  f"{{{', '.join(str(o) for _, o, _ in offsets)}}};", ""]
    lines += ["int32_t lamina_main(void **io, void *const *weights, void *arena);", ""]
    if _has_pool(model):
        lines += ["void lamina_pool_grow(int64_t workers);", "void lamina_pool_stop(void);", ""]
    lines += [f"#endif /* LAMINA_{macro}_H */", ""]
    return "\n".join(lines)
