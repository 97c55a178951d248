"""What a lowering sees: the node's buffers, and `phase()` to emit code over them.

A lowering emits one or more *phases*. A phase is an LLVM function

    i32 phase(ptr noalias buf0, ..., ptr noalias bufN, i64 lo, i64 hi, i64 worker)

that computes work items [lo, hi) of the node; items must be independent of each other
(distinct outputs), so the driver may run a phase serially over [0, n) or split it over the
thread pool, and the result never depends on the split. `worker` numbers the thread, for
per-thread scratch. A phase returns 0, or nonzero for a runtime error (an index out of
range), which the entry point turns into an error code; such phases run serially.

Phase functions are deduplicated: two nodes with the same operator, attributes and types
share their code (ResNet repeats its layers), so compile time grows with distinct layers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir as llir

from ir import Node, TensorType

from .builder import I8, I32, I64, ITEMSIZE, PTR, KBuilder, scalar_type


@dataclass(eq=False)
class Buf:
    """A buffer: its tensor type, where it lives, and its pointer inside the phase being built.

    `where` is ("io", slot), ("weight", slot) or ("arena", byte offset); scratch buffers get
    their arena offset from the driver once every lowering has said what it needs."""

    name: str
    type: TensorType
    where: tuple = ()
    ptr: llir.Value | None = None
    per_worker: int = 0  # scratch: bytes each worker owns (the buffer holds num_threads of them)

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def size(self) -> int:
        return self.type.size

    @property
    def elem(self) -> llir.Type:
        return scalar_type(self.type.dtype)

    def __repr__(self) -> str:
        return f"<Buf {self.name}: {self.type} at {self.where}>"


@dataclass
class Phase:
    fn: llir.Function
    bufs: list[Buf]
    n_items: int
    cost: float  # rough work (flops or bytes) of the whole phase, for the parallel decision
    parallel: bool
    error: int = 0  # nonzero: the error code its failure maps to


@dataclass
class Kernel:
    """The lowering context of one node."""

    cg: object  # codegen.Codegen
    node: Node
    inputs: list[Buf]
    outputs: list[Buf]
    phases: list[Phase] = field(default_factory=list)
    scratch: list[Buf] = field(default_factory=list)
    extra: list[Buf] = field(default_factory=list)

    @property
    def attrs(self) -> dict:
        return self.node.attrs

    @property
    def signature(self) -> tuple:
        """What the generated code may depend on: op, attributes, types, weight-ness."""
        n = self.node
        return (n.op, _attr_key(n.attrs), tuple(str(v.type) for v in n.inputs),
                tuple(str(v.type) for v in n.outputs),
                tuple(v.kind == "weight" for v in n.inputs),
                tuple((b.type, b.per_worker) for b in self.scratch + self.extra))

    @property
    def where(self) -> str:
        return f"node %{self.node.name} ({self.node.op})"

    def lanes(self, dtype: str) -> int:
        return self.cg.target.lanes(ITEMSIZE[dtype])

    def is_weight(self, i: int) -> bool:
        return self.node.inputs[i].kind == "weight"

    def weight_data(self, i: int) -> np.ndarray:
        """Input i's values. What is built from them could not be shared with a graph of
        other weights, so the compile cache will not skip lowering this graph: derive
        compile-time arrays from weights with `weight_constant` instead."""
        self.cg.reads_weights = True
        return self.node.graph.weights[self.node.inputs[i].name]

    # ---- extra buffers ------------------------------------------------------------------
    def new_scratch(self, dtype: str, count: int, per_worker: bool = False) -> Buf:
        """Arena space live only while this node runs (per worker: one slice per thread)."""
        nbytes = count * ITEMSIZE[dtype]
        total = nbytes * (self.cg.num_threads if per_worker else 1)
        buf = Buf(f"{self.node.name}.scratch{len(self.scratch)}", TensorType((total //
                  ITEMSIZE[dtype],), dtype), per_worker=nbytes if per_worker else 0)
        self.scratch.append(buf)
        return buf

    def constant(self, array: np.ndarray, what: str) -> Buf:
        """A compile-time array that depends on no weight value (index tables), passed to
        phases like a weight."""
        return self._add_constant(array, what, None)

    def _add_constant(self, array: np.ndarray, what: str, recipe: tuple | None) -> Buf:
        array = np.ascontiguousarray(array)
        slot = self.cg.add_extra(array, recipe)
        buf = Buf(f"{self.node.name}.{what}", TensorType.of(array), ("weight", slot))
        self.extra.append(buf)
        return buf

    def weight_constant(self, what: str, recipe: Callable, *args) -> Buf:
        """A compile-time array computed from weight values by `recipe(node, *args)`, a
        function registered with codegen.weight_recipe, so a compile-cache hit can compute it
        again from another graph's weights. `args`: ints, floats, strings, tuples, arrays."""
        array, how = self.cg.from_recipe(self.node, recipe, args)
        return self._add_constant(array, what, how)

    def worker_ptr(self, b: KBuilder, buf: Buf, worker) -> llir.Value:
        """This worker's slice of a per-worker scratch buffer."""
        return b.gep(buf.ptr, [b.mul(worker, b.i64(buf.per_worker))], source_etype=I8)

    # ---- phases -------------------------------------------------------------------------
    def phase(self, n_items: int, body: Callable, *, bufs=None, cost: float | None = None,
              parallel: bool = True, error: str | None = None, which=None) -> None:
        """Emit `body(b, lo, hi, worker)` as a phase over `n_items` work items.

        `bufs` defaults to inputs, outputs, scratch and constants, in that order. `error`
        is the message of a failure the body reports by returning a nonzero i32. `which`
        tells the node's phases apart where some may be left out (concat skips the inputs
        already in place); by default a phase is known by its position."""
        bufs = list(bufs) if bufs is not None else [
            *self.inputs, *self.outputs, *self.scratch, *self.extra]
        key = (self.signature, len(self.phases) if which is None else ("which", which),
               len(bufs))
        fn = self.cg.phase_fns.get(key)
        if fn is None:
            fn = self._build(bufs, body)
            self.cg.phase_fns[key] = fn
        code = self.cg.add_error(f"{self.where}: {error}") if error else 0
        self.phases.append(Phase(fn, bufs, max(int(n_items), 0),
                                 float(cost if cost is not None else n_items),
                                 parallel and not error, code))

    def _build(self, bufs: list[Buf], body: Callable) -> llir.Function:
        name = self.cg.unique(self.node.op)
        fnty = llir.FunctionType(I32, [PTR] * len(bufs) + [I64, I64, I64])
        fn = llir.Function(self.cg.module, fnty, name)
        fn.linkage = "internal"
        # kept out of lamina_main: each kernel stays readable (kernel_ir) and the entry small
        fn.attributes.add("noinline")
        for arg in fn.args[: len(bufs)]:
            arg.add_attribute("noalias")
        b = KBuilder(fn.append_basic_block("entry"), self.cg.fmf)
        for buf, arg in zip(bufs, fn.args):
            buf.ptr = arg
        lo, hi, worker = fn.args[len(bufs):]
        lo.name, hi.name, worker.name = "lo", "hi", "worker"
        rc = body(b, lo, hi, worker)
        b.ret(rc if rc is not None else llir.Constant(I32, 0))
        return fn


def _attr_key(attrs: dict) -> tuple:
    return tuple((k, str(v)) for k, v in sorted(attrs.items()))


__all__ = ["I64", "Buf", "Kernel", "Phase"]
