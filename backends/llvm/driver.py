"""compile_graph: a verified graph -> one LLVM module with one entry point -> native code.

The entry point is

    i32 lamina_main(ptr io, ptr weights, ptr arena)

`io` holds the input pointers then the output pointers, `weights` the graph's weight arrays
then the compile-time arrays lowerings asked for (packed weights, tables), `arena` the
preallocated memory that holds every intermediate (placed by the memory plan) followed by the
scratch of whichever node is running. It calls each node's phases in graph order (serially,
or through the thread pool) and returns 0, or the code of a runtime error.

A compile first looks up the cache (cache.py) by the graph's structure and the options: a
hit skips lowering altogether and rebuilds only the weight-derived compile-time arrays
(`_restore`); a miss lowers, optimises and stores the object code with what else the build
produced (`_facts`).
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir as llir
from llvmlite.binding.context import ContextRef

import ir
from ir.errors import OptionError, OptionTypeError
from ir.tensor_type import format_bytes

# The one memory planner is an analysis over the IR that lives with the passes (`lamina dump`
# summarises the same plan); this is the backend's only import from `passes`.
from passes.plan_memory import MemoryPlan, aligned, plan_memory

from . import cache, runtime
from .builder import I8, I32, I64, PTR, VOID, KBuilder
from .codegen import WEIGHT_RECIPES, Codegen, fp_mode, optimize
from .kernel import Buf, Kernel, Phase
from .model import CompiledModel, NativeCode
from .registry import LOWERINGS, check_lowerable
from .target import Target, host_target

# Below this much work (roughly flops or bytes moved) a phase runs on the calling thread:
# waking the pool costs a few microseconds, which small kernels cannot repay.
MIN_PARALLEL_COST = 100_000
TASKS_PER_THREAD = 4  # more tasks than threads, so uneven tasks still balance


def compile_graph(graph: ir.Graph, *, num_threads: int | None = None, fast_math: bool = False,
                  target_features: str | None = None,
                  cache_dir: str | os.PathLike | None = None) -> CompiledModel:
    """Compile `graph` to native code for this CPU.

    num_threads: threads a call may use (default runtime.default_threads(); 1 runs on the calling
    thread only). Results are identical for every thread count: work is split only over
    independent outputs. fast_math: allow LLVM's fast-math flags (reassociation, no NaN/Inf
    guarantees); strict IEEE semantics otherwise. target_features: narrow the host CPU's
    features, e.g. "avx2" or "sse" (see target.py). cache_dir: also keep compiled object
    code in this directory (it is always kept in memory for the process; see cache.py)."""
    # options first, each named (a truthy fast_math="no" must not turn fast math on)
    if not isinstance(graph, ir.Graph):
        raise OptionTypeError(f"compile_graph takes an ir.Graph, got {type(graph).__name__}")
    if not isinstance(fast_math, bool):
        raise OptionTypeError(f"fast_math must be True or False, got {fast_math!r}")
    ir.verify(graph)
    check_lowerable(graph)
    for name in graph.params:
        if name not in graph.weights:
            raise ir.LaminaError(f"weight @{name} has no data")
    threads = _threads(num_threads)
    target = host_target(target_features)
    k = cache.key(str(graph), target, fast_math=fast_math, num_threads=threads)
    if threads > 1:  # load the pool (no workers yet): a cached object's calls must resolve
        runtime.ensure_workers(0)
    model = _cached(graph, k, target, cache_dir, fp_mode(fast_math), threads)
    if model is None:
        model = _build(graph, k, target, fast_math, threads, cache_dir)
    if threads > 1:
        runtime.ensure_workers(threads - 1)
    return model


@dataclass
class Built:
    """What a model needs of its build besides the code (the fields of Codegen that
    CompiledModel reads), as restored from a cache entry."""

    fp_mode: str
    num_threads: int
    extra: list[np.ndarray]
    errors: list[str]


def _build(graph: ir.Graph, k: str, target: Target, fast_math: bool, threads: int,
           cache_dir) -> CompiledModel:
    """Lower, optimise and JIT `graph`; store the result under the structure key `k` when
    no lowering read weight values outside a recipe."""
    cg = Codegen(graph.name, target, fast_math, threads)
    cg.node_index = {id(node): i for i, node in enumerate(graph.nodes)}
    plan = plan_memory(graph)
    _check_memory(graph, plan.arena_bytes)  # before lowerings build tables of these sizes
    entry = EntryBuilder(cg, graph, plan)
    entry.build()
    _out_of_line(cg)
    _check_memory(graph, entry.arena_bytes)  # scratch included, before the arena exists
    header = _header(cg, graph)
    shared = not cg.reads_weights
    code, optimized, obj = jit(header + str(cg.module), target, cache_dir,
                               use_cache=not shared)
    optimized = header + optimized
    if shared and obj is not None:
        cache.put(k, obj, optimized, cache_dir, _facts(cg, entry.arena_bytes))
    return CompiledModel(graph, code, optimized, target, cg, entry.arena_bytes)


def _out_of_line(cg: Codegen) -> None:
    """Compile each shared function once (issue 13): the micro-kernels that many phases
    call (GEMM, convolution rows, int8, bf16: every function in cg.phase_fns besides the
    phases, which are noinline already) were inlined into every caller, tripling the
    optimised code (DenseNet-121: 3.9 MB of IR instead of 1.2) and so LLVM's time, for no
    measurable speed: a tile's call costs nothing beside its K loop of FMAs, and the
    results are bitwise the same."""
    for fn in cg.phase_fns.values():
        if "noinline" not in fn.attributes:
            fn.attributes.add("noinline")


def _facts(cg: Codegen, arena_bytes: int) -> bytes:
    """The build's metadata: arena size, error table, and per compile-time array either its
    recipe (recomputed from the weights on a hit) or its data (tables that depend only on
    the structure), with the dtype and shape it must have."""
    arrays: list[np.ndarray] = []

    def stash(a: np.ndarray) -> int:
        arrays.append(a)
        return len(arrays) - 1

    extras = []
    for array, recipe in zip(cg.extra, cg.recipes):
        item = {"dtype": array.dtype.str, "shape": list(array.shape)}
        if recipe is None:
            item["data"] = stash(array)
        else:
            name, node, args = recipe
            item.update(recipe=name, node=node, args=[_encode(a, stash) for a in args])
        extras.append(item)
    doc = {"arena_bytes": arena_bytes, "errors": cg.errors, "extras": extras}
    return cache.pack_meta(doc, arrays)


def _encode(arg, stash):
    """A recipe argument as JSON: arrays by reference, tuples as lists (and back again)."""
    if isinstance(arg, np.ndarray):
        return {"array": stash(arg)}
    if isinstance(arg, tuple):
        return [_encode(a, stash) for a in arg]
    if arg is None or isinstance(arg, (bool, int, float, str)):
        return arg
    raise TypeError(f"a weight recipe argument must be a literal or an array, got {arg!r}")


def _decode(arg, arrays: list[np.ndarray]):
    if isinstance(arg, dict):
        return arrays[arg["array"]]
    if isinstance(arg, list):
        return tuple(_decode(a, arrays) for a in arg)
    return arg


def _cached(graph: ir.Graph, k: str, target: Target, cache_dir, mode: str,
            threads: int) -> CompiledModel | None:
    """The model from a cache entry, or None on a miss (no entry, or metadata that does not
    describe this graph: it is then rebuilt and overwritten)."""
    hit = cache.get(k, cache_dir)
    if hit is None or len(hit) != 3:
        return None
    obj, optimized, meta = hit
    try:
        extra, errors, arena_bytes = _restore(graph, meta)
    except Exception:  # damaged metadata: a miss (rebuilding says what is wrong, if anything)
        return None
    _check_memory(graph, arena_bytes)
    built = Built(mode, threads, extra, errors)
    return CompiledModel(graph, load(obj, target), optimized, target, built, arena_bytes)


def _restore(graph: ir.Graph, meta: bytes) -> tuple[list[np.ndarray], list[str], int]:
    """(compile-time arrays, error table, arena size) from an entry's metadata: arrays that
    depend only on the structure as stored, weight-derived ones recomputed from `graph`."""
    doc, arrays = cache.unpack_meta(meta)
    nodes = graph.nodes
    extra = []
    for item in doc["extras"]:
        if "data" in item:
            array = arrays[item["data"]]
        else:
            node = nodes[item["node"]]
            args = [_decode(a, arrays) for a in item["args"]]
            array = np.ascontiguousarray(WEIGHT_RECIPES[item["recipe"]](node, *args))
        if array.dtype.str != item["dtype"] or list(array.shape) != item["shape"]:
            raise ValueError("a compile-time array does not match the cached code")
        extra.append(array)
    errors, arena_bytes = doc["errors"], doc["arena_bytes"]
    if not (isinstance(arena_bytes, int) and arena_bytes >= 0
            and all(isinstance(e, str) for e in errors)):
        raise ValueError("damaged metadata")
    return extra, list(errors), arena_bytes


class MemoryLimitError(ir.LaminaError, MemoryError):
    """A model whose buffers cannot fit in this machine's memory, refused before any of them
    is allocated. A MemoryError too, as the failed allocation would have been."""


def machine_memory() -> int:
    """The bytes this process may hope to allocate: physical memory, or less where an
    address-space limit or a cgroup (container) limit says so. Total, not what is free right
    now, so whether a model compiles does not depend on the moment."""
    limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    for kind in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
        soft = resource.getrlimit(kind)[0]
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:  # the container's own cgroup (v2, v1) where it is mounted at the root
            with open(path) as f:
                limits.append(int(f.read()))
        except (OSError, ValueError):  # no such file, or "max": no limit
            pass
    return min(limits)


def _check_memory(graph: ir.Graph, arena_bytes: int) -> None:
    """Refuse a model that one call could not hold: its arena and outputs together, or any one
    tensor, larger than the machine's memory (the IR only bounds a tensor at 1 TiB)."""
    limit = machine_memory()
    need = arena_bytes + sum(v.type.nbytes for v in graph.outputs)
    big = max(graph.values(), key=lambda v: v.type.nbytes, default=None)
    if need <= limit and (big is None or big.type.nbytes <= limit):
        return
    op = f" ({big.node.op})" if big.node is not None else ""
    raise MemoryLimitError(
        f"@{graph.name} needs {format_bytes(need)} for one call (arena "
        f"{format_bytes(arena_bytes)}, outputs {format_bytes(need - arena_bytes)}); its largest "
        f"tensor is {big.ref}{op}: {big.type}, {format_bytes(big.type.nbytes)}; this machine "
        f"has {format_bytes(limit)} of memory")


def _threads(num_threads) -> int:
    if num_threads is None:
        return runtime.default_threads()  # affinity, cgroup quota, $LAMINA_NUM_THREADS
    limit = runtime.MAX_WORKERS + 1  # the pool's size; more would only multiply scratch
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) \
            or not 1 <= num_threads <= limit:
        raise OptionError(f"num_threads must be an integer from 1 to {limit}, got "
                          f"{num_threads!r}")
    return num_threads


def _header(cg: Codegen, graph: ir.Graph) -> str:
    flags = "fast-math flags on float ops" if cg.fast_math else "IEEE, no fast-math flags"
    return (f"; Lamina LLVM backend: graph @{graph.name}\n"
            f"; fp_mode = {cg.fp_mode} ({flags})\n"
            f"; target = {cg.target.describe()}, num_threads = {cg.num_threads}\n")


def jit(text: str, target: Target, cache_dir=None, use_cache: bool = True):
    """Parse, verify, optimise (new pass manager, O3) and JIT a module; returns the native
    code (engine and context), the optimised IR text and the object code (None when it came
    from the cache). With use_cache, object code is cached by the module's text
    (cache.text_key): a hit skips optimisation and codegen."""
    k = cache.text_key(text, target) if use_cache else None
    hit = cache.get(k, cache_dir) if use_cache else None
    # a context per model, freed with it: the global one would keep every model's types
    # and constants for the life of the process
    code = NativeCode(model_context())
    mod = llvm.parse_assembly(text, code.context)
    compiled: list[bytes] = []
    try:
        mod.verify()
        if hit is None:
            optimize(mod, target.machine, speed_level=3, loop_vectorization=True,
                     slp_vectorization=True, loop_unrolling=True)
        optimized = hit[1] if hit else str(mod)
        code.engine = llvm.create_mcjit_compiler(mod, target.new_machine())  # owns mod
        code.engine.set_object_cache(lambda m, obj: compiled.append(obj),
                                     lambda m: hit[0] if hit else None)
        code.engine.finalize_object()
    except BaseException:
        mod.close()  # before its context (a no-op once the engine owns it)
        code.close()
        raise
    obj = compiled[0] if hit is None and compiled else None
    if use_cache and obj is not None:
        cache.put(k, obj, optimized, cache_dir)
    return code, optimized, obj


def load(obj: bytes, target: Target) -> NativeCode:
    """Native code from cached object code, with no LLVM IR at all: MCJIT is given an empty
    module and takes the object from its object cache (checked loadable by cache.get)."""
    code = NativeCode(model_context())
    mod = llvm.parse_assembly("", code.context)
    try:
        mod.triple = llvm.get_process_triple()
        code.engine = llvm.create_mcjit_compiler(mod, target.new_machine())  # owns mod
        code.engine.set_object_cache(lambda m, o: None, lambda m: obj)
        code.engine.finalize_object()
    except BaseException:
        mod.close()
        code.close()
        raise
    return code


class ModelContext(ContextRef):
    """A model's LLVM context, disposed only by NativeCode.close, after the engine whose
    module lives in it. A plain ContextRef also disposes itself when collected: when a model
    is dropped inside a reference cycle the collector finalises the cycle's objects in any
    order, and the engine disposed after its context read freed memory (a segfault)."""

    def __del__(self):
        pass


def model_context() -> ModelContext:
    context = llvm.create_context()
    owned = ModelContext(context._ptr)
    context.detach()  # the pointer now belongs to `owned` alone
    return owned


class EntryBuilder:
    """Builds lamina_main: storage for every value, then each node's phases in order."""

    def __init__(self, cg: Codegen, graph: ir.Graph, plan: MemoryPlan):
        self.cg, self.graph, self.plan = cg, graph, plan
        self.fn = llir.Function(cg.module, llir.FunctionType(I32, [PTR, PTR, PTR]),
                                "lamina_main")
        self.io, self.weights, self.arena = self.fn.args
        self.b = KBuilder(self.fn.append_basic_block("entry"))
        self.scratch_base = aligned(plan.arena_bytes)
        self.arena_bytes = self.scratch_base
        self.where: dict[int, tuple] = {}
        self._loaded: dict[tuple, llir.Value] = {}
        self._tramps: dict[str, llir.Function] = {}
        self._place_values()

    def _place_values(self) -> None:
        g = self.graph
        for i, v in enumerate(g.inputs):
            self.where[id(v)] = ("io", i)
        names = list(g.params)
        self.cg.n_weights = len(names)
        for j, name in enumerate(names):
            self.where[id(g.params[name])] = ("weight", j)
        for k, v in enumerate(g.outputs):
            if v.kind == "node" and id(v) not in self.where:
                self.where[id(v)] = ("io", len(g.inputs) + k)
        for node in g.nodes:
            for v in node.outputs:
                if id(v) not in self.where:
                    self.where[id(v)] = ("arena", self.plan.offsets[v.name])

    def pointer(self, where: tuple) -> llir.Value:
        kind, x = where
        if kind == "arena":
            return self.b.gep(self.arena, [self.b.i64(x)], inbounds=True, source_etype=I8)
        key = (kind, x)
        if key not in self._loaded:
            table = self.io if kind == "io" else self.weights
            with self.b.goto_entry_block():
                slot = self.b.gep(table, [self.b.i64(x)], source_etype=PTR)
                self._loaded[key] = self.b.load(slot, typ=PTR, name=f"{kind}{x}")
        return self._loaded[key]

    def build(self) -> None:
        for node in self.graph.nodes:
            ins = [Buf(v.name, v.type, self.where[id(v)]) for v in node.inputs]
            outs = [Buf(v.name, v.type, self.where[id(v)]) for v in node.outputs]
            k = Kernel(self.cg, node, ins, outs)
            LOWERINGS[node.op](k)
            self._place_scratch(k)
            for ph in k.phases:
                self.call_phase(ph)
        self._copy_outputs()
        self.b.ret(llir.Constant(I32, 0))

    def _place_scratch(self, k: Kernel) -> None:
        offset = self.scratch_base
        for buf in k.scratch:
            buf.where = ("arena", offset)
            offset = aligned(offset + buf.type.nbytes)
        self.arena_bytes = max(self.arena_bytes, offset)

    def call_phase(self, ph: Phase) -> None:
        b = self.b
        ptrs = [self.pointer(buf.where) for buf in ph.bufs]
        threads = self.cg.num_threads
        if (threads > 1 and ph.parallel and ph.n_items >= 2
                and ph.cost >= MIN_PARALLEL_COST):
            ntasks = min(ph.n_items, threads * TASKS_PER_THREAD)
            ctx = self._context(ph, ptrs, ntasks)
            pfor = runtime.declare_parallel_for(self.cg.module)
            b.call(pfor, [self._trampoline(ph), ctx, b.i64(ntasks), b.i64(threads)])
            return
        rc = b.call(ph.fn, [*ptrs, b.i64(0), b.i64(ph.n_items), b.i64(0)])
        if ph.error:
            failed = b.icmp_signed("!=", rc, llir.Constant(I32, 0))
            with b.if_then(failed, likely=False):
                b.ret(llir.Constant(I32, ph.error))

    def _context(self, ph: Phase, ptrs, ntasks: int) -> llir.Value:
        """The task context: buffer pointers, then n_items and ntasks, one 8-byte slot each."""
        b = self.b
        with b.goto_entry_block():
            ctx = b.alloca(I64, size=len(ptrs) + 2)
        words = [b.ptrtoint(p, I64) for p in ptrs] + [b.i64(ph.n_items), b.i64(ntasks)]
        for i, word in enumerate(words):
            b.store(word, b.gep(ctx, [b.i64(i)], source_etype=I64))
        return ctx

    def _trampoline(self, ph: Phase) -> llir.Function:
        """void tramp(ptr ctx, i64 task, i64 worker): items [task*n/T, (task+1)*n/T)."""
        name = ph.fn.name + ".task"
        if name in self._tramps:
            return self._tramps[name]
        fn = llir.Function(self.cg.module, llir.FunctionType(VOID, [PTR, I64, I64]), name)
        fn.linkage = "internal"
        ctx, task, worker = fn.args
        b = KBuilder(fn.append_basic_block("entry"))
        nb = len(ph.bufs)
        slots = [b.gep(ctx, [b.i64(i)], source_etype=I64) for i in range(nb + 2)]
        ptrs = [b.inttoptr(b.load(s, typ=I64), PTR) for s in slots[:nb]]
        n, ntasks = b.load(slots[nb], typ=I64), b.load(slots[nb + 1], typ=I64)
        lo = b.sdiv(b.mul(task, n), ntasks)
        hi = b.sdiv(b.mul(b.add(task, b.i64(1)), n), ntasks)
        b.call(ph.fn, [*ptrs, lo, hi, worker])
        b.ret_void()
        self._tramps[name] = fn
        return fn

    def _copy_outputs(self) -> None:
        """Outputs not written in place (an input, a weight, a repeated value) are copied."""
        g = self.graph
        for k, v in enumerate(g.outputs):
            dst = ("io", len(g.inputs) + k)
            src = self.where[id(v)]
            if src != dst and v.type.nbytes:
                self.b.intrinsic("memcpy", [self.pointer(dst), self.pointer(src),
                                            self.b.i64(v.type.nbytes),
                                            llir.Constant(llir.IntType(1), 0)],
                                 ret=VOID, overload=[PTR, PTR, I64])
