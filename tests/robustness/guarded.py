"""Running generated kernels on buffers fenced by inaccessible pages.

Every input, output and the arena get pages of their own (mmap), with a PROT_NONE page on
each side; the buffer sits flush against one guard (its end, or in a second run its start),
and the rest of its pages hold a canary pattern. Inputs are then made read-only. A kernel
that reads or writes past either end of a buffer, or writes an input, faults (so these run
in a child process); one that writes into the slack of an output's or the arena's pages
breaks the canary. `CompiledModel.run_raw` calls the entry point on these addresses.
"""

from __future__ import annotations

import ctypes
import mmap

import numpy as np

from backends import llvm, reference
from ir import Graph, TensorType

PAGE = mmap.PAGESIZE
PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
CANARY = 0xA5

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def _check(rc: int, what: str) -> None:
    if rc != 0:
        raise OSError(ctypes.get_errno(), what)


class Fenced:
    """`nbytes` bytes between two PROT_NONE pages, flush against the far one (`at_end`) or
    the near one; the slack of its pages is filled with CANARY."""

    def __init__(self, nbytes: int, at_end: bool):
        self.nbytes = nbytes
        self.span = max(1, -(-nbytes // PAGE)) * PAGE
        base = _libc.mmap(None, self.span + 2 * PAGE, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if base is None or base == ctypes.c_void_p(-1).value:
            raise OSError(ctypes.get_errno(), "mmap")
        self.base, self.lo = base, base + PAGE
        self.addr = self.lo + self.span - nbytes if at_end else self.lo
        self.pages = np.frombuffer((ctypes.c_uint8 * self.span).from_address(self.lo), np.uint8)
        self.pages[:] = CANARY
        _check(_libc.mprotect(base, PAGE, PROT_NONE), "mprotect")
        _check(_libc.mprotect(self.lo + self.span, PAGE, PROT_NONE), "mprotect")

    def view(self, shape, dtype) -> np.ndarray:
        start = self.addr - self.lo
        return self.pages[start:start + self.nbytes].view(dtype).reshape(shape)

    def read_only(self) -> None:
        _check(_libc.mprotect(self.lo, self.span, PROT_READ), "mprotect")

    def slack_intact(self) -> bool:
        start = self.addr - self.lo
        return bool((self.pages[:start] == CANARY).all()
                    and (self.pages[start + self.nbytes:] == CANARY).all())

    def close(self) -> None:
        self.pages = None
        _check(_libc.munmap(self.base, self.span + 2 * PAGE), "munmap")


def run_fenced(model, inputs, at_end: bool, short: int = 0) -> list[np.ndarray]:
    """Call `model` through run_raw with every buffer fenced; check the canaries; return
    copies of the outputs. `short` makes the output fences that many bytes too small (to
    check that the fences work)."""
    fences, views = [], []
    try:
        for a in inputs:
            f = Fenced(a.nbytes, at_end)
            f.view(a.shape, a.dtype)[...] = a
            f.read_only()
            fences.append(f)
        for v in model.graph.outputs:
            f = Fenced(v.type.nbytes - short, at_end)
            fences.append(f)
            views.append(f.view(-1, np.uint8))
        arena = Fenced(model.arena_bytes, at_end)
        fences.append(arena)
        rc = model.run_raw([f.addr for f in fences[:-1]], arena=arena.addr)
        assert rc == 0, f"the entry returned {rc}"
        for i, f in enumerate(fences[len(inputs):]):
            assert f.slack_intact(), f"wrote outside {'the arena' if f is arena else i}"
        return [v.view(o.type.np_dtype).reshape(o.shape).copy()
                for v, o in zip(views, model.graph.outputs)]
    finally:
        for f in fences:
            f.close()


def check_model(g: Graph, inputs, threads: int = 1, what: str = "") -> None:
    model = llvm.compile_graph(g, num_threads=threads)
    want = reference.run(g, *inputs)
    normal = model(*inputs)
    normal = list(normal) if isinstance(normal, tuple) else [normal]
    for at_end in (True, False):
        got = run_fenced(model, inputs, at_end)
        for i, (a, b, c) in enumerate(zip(got, normal, want)):
            where = f"{what} output {i} ({'end' if at_end else 'start'} on the fence)"
            np.testing.assert_array_equal(a, b, err_msg=where)
            if c.dtype.kind == "f":
                np.testing.assert_allclose(a, c, rtol=1e-3, atol=1e-4, err_msg=where)


# ---- what runs ------------------------------------------------------------------------------
def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def sweep_graphs():
    """(name, graph, inputs, threads): sizes around the vector width (16 floats here with
    AVX-512, 8 with AVX2) and convolution/GEMM shapes with remainders in every dimension;
    the large ones also with two threads, so phases split across the pool."""
    rng = np.random.default_rng(11)

    def one(op, args: dict, weights=(), **attrs):
        g = Graph()
        vals = [g.add_weight(k, a) if k in weights else g.add_input(k, TensorType.of(a))
                for k, a in args.items()]
        g.outputs = [g.call(op, *vals, name="y", **attrs)]
        return g, [a for k, a in args.items() if k not in weights]

    for n in (1, 15, 16, 17, 31, 33):
        x = _rand(rng, n)
        for op in ("relu", "exp", "gelu", "neg"):
            yield (f"{op}[{n}]", *one(op, {"x": x}), 1)
        yield (f"add[{n}]+[1]", *one("add", {"x": x, "b": _rand(rng, 1)}), 1)
        yield (f"mul[3,{n}]*[{n}]", *one("mul", {"x": _rand(rng, 3, n), "b": x}), 1)
        for op in ("softmax", "log_softmax"):
            yield (f"{op}[3,{n}]", *one(op, {"x": _rand(rng, 3, n)}), 1)
        yield (f"reduce_sum[3,{n}]", *one("reduce_sum", {"x": _rand(rng, 3, n)}, axes=[1]), 1)
        yield (f"reduce_max[{n},3]", *one("reduce_max", {"x": _rand(rng, n, 3)}, axes=[0]), 1)
        yield (f"layer_norm[2,{n}]", *one("layer_norm", {"x": _rand(rng, 2, n)}), 1)
        yield (f"transpose[{n},3]", *one("transpose", {"x": _rand(rng, n, 3)}, perm=[1, 0]), 1)
    for m, k, n in ((1, 1, 1), (15, 17, 33), (17, 31, 16), (33, 15, 17), (65, 67, 63)):
        threads = 2 if m * k * n > 100_000 else 1
        yield (f"matmul {m}x{k}x{n}",
               *one("matmul", {"a": _rand(rng, m, k), "b": _rand(rng, k, n)}), threads)
        yield (f"linear {m}x{k}x{n}", *one("linear", {"x": _rand(rng, m, k),
               "w": _rand(rng, n, k), "b": _rand(rng, n)}, weights=("w", "b")), threads)
    convs = [((1, 3, 7, 9), (5, 3, 3, 3), dict(pad=[1, 1, 1, 1], stride=[2, 2])),
             ((2, 17, 5, 5), (17, 1, 3, 3), dict(pad=[1, 1, 1, 1], groups=17)),
             ((1, 16, 9, 9), (33, 16, 1, 1), {}),
             ((1, 6, 11, 13), (4, 3, 2, 3), dict(groups=2, dilation=[2, 1], pad=[0, 1, 1, 0])),
             ((2, 8, 15, 17), (17, 8, 3, 3), dict(pad=[1, 1, 1, 1]))]
    for xs, ws, attrs in convs:
        threads = 2 if np.prod(xs) * ws[0] * np.prod(ws[1:]) > 100_000 else 1
        yield (f"conv2d {xs} {ws}", *one("conv2d", {"x": _rand(rng, *xs), "w": _rand(rng, *ws),
               "b": _rand(rng, ws[0])}, weights=("w", "b"), **attrs), threads)
    for op in ("max_pool2d", "avg_pool2d"):
        yield (f"{op} ceil", *one(op, {"x": _rand(rng, 1, 3, 17, 15)}, kernel=[3, 3],
               stride=[2, 2], pad=[1, 1, 1, 1], ceil_mode=True), 1)


def overrun(at_end: bool) -> None:
    """A call whose output fence is one element short: the last store must hit the guard
    page (at_end) or the canary."""
    g = Graph()
    g.outputs = [g.call("relu", g.add_input("x", TensorType((33,))))]
    model = llvm.compile_graph(g, num_threads=1)
    out = run_fenced(model, [np.ones(33, np.float32)], at_end, short=4)
    print("not caught", out)


def main(shard: int = 0, shards: int = 1) -> None:
    """Every backend test case (every lowered operator) and the size sweep, fenced; this
    process takes every `shards`-th model from `shard` on."""
    from tests.backends.cases import CASES

    todo = [(c.id, c.graph(), c.inputs, 1) for c in CASES] + list(sweep_graphs())
    mine = todo[shard::shards]
    for name, g, inputs, threads in mine:
        check_model(g, inputs, threads, name)
    print(f"{len(mine)} models ran fenced, twice each")
