"""A persistent thread pool, written in LLVM IR and JIT-compiled once per process.

Creating a thread per call costs ~35 us here, so compiled models share a pool of workers
that wait for jobs. One job is `parallel_for(task, ctx, ntasks, nthreads)`: tasks 0..ntasks-1
are claimed from an atomic counter by the caller (worker 0) and up to nthreads-1 pool
workers, each calling `task(ctx, t, worker)`.

The job is announced through one 32-bit futex word, (sequence << 8) | participants: a worker
reads the sequence and whether it may take part in one atomic load. To take part it must
*join* the job: a compare-and-swap on a 64-bit state (sequence << 32 | open << 31 | joined)
that succeeds only while the job is open. Once the caller has claimed the last task it
closes the job (clearing the open bit returns how many joined) and waits for just those
workers to finish their tasks and leave. A worker the OS has not scheduled yet therefore
never delays a call (on a busy machine that could cost a time slice), and no worker reads
a job's fields after parallel_for has returned.

Idle workers spin for a while (jobs come microseconds apart inside a model) and then sleep
on the futex. At exit the pool is stopped and joined before the JIT code is freed.

Concurrent callers (several models, or one model called from several Python threads, each
call in an arena of its own) are safe: the pool runs one job at a time, taken with a
compare-and-swap on a `busy` word, and a caller that finds it taken runs all its tasks on
its own thread as worker 0 (results never depend on the split, and per-worker scratch lives
in the caller's arena). Nothing of a job is touched by anyone but its caller and the
workers that joined it, and the busy word is released only after they have left.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import llvmlite.binding as llvm
from llvmlite import ir as llir

from ir.errors import OptionError

from .builder import I32, I64, PTR, VOID, KBuilder, declare
from .codegen import optimize
from .target import host_target

MAX_WORKERS = 255  # participants must fit the futex word's low byte
SPIN = 1 << 16  # pause iterations before a worker sleeps (about a millisecond)
YIELD_EVERY = 256  # pauses between sched_yield calls while spinning
SYS_FUTEX, FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 202, 128, 129
PFOR_NAME = "lamina_parallel_for"
TASK_TYPE = llir.FunctionType(VOID, [PTR, I64, I64])
# llvmlite's call needs a callee typed as a function pointer; LLVM itself sees `ptr`
TASK_PTR = TASK_TYPE.as_pointer()
PFOR_TYPE = llir.FunctionType(VOID, [PTR, PTR, I64, I64])

_lock = threading.Lock()  # guards the pool's size
_create_lock = threading.Lock()  # guards _instance: exactly one runtime per process
_instance: _Runtime | None = None


# ---- how many threads by default --------------------------------------------------------------
ENV_THREADS = "LAMINA_NUM_THREADS"
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
_V1_CPU = ("cpu", "cpu,cpuacct", "cpuacct,cpu")  # where cgroup v1 mounts the cpu controller


def default_threads(environ: Mapping[str, str] | None = None, cgroup_root=CGROUP_ROOT,
                    proc_cgroup=PROC_CGROUP) -> int:
    """Threads a model uses when `num_threads` is not given: $LAMINA_NUM_THREADS if set (a
    whole number from 1 to MAX_WORKERS + 1, else OptionError), otherwise the CPUs this
    process may run on (its affinity mask, not the machine's count) capped by its cgroup's
    CPU quota, rounded up: a container given 2 CPUs of a 64-core host gets 2 threads, not
    64 that would take turns. The paths are parameters so tests can fake them."""
    environ = os.environ if environ is None else environ
    text = environ.get(ENV_THREADS)
    if text is not None:
        return _env_threads(text)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cpus = cpus or os.cpu_count() or 1
    quota = cgroup_cpu_limit(Path(cgroup_root), Path(proc_cgroup))
    return max(1, min(cpus, quota if quota is not None else cpus))


def _env_threads(text: str) -> int:
    limit = MAX_WORKERS + 1
    value = int(text) if text.strip().isdigit() else 0
    if not 1 <= value <= limit:
        raise OptionError(f"{ENV_THREADS} must be a whole number from 1 to {limit} (threads "
                          f"a compiled model uses), got {text!r}")
    return value


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int | None:
    """The tightest CPU quota (in CPUs, rounded up, at least 1) of this process's cgroup and
    its ancestors: cgroup v2's cpu.max ("QUOTA PERIOD" or "max PERIOD") and cgroup v1's
    cpu.cfs_quota_us / cpu.cfs_period_us (-1: none). None when there is no quota or no
    cgroup file system; an unreadable or malformed file counts as no quota."""
    limits = [q for d in _cgroup_dirs(root, proc_cgroup) if (q := _quota(d)) is not None]
    return min(limits) if limits else None


def _cgroup_dirs(root: Path, proc_cgroup: Path) -> list[Path]:
    """Directories that may hold this process's CPU quota: its own cgroup under each mount
    point (v2, and v1's cpu controller) and every ancestor up to that mount point. In a
    container the mount point usually is the container's own cgroup already."""
    own = _own_cgroups(root, proc_cgroup)
    dirs = []
    for mount in (root, *(root / name for name in _V1_CPU)):
        d = mount / own.get(mount, "").strip("/")
        dirs += [p for p in (d, *d.parents) if p == mount or mount in p.parents]
    return dirs


def _own_cgroups(root: Path, proc_cgroup: Path) -> dict[Path, str]:
    """Mount point -> this process's cgroup path under it, from /proc/self/cgroup's lines
    "ID:CONTROLLERS:PATH" (cgroup v2's line has no controllers)."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return {}
    own = {}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if not parts[1]:
            own[root] = parts[2]
        elif "cpu" in parts[1].split(","):
            own.update({root / name: parts[2] for name in _V1_CPU})
    return own


def _quota(d: Path) -> int | None:
    try:
        if (d / "cpu.max").is_file():
            quota, period = (d / "cpu.max").read_text().split()[:2]
        elif (d / "cpu.cfs_quota_us").is_file():
            quota = (d / "cpu.cfs_quota_us").read_text().strip()
            period = (d / "cpu.cfs_period_us").read_text().strip()
        else:
            return None
        if quota == "max" or int(quota) <= 0 or int(period) <= 0:
            return None
        return max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        return None


# ---- the pool -----------------------------------------------------------------------------
def declare_parallel_for(module: llir.Module) -> llir.Function:
    """The pool's entry in a model's module (resolved to the runtime by symbol)."""
    _runtime()
    return declare(module, PFOR_NAME, VOID, PFOR_TYPE.args)


def ensure_workers(n: int) -> None:
    """Grow the pool to at least `n` workers (it never shrinks)."""
    rt = _runtime()
    with _lock:
        rt.grow(min(n, MAX_WORKERS))


class _Runtime:
    def __init__(self):
        target = host_target()
        mod = llvm.parse_assembly(_module_text())
        mod.verify()
        optimize(mod, target.machine, speed_level=2)
        self.engine = llvm.create_mcjit_compiler(mod, target.new_machine())
        self.engine.finalize_object()
        addr = self.engine.get_function_address
        llvm.add_symbol(PFOR_NAME, addr(PFOR_NAME))
        self.grow = ctypes.CFUNCTYPE(None, ctypes.c_int64)(addr("lamina_pool_grow"))
        self.stop = ctypes.CFUNCTYPE(None)(addr("lamina_pool_stop"))
        atexit.register(self.stop)


def _runtime() -> _Runtime:
    # Two runtimes would each register an exit hook, and the loser's JIT code is freed
    # (engine collected) while its hook still points into it: a crash at exit.
    global _instance
    with _create_lock:
        if _instance is None:
            _instance = _Runtime()
        return _instance


def link_into(mod: llvm.ModuleRef, context: llvm.ContextRef,
              machine: llvm.TargetMachine) -> None:
    """Link the pool's code into `mod` (which lives in `context`), optimised for `machine`:
    an ahead-of-time object of a multi-threaded model then needs only libc and libpthread.
    In a C program nobody grows the pool, so lamina_parallel_for runs every task on the
    calling thread until `lamina_pool_grow(n)` starts n workers; `lamina_pool_stop()` joins
    them (the header aot.py writes says so)."""
    rt = llvm.parse_assembly(_module_text(), context)
    rt.data_layout = mod.data_layout
    rt.verify()
    optimize(rt, machine, speed_level=2)
    mod.link_in(rt)  # consumes rt


@functools.cache
def _module_text() -> str:
    return str(_build_module())


# ---- the IR ---------------------------------------------------------------------------------
def _build_module() -> llir.Module:
    m = llir.Module(name="lamina_runtime")
    m.triple = llvm.get_process_triple()
    g = {name: _global(m, name, ty) for name, ty in (
        ("word", I32), ("stop", I32), ("sleepers", I32), ("fn", PTR), ("ctx", PTR),
        ("ntasks", I64), ("next", I64), ("left", I64), ("state", I64), ("nworkers", I64),
        ("base", I32), ("seq", I32), ("busy", I32))}
    threads = llir.GlobalVariable(m, llir.ArrayType(I64, MAX_WORKERS), "lamina.threads")
    threads.initializer = llir.Constant(llir.ArrayType(I64, MAX_WORKERS), None)
    threads.linkage = "internal"
    run = _run_tasks(m, g)
    worker = _worker(m, g, run)
    _parallel_for(m, g, run)
    _grow(m, g, worker, threads)
    _stop(m, g, threads)
    return m


def _global(m, name, ty):
    gv = llir.GlobalVariable(m, ty, "lamina." + name)
    gv.initializer = llir.Constant(ty, None)
    gv.linkage = "internal"
    return gv


def _atomic_load(b, ptr, ty):
    return b.load_atomic(ptr, "seq_cst", align=ty.width // 8, typ=ty)


def _futex(b, m, addr, op, val):
    syscall = m.globals.get("syscall") or llir.Function(
        m, llir.FunctionType(I64, [I64], var_arg=True), "syscall")
    # syscall() reads every argument as a long: pass 64-bit values
    b.call(syscall, [b.i64(SYS_FUTEX), addr, b.i64(op), b.zext(val, I64), b.i64(0), b.i64(0),
                     b.i64(0)])


def _pause(b):
    b.call(declare(b.module, "llvm.x86.sse2.pause", VOID, []), [])


def _backoff(b, count):
    """pause; every YIELD_EVERY-th time give the core away (sched_yield): on a machine with
    more runnable threads than cores, the thread we wait for may need this one."""
    _pause(b)
    due = b.icmp_unsigned("==", b.and_(count, b.i64(YIELD_EVERY - 1)), b.i64(YIELD_EVERY - 1))
    with b.if_then(due, likely=False):
        b.call(declare(b.module, "sched_yield", I32, []), [])


def _run_tasks(m, g) -> llir.Function:
    """void run(i64 worker): claim and run tasks of the current job until none are left."""
    fn = llir.Function(m, llir.FunctionType(VOID, [I64]), "lamina.run_tasks")
    fn.linkage = "internal"
    b = KBuilder(fn.append_basic_block("entry"))
    task_fn = b.load(g["fn"], typ=TASK_PTR)
    ctx = b.load(g["ctx"], typ=PTR)
    n = b.load(g["ntasks"], typ=I64)
    head = fn.append_basic_block("claim")
    body = fn.append_basic_block("run")
    done = fn.append_basic_block("done")
    b.branch(head)
    b.position_at_end(head)
    t = b.atomic_rmw("add", g["next"], b.i64(1), "seq_cst")
    b.cbranch(b.icmp_signed("<", t, n), body, done)
    b.position_at_end(body)
    b.call(task_fn, [ctx, t, fn.args[0]])
    b.branch(head)
    b.position_at_end(done)
    b.ret_void()
    return fn


def _worker(m, g, run) -> llir.Function:
    """ptr worker(ptr id): wait for a job word that differs from the last seen one; take
    part if id <= participants; exit when stop is set."""
    fn = llir.Function(m, llir.FunctionType(PTR, [PTR]), "lamina.worker")
    fn.linkage = "internal"
    b = KBuilder(fn.append_basic_block("entry"))
    me = b.ptrtoint(fn.args[0], I64)
    # the word when the pool grew, not now: a stop (or job) may come before the thread runs
    seen = b.var(I32, _atomic_load(b, g["base"], I32), "seen")
    wait = fn.append_basic_block("wait")
    spin = fn.append_basic_block("spin")
    sleep = fn.append_basic_block("sleep")
    got = fn.append_basic_block("got")
    b.branch(wait)
    # spin, then sleep until the word changes
    b.position_at_end(wait)
    count = b.phi(I64)
    count.add_incoming(b.i64(0), fn.entry_basic_block)
    word = _atomic_load(b, g["word"], I32)
    changed = b.icmp_unsigned("!=", word, b.get(seen, I32))
    b.cbranch(changed, got, spin)
    b.position_at_end(spin)
    _backoff(b, count)
    spin_end = b.block
    nxt = b.add(count, b.i64(1))
    count.add_incoming(nxt, spin_end)
    count.add_incoming(b.i64(0), sleep)
    b.cbranch(b.icmp_signed("<", nxt, b.i64(SPIN)), wait, sleep)
    b.position_at_end(sleep)
    b.atomic_rmw("add", g["sleepers"], b.i32(1), "seq_cst")
    _futex(b, m, g["word"], FUTEX_WAIT_PRIVATE, b.get(seen, I32))
    b.atomic_rmw("sub", g["sleepers"], b.i32(1), "seq_cst")
    b.branch(wait)
    # a new word: stop, or run tasks if this worker takes part
    b.position_at_end(got)
    b.store(word, seen)
    stop = b.icmp_signed("!=", _atomic_load(b, g["stop"], I32), b.i32(0))
    with b.if_then(stop):
        b.ret(llir.Constant(PTR, None))
    parts = b.zext(b.and_(word, b.i32(0xFF)), I64)
    with b.if_then(b.icmp_signed("<=", me, parts)):
        seq = b.zext(b.lshr(word, b.i32(8)), I64)
        with b.if_then(_join(b, g, seq)):
            b.call(run, [me])
            b.atomic_rmw("add", g["left"], b.i64(1), "seq_cst")
    b.branch(wait)
    # `wait`'s phi needs an edge from here too
    count.add_incoming(b.i64(0), b.block)
    return fn


OPEN = 1 << 31


def _join(b: KBuilder, g, seq) -> llir.Value:
    """Join the job with this (24-bit) sequence if it is still open: i1 whether we did."""
    fn = b.function
    head = fn.append_basic_block("join.try")
    done = fn.append_basic_block("join.done")
    b.branch(head)
    b.position_at_end(head)
    st = _atomic_load(b, g["state"], I64)
    same = b.icmp_unsigned("==", b.and_(b.lshr(st, b.i64(32)), b.i64(0xFFFFFF)), seq)
    is_open = b.icmp_unsigned("!=", b.and_(st, b.i64(OPEN)), b.i64(0))
    can = b.and_(same, is_open)
    attempt = fn.append_basic_block("join.cas")
    b.cbranch(can, attempt, done)
    b.position_at_end(attempt)
    pair = b.cmpxchg(g["state"], st, b.add(st, b.i64(1)), "seq_cst", "seq_cst")
    ok = b.extract_value(pair, 1)
    b.cbranch(ok, done, head)  # lost a race (another joiner, or the close): look again
    b.position_at_end(done)
    joined = b.phi(llir.IntType(1))
    joined.add_incoming(llir.Constant(llir.IntType(1), 0), head)
    joined.add_incoming(llir.Constant(llir.IntType(1), 1), attempt)
    return joined


def _parallel_for(m, g, run) -> None:
    fn = llir.Function(m, llir.FunctionType(VOID, [TASK_PTR, PTR, I64, I64]), PFOR_NAME)
    task, ctx, ntasks, nthreads = fn.args
    b = KBuilder(fn.append_basic_block("entry"))
    nw = _atomic_load(b, g["nworkers"], I64)  # the pool may grow meanwhile (ensure_workers)
    want = b.sub(nthreads, b.i64(1))
    parts = b.select(b.icmp_signed("<", want, nw), want, nw)
    parts = b.select(b.icmp_signed("<", b.sub(ntasks, b.i64(1)), parts),
                     b.sub(ntasks, b.i64(1)), parts)
    serial = b.icmp_signed("<=", parts, b.i64(0))
    with b.if_then(serial):
        with b.loop(0, ntasks) as t:
            b.call(task, [ctx, t, b.i64(0)])
        b.ret_void()
    # one job at a time: a caller that finds the pool busy (another model, called from
    # another Python thread) runs its tasks itself; results do not depend on the split
    took = b.extract_value(b.cmpxchg(g["busy"], b.i32(0), b.i32(1), "seq_cst", "seq_cst"), 1)
    with b.if_then(b.not_(took), likely=False):
        with b.loop(0, ntasks) as t:
            b.call(task, [ctx, t, b.i64(0)])
        b.ret_void()
    b.store(task, g["fn"])
    b.store(ctx, g["ctx"])
    b.store(ntasks, g["ntasks"])
    b.store_atomic(b.i64(0), g["next"], "seq_cst", 8)
    b.store_atomic(b.i64(0), g["left"], "seq_cst", 8)
    seq = b.and_(b.add(b.load(g["seq"], typ=I32), b.i32(1)), b.i32(0xFFFFFF))
    b.store(seq, g["seq"])
    seq64 = b.zext(seq, I64)
    b.store_atomic(b.or_(b.shl(seq64, b.i64(32)), b.i64(OPEN)), g["state"], "seq_cst", 8)
    word = b.or_(b.shl(seq, b.i32(8)), b.trunc(parts, I32))
    b.store_atomic(word, g["word"], "seq_cst", 4)
    sleeping = b.icmp_signed("!=", _atomic_load(b, g["sleepers"], I32), b.i32(0))
    with b.if_then(sleeping):
        _futex(b, m, g["word"], FUTEX_WAKE_PRIVATE, b.i32(MAX_WORKERS))
    b.call(run, [b.i64(0)])
    # every task is claimed: close the job, then wait for the workers that joined it
    old = b.atomic_rmw("and", g["state"], b.i64(~OPEN), "seq_cst")
    joined = b.and_(old, b.i64(OPEN - 1))
    head = fn.append_basic_block("drain")
    idle = fn.append_basic_block("idle")
    out = fn.append_basic_block("out")
    entry_end = b.block
    b.branch(head)
    b.position_at_end(head)
    spins = b.phi(I64)
    spins.add_incoming(b.i64(0), entry_end)
    finished = b.icmp_signed("==", _atomic_load(b, g["left"], I64), joined)
    b.cbranch(finished, out, idle)
    b.position_at_end(idle)
    _backoff(b, spins)
    spins.add_incoming(b.add(spins, b.i64(1)), b.block)
    b.branch(head)
    b.position_at_end(out)
    b.store_atomic(b.i32(0), g["busy"], "seq_cst", 4)
    b.ret_void()


def _grow(m, g, worker, threads) -> None:
    fn = llir.Function(m, llir.FunctionType(VOID, [I64]), "lamina_pool_grow")
    b = KBuilder(fn.append_basic_block("entry"))
    create = declare(m, "pthread_create", I32, [PTR, PTR, PTR, PTR])
    start = b.load(g["nworkers"], typ=I64)
    b.store_atomic(_atomic_load(b, g["word"], I32), g["base"], "seq_cst", 4)
    with b.loop(start, fn.args[0]) as i:
        slot = b.gep(threads, [b.i64(0), i], source_etype=threads.value_type)
        arg = b.inttoptr(b.add(i, b.i64(1)), PTR)  # worker ids start at 1; 0 is the caller
        b.call(create, [slot, llir.Constant(PTR, None), worker, arg])
        b.store_atomic(b.add(i, b.i64(1)), g["nworkers"], "seq_cst", 8)
    b.ret_void()


def _stop(m, g, threads) -> None:
    fn = llir.Function(m, llir.FunctionType(VOID, []), "lamina_pool_stop")
    b = KBuilder(fn.append_basic_block("entry"))
    join = declare(m, "pthread_join", I32, [I64, PTR])
    b.store_atomic(b.i32(1), g["stop"], "seq_cst", 4)
    old = _atomic_load(b, g["word"], I32)
    b.store_atomic(b.and_(b.add(old, b.i32(256)), b.i32(~0xFF)), g["word"], "seq_cst", 4)
    _futex(b, m, g["word"], FUTEX_WAKE_PRIVATE, b.i32(MAX_WORKERS))
    n = b.load(g["nworkers"], typ=I64)
    with b.loop(0, n) as i:
        slot = b.gep(threads, [b.i64(0), i], source_etype=threads.value_type)
        b.call(join, [b.load(slot, typ=I64), llir.Constant(PTR, None)])
    b.store(b.i64(0), g["nworkers"])
    b.ret_void()


