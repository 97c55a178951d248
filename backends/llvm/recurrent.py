"""lstm, gru and rnn: the input projection of every step as one GEMM, then the whole time
loop in one phase.

1. Projection: P[T*B, NP] = x[T*B, I] @ W'^T + bias, one GEMM (gemm.py) over every step and
   both directions; its bias is the input bias plus the recurrence bias where the equations
   add both (all but GRU's h gate with linear_before_reset).
2. Recurrence: per step, gates[B, ...] = P[t] + H[t-1] @ R^T, then the gate math, fused: a
   register tile holds every gate of L hidden units (L = vector lanes) for up to MR batch
   rows, so the recurrence's GEMM and the activations run on registers and the step writes
   only h (into y) and c (into y_c, updated in place). No per-step allocation: h[t-1] is read
   back from y.

Columns of P and of the packed recurrence weights are ordered [direction][unit tile][gate]
[lane] (units past H are zero padding): a tile's gates are adjacent and its weights stream
from one contiguous panel [H][gates][L]. Weights are packed at compile time; operands that are
not weights are gathered into the same layouts by a phase, through index tables made by the
same numpy code.

Threads: the steps are sequential; within a step the unit tiles of both directions are
independent, so with several threads each step is one `parallel_for` over tiles (each
thread keeps its share of R in its own cache). A tile's arithmetic does not depend on which
task computes it, so results do not depend on the thread count. GRU without
linear_before_reset needs the reset gate of every unit before its candidate's GEMM: two
sub-steps (z and r * h[t-1] first, then the candidate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir as llir

from ir.ops.recurrent import num_directions, reverses

from . import runtime, vmath
from .builder import I64, PTR, VOID, KBuilder, const, scalar_type, vec_type
from .codegen import weight_recipe
from .gemm import Epilogue, Gemm, blocking, gemm_phase, pack_b
from .kernel import Buf, Kernel
from .linalg import packed_a
from .registry import lowering

GATES = {"lstm": 4, "gru": 3, "rnn": 1}
# A step below this much work (flops) runs on one thread. The split itself is cheap (well
# under a microsecond), but each step waits for its slowest thread, and on a busy machine a
# helper that loses its core mid-step stalls it. Measured here (2 shared cores, the 2-layer
# 256-unit LSTM of benchmarks/torch_models.py at batch 1, 0.5 MFLOP a step): split, 1.6x
# faster at best (second core free) but 1.9x slower at the median under load; unsplit, the
# same as one thread. From batch 4 (2 MFLOP, ~15 us a step) the split is kept.
STEP_PARALLEL_FLOPS = 2_000_000


@dataclass(frozen=True)
class Pass:
    """One GEMM of the hidden state against some gates' recurrence weights, and what is
    done with the result. `init` per gate: "p" starts from the projection, "rbias" from the
    recurrence bias alone (GRU's h gate with linear_before_reset)."""

    kind: str  # lstm, rnn, gru_lbr, gru_zr, gru_h: selects the epilogue
    gates: tuple[int, ...]
    init: tuple[str, ...]
    source: str = "h"  # the GEMM's left operand: h[t-1], or "rh" (r * h[t-1], GRU)


def passes_of(op: str, lbr: bool) -> list[Pass]:
    if op == "lstm":
        return [Pass("lstm", (0, 1, 2, 3), ("p",) * 4)]
    if op == "rnn":
        return [Pass("rnn", (0,), ("p",))]
    if lbr:
        return [Pass("gru_lbr", (0, 1, 2), ("p", "p", "rbias"))]
    return [Pass("gru_zr", (0, 1), ("p", "p")), Pass("gru_h", (2,), ("p",), "rh")]


@dataclass(frozen=True)
class Shape:
    t: int
    batch: int
    inp: int
    hidden: int
    dirs: int
    gates: int
    lanes: int

    @property
    def tiles(self) -> int:  # unit tiles per direction
        return -(-self.hidden // self.lanes)

    @property
    def width(self) -> int:  # columns of P
        return self.dirs * self.tiles * self.gates * self.lanes

    def units(self) -> tuple[np.ndarray, np.ndarray]:
        """[tiles, lanes] hidden unit of each column slot, and whether it is one (< H)."""
        u = np.arange(self.tiles * self.lanes).reshape(self.tiles, self.lanes)
        return u, u < self.hidden


# ---- layouts as index tables (element offsets into the operand, -1 for padding) ----------
def projection_index(s: Shape, lbr: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W' rows [NP, I] as offsets into w, bias offsets into b: input part, recurrence
    part), in P's column order [dir][tile][gate][lane]."""
    unit, valid = s.units()
    d, g = np.arange(s.dirs)[:, None, None, None], np.arange(s.gates)[None, None, :, None]
    u, ok = unit[None, :, None, :], valid[None, :, None, :]
    row = d * s.gates * s.hidden + g * s.hidden + u  # [D, tiles, G, L]
    w_idx = np.where(ok[..., None], row[..., None] * s.inp + np.arange(s.inp), -1)
    b_base = d * 2 * s.gates * s.hidden + g * s.hidden + u
    wb = np.where(ok, b_base, -1)
    in_proj = np.ones(s.gates, bool)
    if lbr:  # GRU's h gate adds its recurrence bias inside r * (...)
        in_proj[2] = False
    rb = np.where(ok & in_proj[None, None, :, None], b_base + s.gates * s.hidden, -1)
    return w_idx.reshape(s.width, s.inp), wb.reshape(-1), rb.reshape(-1)


def panel_index(s: Shape, gates: tuple[int, ...]) -> np.ndarray:
    """Recurrence weights of `gates` as panels [dir][tile][k][gate][lane], offsets into r."""
    unit, valid = s.units()
    d = np.arange(s.dirs)[:, None, None, None, None]
    k = np.arange(s.hidden)[None, None, :, None, None]
    g = np.array(gates)[None, None, None, :, None]
    u, ok = unit[None, :, None, None, :], valid[None, :, None, None, :]
    idx = d * s.gates * s.hidden * s.hidden + (g * s.hidden + u) * s.hidden + k
    return np.where(ok, idx, -1).reshape(-1)


def rbias_index(s: Shape) -> np.ndarray:
    """GRU's h-gate recurrence bias per [dir][tile][lane], offsets into b."""
    unit, valid = s.units()
    d = np.arange(s.dirs)[:, None, None]
    idx = d * 2 * s.gates * s.hidden + s.gates * s.hidden + 2 * s.hidden + unit[None]
    return np.where(valid[None], idx, -1).reshape(-1)


def gemm_b_index(w_idx: np.ndarray, nr: int) -> np.ndarray:
    """W' [NP, I] offsets in the GEMM's packed-B layout of W'^T (padding -1)."""
    return pack_b(w_idx.T + 1, nr) - 1


def prepared(k: Kernel, src: int, tables: list[np.ndarray], what: str) -> Buf:
    """sum over tables of input[src].flat[table] (0 where table < 0): computed now when the
    input is a weight, else by a gather phase at run time."""
    dtype = k.inputs[src].dtype
    if k.is_weight(src):
        return k.weight_constant(what, gathered, src, tuple(tables))
    dst = k.new_scratch(dtype, max(tables[0].size, 1))
    idx = [k.constant(t.astype(np.int64), f"{what}.index") for t in tables]
    gather_phase(k, k.inputs[src], dst, idx)
    return dst


@weight_recipe
def gathered(node, src: int, tables: tuple[np.ndarray, ...]) -> np.ndarray:
    """sum over tables of weight input[src].flat[table] (0 where table < 0)."""
    data = node.graph.weights[node.inputs[src].name].reshape(-1)
    out = np.zeros(tables[0].shape, data.dtype)
    for t in tables:
        out = out + np.where(t >= 0, data[np.maximum(t, 0)], 0).astype(data.dtype)
    return out


def gather_phase(k: Kernel, src: Buf, dst: Buf, tables: list[Buf]) -> None:
    el = src.elem

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="e") as i:
            acc = None
            for tbl in tables:
                j = b.vload(tbl.ptr, i, I64)
                inside = b.icmp_signed(">=", j, b.i64(0))
                v = b.vload(src.ptr, b.select(inside, j, b.i64(0)), el)
                v = b.select(inside, v, const(el, 0))
                acc = v if acc is None else b.fadd(acc, v)
            b.vstore(acc, dst.ptr, i)

    k.phase(tables[0].size, body, bufs=[src, dst, *tables], cost=tables[0].size)


# ---- the lowering ---------------------------------------------------------------------------
@lowering("lstm", "gru", "rnn")
def lower_recurrent(k: Kernel) -> None:
    x = k.inputs[0]
    t, batch, inp = x.shape
    op, a = k.node.op, k.attrs
    lbr = bool(a.get("linear_before_reset", False))
    s = Shape(t, batch, inp, a["hidden_size"], num_directions(a["direction"]), GATES[op],
              k.lanes(x.dtype))
    if batch == 0:
        return  # every output is empty
    blk = blocking(k.cg.target, x.dtype)
    w_idx, wb_idx, rb_idx = projection_index(s, lbr)
    proj = k.new_scratch(x.dtype, max(t * batch * s.width, 1))
    if t:
        w_packed = prepared(k, 1, [gemm_b_index(w_idx, blk.nr)], "packed_w")
        bias = prepared(k, 3, [wb_idx, rb_idx], "proj_bias")
        g = Gemm(1, t * batch, s.width, inp, packed_a(k, x, 1, t * batch, inp), proj,
                 s.width, b_packed=w_packed, bias=bias, epi=Epilogue("col"))
        gemm_phase(k, g, x.dtype)
    steps = passes_of(op, lbr)
    panels = [prepared(k, 2, [panel_index(s, p.gates)], f"panels{i}")
              for i, p in enumerate(steps)]
    rbias = prepared(k, 3, [rbias_index(s)], "rbias") if op == "gru" and lbr else None
    aux = [k.new_scratch(x.dtype, s.dirs * batch * s.hidden) for _ in range(2)] \
        if len(steps) > 1 else []
    zeros = k.new_scratch(x.dtype, batch * s.hidden) if len(k.inputs) < 5 else None
    Recurrence(k, s, reverses(a["direction"]), steps, proj, panels, rbias, aux, zeros).emit()


class Recurrence:
    """Emits the phase that runs the time loop, with its step tasks and register tiles."""

    def __init__(self, k: Kernel, s: Shape, rev: list[bool], steps: list[Pass], proj: Buf,
                 panels: list[Buf], rbias: Buf | None, aux: list[Buf], zeros: Buf | None):
        self.k, self.s, self.rev, self.steps = k, s, rev, steps
        self.proj, self.panels, self.zeros = proj, panels, zeros
        self.dtype = k.inputs[0].dtype
        self.el = scalar_type(self.dtype)
        self.vt = vec_type(self.dtype, s.lanes)
        wide = k.cg.target.vector_bytes == 64  # 32 vector registers, else 16
        self.budget = 24 if wide else 12  # accumulators of one register tile
        step_flops = 2.0 * s.dirs * s.batch * s.gates * s.hidden * s.hidden
        self.ntasks = min(k.cg.num_threads, s.dirs * s.tiles) \
            if step_flops >= STEP_PARALLEL_FLOPS else 1
        # the buffers only some operators have (the others get null pointers)
        self.optional = {"c": k.outputs[2] if k.node.op == "lstm" else None, "rbias": rbias,
                         "aux0": aux[0] if aux else None, "aux1": aux[1] if aux else None}
        self.present = {name for name, buf in self.optional.items() if buf is not None}
        # the task context: buffer pointers, then the step index and the task count
        self.slots = ["y", "c", "proj", "h0", "rbias", "aux0", "aux1",
                      *[f"panels{i}" for i in range(len(steps))], "step", "ntasks"]

    def emit(self) -> None:
        s = self.s
        cost = 2.0 * s.t * s.dirs * s.batch * s.gates * s.hidden * s.hidden
        # serial: its steps call the pool themselves (a phase may not wait on another task)
        self.k.phase(1, self.body, cost=cost, parallel=False)

    # ---- the phase: initial states, the step loop, the final states -------------------------
    def body(self, b: KBuilder, lo, hi, worker):
        k, s = self.k, self.s
        n_state = s.batch * s.hidden
        if self.zeros is not None:
            fill(b, self.zeros.ptr, n_state, self.el)
        if k.node.op == "lstm":
            yc = k.outputs[2].ptr
            if len(k.inputs) == 6:
                copy(b, yc, k.inputs[5].ptr, s.dirs * n_state, self.el)
            else:
                fill(b, yc, s.dirs * n_state, self.el)
        with b.goto_entry_block():
            ctx = b.alloca(I64, size=len(self.slots))
        for name, ptr in self.pointers().items():
            self.put(b, ctx, name, b.ptrtoint(ptr, I64))
        tasks = [self.task_fn(i, p) for i, p in enumerate(self.steps)]
        pfor = runtime.declare_parallel_for(k.cg.module) if self.ntasks > 1 else None
        self.put(b, ctx, "ntasks", b.i64(self.ntasks))
        with b.loop(0, s.t, name="step", unroll=False) as i:
            self.put(b, ctx, "step", i)
            for fn in tasks:
                if pfor is None:
                    b.call(fn, [ctx, b.i64(0), b.i64(0)])
                else:
                    b.call(pfor, [fn, ctx, b.i64(self.ntasks), b.i64(k.cg.num_threads)])
        self.final_h(b)

    def pointers(self) -> dict[str, llir.Value]:
        k = self.k
        null = llir.Constant(PTR, None)
        h0 = k.inputs[4].ptr if len(k.inputs) >= 5 else self.zeros.ptr
        return {"y": k.outputs[0].ptr, "proj": self.proj.ptr, "h0": h0,
                **{name: null if buf is None else buf.ptr for name, buf in self.optional.items()},
                **{f"panels{i}": p.ptr for i, p in enumerate(self.panels)}}

    def put(self, b, ctx, name: str, value) -> None:
        b.store(value, b.gep(ctx, [b.i64(self.slots.index(name))], source_etype=I64))

    def get(self, b, ctx, name: str, ptr: bool = True):
        v = b.load(b.gep(ctx, [b.i64(self.slots.index(name))], source_etype=I64), typ=I64)
        return b.inttoptr(v, PTR) if ptr else v

    def final_h(self, b: KBuilder) -> None:
        """y_h: the h of each direction's last step (the initial one for an empty sequence)."""
        k, s = self.k, self.s
        n_state = s.batch * s.hidden
        h0_stride = n_state if len(k.inputs) >= 5 else 0
        h0 = k.inputs[4].ptr if len(k.inputs) >= 5 else self.zeros.ptr
        for d, rev in enumerate(self.rev):
            if s.t:
                last = 0 if rev else s.t - 1
                src = b.at(k.outputs[0].ptr, (last * s.dirs + d) * n_state, self.el)
            else:
                src = b.at(h0, d * h0_stride, self.el)
            copy(b, b.at(k.outputs[1].ptr, d * n_state, self.el), src, n_state, self.el)

    # ---- one step of one pass over a range of unit tiles: the parallel_for task -------------
    def task_fn(self, index: int, p: Pass) -> llir.Function:
        k, s, el = self.k, self.s, self.el
        fn = llir.Function(k.cg.module, runtime.TASK_TYPE, k.cg.unique(f"{k.node.op}.step"))
        fn.linkage = "internal"
        ctx, task, _worker = fn.args
        b = KBuilder(fn.append_basic_block("entry"), k.cg.fmf)
        ptr = {name: self.get(b, ctx, name) for name in self.slots[:-2]}
        i, ntasks = self.get(b, ctx, "step", False), self.get(b, ctx, "ntasks", False)
        n = s.dirs * s.tiles
        lo = b.sdiv(b.mul(task, b.i64(n)), ntasks)
        hi = b.sdiv(b.mul(b.add(task, b.i64(1)), b.i64(n)), ntasks)
        n_state = s.batch * s.hidden
        h0_stride = n_state if len(k.inputs) >= 5 else 0
        null = llir.Constant(PTR, None)
        ng = len(p.gates)
        mr = max(1, min(8, self.budget // ng, s.batch))
        tiles = {m: self.tile_fn(p, m) for m in {mr, s.batch % mr} if m}
        # odd steps walk the tiles backwards: the weights the last step read last (still
        # in cache) are read first, where a cyclic sweep over more than the cache holds
        # would miss on every line
        odd = b.trunc(i, llir.IntType(1))
        with b.loop(lo, hi, name="tile", unroll=False) as j:
            idx = b.select(odd, b.sub(b.add(lo, b.sub(hi, b.i64(1))), j), j)
            d, u = b.udiv(idx, b.i64(s.tiles)), b.urem(idx, b.i64(s.tiles))
            rev = self.rev[0] if len(self.rev) == 1 else None
            back = b.icmp_signed("==", d, b.i64(1)) if rev is None else llir.Constant(
                llir.IntType(1), int(rev))
            t = b.select(back, b.sub(b.i64(s.t - 1), i), i)
            prev = b.select(back, b.add(t, b.i64(1)), b.sub(t, b.i64(1)))
            first = b.icmp_signed("==", i, b.i64(0))
            h_prev = b.select(first, b.at(ptr["h0"], b.mul(d, b.i64(h0_stride)), el),
                              b.at(ptr["y"], b.mul(b.add(b.mul(prev, b.i64(s.dirs)), d),
                                                   b.i64(n_state)), el))
            y_t = b.at(ptr["y"], b.mul(b.add(b.mul(t, b.i64(s.dirs)), d), b.i64(n_state)), el)
            j0 = b.mul(u, b.i64(s.lanes))
            nvalid = b.min_(b.sub(b.i64(s.hidden), j0), s.lanes)
            proj = b.at(ptr["proj"], b.add(b.mul(t, b.i64(s.batch * s.width)),
                                           b.mul(idx, b.i64(s.gates * s.lanes))), el)
            panel = b.at(ptr[f"panels{index}"], b.mul(idx, b.i64(s.hidden * ng * s.lanes)), el)
            state = b.mul(d, b.i64(n_state))  # direction d's [B, H] block of c and aux

            def at(name, offset):  # null for a buffer this operator does not have
                return b.at(ptr[name], offset, el) if name in self.present else null

            rbias = at("rbias", b.mul(idx, b.i64(s.lanes)))
            src = h_prev if p.source == "h" else at("aux1", state)

            def call(row, m):
                at_row = b.mul(row, b.i64(s.hidden))
                at_unit = b.add(at_row, j0)
                args = [b.at(src, at_row, el), panel, b.at(proj, b.mul(row, b.i64(s.width)), el),
                        b.at(h_prev, at_unit, el), at("c", b.add(state, at_unit)),
                        b.at(y_t, at_unit, el), at("aux0", b.add(state, at_unit)),
                        at("aux1", b.add(state, at_unit)), rbias, nvalid]
                b.call(tiles[m], args)

            full = s.batch // mr * mr
            with b.loop(0, full, mr, name="rows", unroll=False) as row:
                call(row, mr)
            if s.batch % mr:
                call(b.i64(full), s.batch % mr)
        b.ret_void()
        return fn

    # ---- the register tile: m batch rows x the pass's gates of L units ---------------------
    def tile_fn(self, p: Pass, m: int) -> llir.Function:
        """void tile(a, panel, proj, h_prev, c, out, aux0, aux1, rbias, nvalid): rows of `a`
        (stride H) times the panel, started from the projection (row stride NP) or the bias,
        then the pass's epilogue on lanes < nvalid."""
        k, s, el, vt, L = self.k, self.s, self.el, self.vt, self.s.lanes
        fn = llir.Function(k.cg.module, llir.FunctionType(VOID, [PTR] * 9 + [I64]),
                           k.cg.unique(f"{k.node.op}.tile{m}"))
        fn.linkage = "internal"
        for arg in fn.args[:9]:
            arg.add_attribute("noalias")
        a, panel, proj, h_prev, c, out, aux0, aux1, rbias, nvalid = fn.args
        b = KBuilder(fn.append_basic_block("entry"), k.cg.fmf)
        ng = len(p.gates)
        acc = [[b.var(vt, self.start(b, p, g, proj, rbias, r), f"acc{r}_{g}")
                for g in range(ng)] for r in range(m)]
        with b.loop(0, s.hidden, name="k") as kk:
            self.k_step(b, a, panel, kk, acc)
        # gates to a small stack array; the epilogue is a loop over rows (compact code)
        with b.goto_entry_block():
            gates = b.alloca(vt, size=m * ng, name="gates")
        for r in range(m):
            for g in range(ng):
                b.store(b.load(acc[r][g], typ=vt), b.gep(gates, [b.i64(r * ng + g)],
                                                         source_etype=vt))
        with b.loop(0, m, name="row", unroll=False) as r:
            io = TileIO(b, el, L, s.hidden, s.width, r, proj, h_prev, c, out, aux0, aux1)
            v = [b.load(b.gep(gates, [b.add(b.mul(r, b.i64(ng)), b.i64(g))],
                              source_etype=vt), typ=vt) for g in range(ng)]
            if s.hidden % L == 0:
                self.epilogue(io, p, v, None)
            else:
                full = b.icmp_signed("==", nvalid, b.i64(L))
                with b.if_else(full, likely=True) as (then, other):
                    with then:
                        self.epilogue(io, p, v, None)
                    with other:
                        self.epilogue(io, p, v, b.lane_mask(nvalid, 0, L))
        b.ret_void()
        return fn

    def k_step(self, b, a, panel, kk, acc) -> None:
        """acc[r][g] += a[r, kk] * panel[kk, g]: one k of the tile."""
        s, el, vt, L = self.s, self.el, self.vt, self.s.lanes
        ng = len(acc[0])
        row = b.mul(kk, b.i64(ng * L))
        wv = [b.vload(panel, b.add(row, b.i64(g * L)), el, L) for g in range(ng)]
        for r, regs in enumerate(acc):
            hv = b.splat(b.vload(a, b.add(b.i64(r * s.hidden), kk), el), L)
            for g, slot in enumerate(regs):
                b.store(b.fmuladd(hv, wv[g], b.load(slot, typ=vt)), slot)

    def start(self, b, p: Pass, g: int, proj, rbias, r: int):
        """An accumulator's initial value: the projection of its gate, or the bias."""
        L = self.s.lanes
        if p.init[g] == "rbias":
            return b.vload(rbias, b.i64(0), self.el, L)
        col = p.gates[g] * L
        return b.vload(proj, b.i64(r * self.s.width + col), self.el, L)

    def epilogue(self, io: TileIO, p: Pass, v: list, mask) -> None:
        """The gate math of one row of the tile, from its gates' pre-activations `v`."""
        b = io.b
        one = const(self.vt, 1.0)
        if p.kind == "lstm":
            i, o, f = (vmath.sigmoid(b, x) for x in v[:3])
            c = b.fadd(b.fmul(f, io.load(io.c, mask)), b.fmul(i, vmath.tanh(b, v[3])))
            io.store(c, io.c, mask)
            io.store(b.fmul(o, vmath.tanh(b, c)), io.out, mask)
        elif p.kind == "rnn":
            io.store(vmath.tanh(b, v[0]), io.out, mask)
        elif p.kind == "gru_lbr":
            z, rt = vmath.sigmoid(b, v[0]), vmath.sigmoid(b, v[1])
            xh = b.vload(io.proj, b.add(b.mul(io.row, b.i64(io.ldp)), b.i64(2 * io.lanes)),
                         io.el, io.lanes)
            cand = vmath.tanh(b, b.fadd(xh, b.fmul(rt, v[2])))
            io.store(gru_update(b, one, z, cand, io.load(io.h_prev, mask)), io.out, mask)
        elif p.kind == "gru_zr":
            io.store(vmath.sigmoid(b, v[0]), io.aux0, mask)
            io.store(b.fmul(vmath.sigmoid(b, v[1]), io.load(io.h_prev, mask)), io.aux1, mask)
        else:  # gru_h
            z = io.load(io.aux0, mask)
            io.store(gru_update(b, one, z, vmath.tanh(b, v[0]), io.load(io.h_prev, mask)),
                     io.out, mask)


def gru_update(b, one, z, cand, h_prev):
    """(1 - z) * cand + z * h_prev, as ONNX writes it."""
    return b.fadd(b.fmul(b.fsub(one, z), cand), b.fmul(z, h_prev))


@dataclass
class TileIO:
    """Loads and stores of one row's L units of the state blocks (row stride H)."""

    b: KBuilder
    el: llir.Type
    lanes: int
    stride: int
    ldp: int
    row: llir.Value
    proj: llir.Value
    h_prev: llir.Value
    c: llir.Value
    out: llir.Value
    aux0: llir.Value
    aux1: llir.Value

    def load(self, ptr, mask):
        at = self.b.mul(self.row, self.b.i64(self.stride))
        if mask is None:
            return self.b.vload(ptr, at, self.el, self.lanes)
        return self.b.masked_load(ptr, at, self.el, self.lanes, mask)

    def store(self, value, ptr, mask) -> None:
        at = self.b.mul(self.row, self.b.i64(self.stride))
        if mask is None:
            self.b.vstore(value, ptr, at)
        else:
            self.b.masked_store(value, ptr, at, mask)


# ---- small loops ----------------------------------------------------------------------------
def copy(b: KBuilder, dst, src, n: int, el) -> None:
    with b.loop(0, n, name="cp") as i:
        b.vstore(b.vload(src, i, el), dst, i)


def fill(b: KBuilder, dst, n: int, el) -> None:
    """Zeros."""
    with b.loop(0, n, name="fill") as i:
        b.vstore(const(el, 0), dst, i)
