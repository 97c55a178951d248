"""Saved compiled models: one `.lamina` zip that runs without LLVM.

    fn.save("model.lamina")                  # a backends.llvm CompiledModel
    fn = backends.artifact.load("model.lamina")  # compiler.load in the public API
    y = fn(x)

The zip holds (stored, not compressed; no pickle anywhere):

    metadata.json           format version, versions, target CPU and features, fp mode,
                            threads, signature, arena size, error messages, and the SHA-256
                            of every other member
    model.ir                the optimised graph (ir.print_graph)
    weights/K.npy           the graph's weights, in the order of the weights table
    constants/K.npy         the compile-time arrays the entry point reads after them
    model.so                the native code: lamina_main(io, weights, arena), and the
                            thread pool (lamina_pool_grow / lamina_pool_stop) when it uses one

This module is the format's one owner, and it imports neither llvmlite nor backends.llvm, so
loading never starts LLVM: the backend hands `write` an object file it emitted, and `load`
needs only numpy, ctypes and a dlopen. The shared-library link (`link_shared`) lives here
too, for `lamina compile` (compiler/tools/aot.py) to use the same code path.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import importlib.metadata
import io
import json
import math
import mmap
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np

import ir
from backends.reference import check_inputs

FORMAT = "lamina-compiled-model"
FORMAT_VERSION = 1
ALIGN = 64
_ENTRY = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


class ArtifactError(ir.LaminaError, ValueError):
    """A .lamina file that cannot be written, read or run here: not a zip, a missing or
    corrupted member (checksum), another format version, or code for CPU features or an
    architecture this host lacks."""


# ---- the shared library ----------------------------------------------------------------------
def c_compiler() -> str | None:
    """The system C compiler used to link shared libraries, or None."""
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def libraries(uses_pool: bool) -> list[str]:
    """What a model's object needs besides itself and libc: libm, and libpthread for the
    thread pool."""
    return ["-lpthread", "-lm"] if uses_pool else ["-lm"]


def link_shared(obj: Path, so: Path, uses_pool: bool) -> str | None:
    """Link object file `obj` into shared library `so` with the system C compiler; returns
    None on success, else a one-line reason."""
    cc = c_compiler()
    if cc is None:
        return "no C compiler on PATH"
    done = subprocess.run([cc, "-shared", "-o", str(so), str(obj), *libraries(uses_pool)],
                          capture_output=True, check=False)
    if done.returncode == 0:
        return None
    last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
    return f"linking {so.name} failed: {last[0]}"


# ---- writing ---------------------------------------------------------------------------------
def write(path: str | os.PathLike, *, graph: ir.Graph, object_code: bytes,
          constants: list[np.ndarray], meta: dict) -> Path:
    """Write a .lamina file: the graph, its weights, `constants`, the shared library linked
    from `object_code`, and `meta` (the backend's facts: target, fp_mode, num_threads,
    arena_bytes, errors, uses_pool, llvm_version, ...) completed with the signature and
    checksums. Written to a temporary name first, so a failure leaves no half file."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="lamina-save-") as tmp:
        obj, so = Path(tmp) / "model.o", Path(tmp) / "model.so"
        obj.write_bytes(object_code)
        failed = link_shared(obj, so, bool(meta.get("uses_pool")))
        if failed:
            raise ArtifactError(f"cannot save {path}: {failed} (saving needs a C compiler to "
                                "build the shared library)")
        members: list[tuple[str, bytes]] = [("model.ir", ir.print_graph(graph).encode())]
        for k, name in enumerate(graph.params):
            array = np.ascontiguousarray(graph.weights[name],
                                         dtype=graph.params[name].type.np_dtype)
            members.append((f"weights/{k}.npy", _npy(array)))
        members += [(f"constants/{k}.npy", _npy(np.ascontiguousarray(a)))
                    for k, a in enumerate(constants)]
        members.append(("model.so", so.read_bytes()))
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "lamina_version": _version(),
        "machine": platform.machine(), "platform": sys.platform, **meta,
        "graph": graph.name, "inputs": [_sig(v) for v in graph.inputs],
        "outputs": [_sig(v) for v in graph.outputs], "weights": list(graph.params),
        "n_constants": len(constants),
        "constants": [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in constants],
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in members},
    }
    part = path.with_name(path.name + ".part")
    try:
        with zipfile.ZipFile(part, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(zipfile.ZipInfo("metadata.json", date_time=(1980, 1, 1, 0, 0, 0)),
                        json.dumps(metadata, indent=1))
            for name, data in members:
                _write_aligned(zf, name, data)
        part.replace(path)
    except OSError as e:
        part.unlink(missing_ok=True)
        raise ArtifactError(f"cannot write {path}: {e}") from None
    return path


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _sig(v: ir.Value) -> dict:
    return {"name": v.name, "dtype": v.type.dtype, "shape": list(v.type.shape)}


def _write_aligned(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    """Store `data` so that it starts at a multiple of ALIGN bytes in the file (padding in an
    extra field, as Android's zipalign does), which lets arrays be read in place."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    start = zf.fp.tell() + 30 + len(name.encode()) + 4
    pad = (-start) % ALIGN
    info.extra = (0xD935).to_bytes(2, "little") + pad.to_bytes(2, "little") + b"\0" * pad
    zf.writestr(info, data, compress_type=zipfile.ZIP_STORED)


def _version() -> str:
    try:
        return importlib.metadata.version("lamina")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


# ---- reading ---------------------------------------------------------------------------------
def load(path: str | os.PathLike, verify: bool = True) -> LoadedModel:
    """A callable for the .lamina file at `path`, with a CompiledModel's call contract.

    The file is mapped, not read: arrays are views of the mapping (private, so nothing
    written to them reaches the file), which is what makes loading fast. The code and the
    graph are always checked against their SHA-256 (the metadata by the zip's CRC-32), and
    every array's dtype and shape against the graph or the metadata, so the code never
    reads outside an array; verify=False skips hashing the arrays' bytes, most of the file
    (about 200 ms per 200 MB here)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ArtifactError(f"load takes the path of a .lamina file, got {type(path).__name__}")
    path = Path(path)
    with open(path, "rb") as f:  # a missing file stays an OSError (PathError in compiler)
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        except ValueError:  # an empty file cannot be mapped
            raise ArtifactError(f"{path}: not a Lamina model file (empty)") from None
    try:
        zf = zipfile.ZipFile(path)  # reads only the directory at the end
    except zipfile.BadZipFile as e:
        raise ArtifactError(f"{path}: not a Lamina model file ({e})") from None
    with zf:
        meta = _metadata(zf, path)
        _check_host(meta, path)
        reader = _Reader(zf, mm, path, meta["sha256"], verify)
        text = bytes(reader.view("model.ir", always=True)).decode()
        names = meta["weights"]
        weights = {n: reader.array(f"weights/{k}.npy") for k, n in enumerate(names)}
        constants = [reader.array(f"constants/{k}.npy") for k in range(meta["n_constants"])]
        _check_tables(constants, meta, path)
        so = reader.view("model.so", always=True)
        try:
            graph = ir.parse(text, weights)  # also checks each weight's dtype and shape
        except ir.LaminaError as e:
            raise ArtifactError(f"{path}: its graph does not parse: {e}") from None
        if [_sig(v) for v in graph.inputs] != meta.get("inputs") or \
                [_sig(v) for v in graph.outputs] != meta.get("outputs"):
            raise ArtifactError(f"{path}: the graph's inputs and outputs differ from the "
                                "signature in metadata.json")
        return LoadedModel(graph, [weights[n] for n in names] + constants, so, meta, path)


def _check_tables(constants: list[np.ndarray], meta: dict, path: Path) -> None:
    """The compile-time arrays must be what the code was compiled against."""
    stated = meta.get("constants")
    found = [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in constants]
    if stated != found:
        raise ArtifactError(f"{path}: the compile-time arrays are not those metadata.json "
                            "describes (a corrupted file)")


def _metadata(zf: zipfile.ZipFile, path: Path) -> dict:
    try:
        meta = json.loads(zf.read("metadata.json"))
    except KeyError:
        raise ArtifactError(f"{path}: no metadata.json (not a Lamina model file)") from None
    except (ValueError, zipfile.BadZipFile, OSError) as e:
        raise ArtifactError(f"{path}: unreadable metadata.json ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a Lamina model file (format "
                            f"{meta.get('format') if isinstance(meta, dict) else '?'!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format version {meta.get('format_version')!r}; this "
                            f"Lamina ({_version()}) reads version {FORMAT_VERSION} only: save "
                            "the model again with this version")
    needed = ("sha256", "weights", "n_constants", "constants", "arena_bytes", "target",
              "errors", "inputs", "outputs")
    missing = [k for k in needed if k not in meta]
    if missing:
        raise ArtifactError(f"{path}: metadata.json lacks {', '.join(missing)}")
    return meta


class _Reader:
    """Members of a mapped zip as views of the mapping, checked against their SHA-256."""

    def __init__(self, zf: zipfile.ZipFile, mm: mmap.mmap, path: Path, sums: dict,
                 verify: bool):
        self.zf, self.mm, self.path, self.sums, self.verify = zf, mm, path, sums, verify

    def _corrupt(self, name: str, why: str) -> ArtifactError:
        return ArtifactError(f"{self.path}: member {name} is corrupted ({why})")

    def view(self, name: str, always: bool = False) -> memoryview:
        """The member's bytes, a view of the mapping."""
        start, end = self.span(name, always)
        return memoryview(self.mm)[start:end]

    def span(self, name: str, always: bool = False) -> tuple[int, int]:
        """Where the member's bytes are in the file, after checking them."""
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise ArtifactError(f"{self.path}: member {name} is missing") from None
        if name not in self.sums:
            raise ArtifactError(f"{self.path}: member {name} has no checksum in metadata.json")
        if info.compress_type != zipfile.ZIP_STORED:
            raise self._corrupt(name, "compressed; Lamina stores members uncompressed")
        at, mm = info.header_offset, self.mm
        if mm[at:at + 4] != b"PK\x03\x04":
            raise self._corrupt(name, "no local header where the directory says")
        start = at + 30 + int.from_bytes(mm[at + 26:at + 28], "little") + \
            int.from_bytes(mm[at + 28:at + 30], "little")
        if start + info.file_size > len(mm):
            raise self._corrupt(name, "the file is cut short")
        end = start + info.file_size
        if (self.verify or always) and \
                hashlib.sha256(memoryview(mm)[start:end]).hexdigest() != self.sums[name]:
            raise self._corrupt(name, "SHA-256 mismatch")
        return start, end

    def array(self, name: str) -> np.ndarray:
        """The .npy member as an array viewing the mapping (no pickle, no copy)."""
        start, end = self.span(name)
        head = io.BytesIO(self.mm[start:min(end, start + (1 << 16))])
        readers = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}
        try:
            version = np.lib.format.read_magic(head)
            shape, fortran, dtype = readers[version](head)
        except (ValueError, KeyError) as e:
            raise self._corrupt(name, f"no .npy array: {e}") from None
        count = math.prod(shape)
        offset = start + head.tell()
        if dtype.hasobject or fortran or offset + count * dtype.itemsize > end:
            raise self._corrupt(name, "not a C-ordered numeric array of its stated size")
        a = np.frombuffer(self.mm, dtype, count, offset).reshape(shape)
        return a if a.ctypes.data % dtype.alignment == 0 else a.copy()

# x86 features LLVM names differently from /proc/cpuinfo; others are the same name with
# '.' and '-' as '_'. Only the features listed in the host's flags vocabulary are checked:
# LLVM also lists tuning and OS-level features that cpuinfo never shows.
_CPUINFO_NAMES = {"sse4.1": "sse4_1", "sse4.2": "sse4_2", "sse3": "pni", "sahf": "lahf_lm",
                  "lzcnt": "abm", "bmi": "bmi1", "rdrnd": "rdrand", "cx16": "cx16",
                  "avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16",
                  "avx512fp16": "avx512_fp16", "avx512vbmi2": "avx512_vbmi2",
                  "avx512bitalg": "avx512_bitalg", "avx512vpopcntdq": "avx512_vpopcntdq",
                  "avx512vp2intersect": "avx512_vp2intersect", "avxvnni": "avx_vnni",
                  "avxvnniint8": "avx_vnni_int8", "avxifma": "avx_ifma",
                  "amx-tile": "amx_tile", "amx-int8": "amx_int8", "amx-bf16": "amx_bf16",
                  "sha": "sha_ni", "pclmul": "pclmulqdq", "fxsr": "fxsr", "xsave": "xsave"}
# Instructions compiled kernels can contain (vector, bit-manipulation, FMA); not RDSEED,
# AES and the like, which LLVM emits only for intrinsics and kernels clear from cpuinfo for
# errata (RDSEED on Zen 5).
_ISA_FLAGS = {"sse", "sse2", "pni", "ssse3", "sse4_1", "sse4_2", "sse4a", "popcnt", "avx",
              "avx2", "fma", "fma4", "xop", "tbm", "f16c", "bmi1", "bmi2", "abm", "movbe",
              "gfni", "amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_bitalg",
              "avx512_fp16", "avx512_vbmi2", "avx512_vnni", "avx512_vp2intersect",
              "avx512_vpopcntdq", "avx512bw", "avx512cd", "avx512dq", "avx512f", "avx512ifma",
              "avx512vbmi", "avx512vl", "avx_ifma", "avx_vnni", "avx_vnni_int8"}


def cpuinfo_name(llvm_feature: str) -> str:
    """The /proc/cpuinfo flag of an LLVM x86 feature name."""
    return _CPUINFO_NAMES.get(llvm_feature, llvm_feature.replace(".", "_").replace("-", "_"))


def host_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str] | None:
    """The host CPU's feature flags, read without LLVM; None where they cannot be read."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return None


def missing_features(features: str, flags: set[str]) -> list[str]:
    """The ISA features enabled in LLVM feature string `features` that `flags` lacks."""
    out = []
    for item in filter(None, (f.strip() for f in features.split(","))):
        name = cpuinfo_name(item[1:])
        if item[0] == "+" and name in _ISA_FLAGS and name not in flags:
            out.append(item[1:])
    return out


def _check_host(meta: dict, path: Path) -> None:
    if meta.get("machine") != platform.machine() or meta.get("platform") != sys.platform:
        raise ArtifactError(f"{path}: built for {meta.get('platform')}/{meta.get('machine')}, "
                            f"this host is {sys.platform}/{platform.machine()}")
    flags = host_flags()
    if flags is None or platform.machine() not in ("x86_64", "AMD64"):
        return  # no way to compare here; the target triple matched
    lacking = missing_features(meta["target"].get("features", ""), flags)
    if lacking:
        raise ArtifactError(f"{path}: compiled for CPU {meta['target'].get('cpu')!r} with "
                            f"features this CPU lacks: {', '.join(sorted(lacking))}; compile "
                            "it again here, or on the build machine with target_features "
                            "narrowed (e.g. 'avx2')")


# ---- running ---------------------------------------------------------------------------------
CANARY = 256  # bytes after an arena that the code must never touch (arena_canary_intact)


def new_arena(nbytes: int) -> tuple[np.ndarray, int]:
    """A zeroed byte buffer and the address of its first ALIGN-aligned byte; CANARY bytes
    of 0xA5 follow the `nbytes` bytes the code may use."""
    raw = np.zeros(nbytes + ALIGN + CANARY, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    raw[start + nbytes:] = 0xA5
    return raw, raw.ctypes.data + start


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return cpus or os.cpu_count() or 1


class _Arena:
    """What one call needs of its own: an arena and the io table of pointers."""

    __slots__ = ("address", "buf", "io")

    def __init__(self, nbytes: int, n_io: int):
        self.buf, address = new_arena(nbytes)
        self.address = ctypes.c_void_p(address)
        self.io = (ctypes.c_void_p * max(1, n_io))()


class NativeCall:
    """The call contract of `lamina_main(io, weights, arena)`, shared by the JIT-compiled
    model (backends.llvm.CompiledModel) and the loaded one (LoadedModel): inputs checked,
    outputs new arrays, one foreign call (ctypes releases the GIL during it).

    Calls may come from many threads at once: each runs in an arena (and io table) of its
    own, taken from a free list and given back after the call. A caller that finds none
    free allocates another while fewer than `max_concurrent_calls` exist (default: the CPUs
    this process may use; more calls at once than cores only cost memory), otherwise waits
    for one. Weights and compile-time arrays are only read, so they are shared."""

    def _bind(self, graph: ir.Graph, fn, tables: list[np.ndarray], arena_bytes: int,
              errors) -> None:
        self._fn, self._errors = fn, list(errors)
        self._keep = tables  # the code holds raw pointers to these
        self._weights = (ctypes.c_void_p * max(1, len(tables)))(
            *[a.ctypes.data for a in tables])
        self._out_types = [(v.type.shape, v.type.np_dtype) for v in graph.outputs]
        self._n_in = len(graph.inputs)
        self._n_io = self._n_in + len(self._out_types)
        self.arena_bytes = arena_bytes
        self.max_concurrent_calls = available_cpus()
        self._grow_lock = threading.Lock()
        self._free: queue.SimpleQueue[_Arena] = queue.SimpleQueue()
        # the first arena now, so that a model too large for memory fails here, not later
        self._arenas = [_Arena(arena_bytes, self._n_io)]
        self._free.put(self._arenas[0])

    def __call__(self, *args, **kwargs):
        arrays = check_inputs(self.graph, args, kwargs)
        outs = [np.empty(shape, dtype) for shape, dtype in self._out_types]
        arena = self._take()
        try:
            io_ = arena.io
            for i, a in enumerate(arrays):
                if not (a.flags.c_contiguous and a.flags.aligned):
                    a = arrays[i] = np.require(a, requirements="CA")
                io_[i] = a.ctypes.data
            for i, o in enumerate(outs, self._n_in):
                io_[i] = o.ctypes.data
            rc = self._fn(io_, self._weights, arena.address)
        finally:
            self._free.put(arena)
        if rc:
            raise ir.LaminaError(self._errors[rc - 1] if 0 < rc <= len(self._errors)
                                 else f"the compiled code failed with status {rc}")
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _take(self) -> _Arena:
        """A free arena: one given back, a new one (up to the bound), or the next given
        back. Every _take is paired with a put in a finally."""
        try:
            return self._free.get_nowait()
        except queue.Empty:
            pass
        with self._grow_lock:
            if len(self._arenas) < self.max_concurrent_calls:
                try:
                    arena = _Arena(self.arena_bytes, self._n_io)
                except MemoryError:  # no room for another: wait for one, as at the bound
                    pass
                else:
                    self._arenas.append(arena)
                    return arena
        return self._free.get()

    def arena_canary_intact(self) -> bool:
        """Whether the bytes after every arena still hold their fill (no kernel overran)."""
        return all(bool(np.all(a.buf[a.address.value - a.buf.ctypes.data + self.arena_bytes:]
                               == 0xA5)) for a in list(self._arenas))


class LoadedModel(NativeCall):
    """A saved compiled model, running from its shared library: the call contract of
    backends.llvm.CompiledModel (see NativeCall; concurrent calls each get an arena of
    their own). Attributes: graph, metadata, fp_mode, num_threads, arena_bytes, path,
    max_concurrent_calls."""

    backend = "llvm"

    def __init__(self, graph: ir.Graph, tables: list[np.ndarray], so: memoryview, meta: dict,
                 path: Path):
        self.graph, self.metadata, self.path = graph, meta, path
        self.fp_mode = meta.get("fp_mode")
        self.num_threads = int(meta.get("num_threads", 1))
        self.arena_bytes = int(meta["arena_bytes"])
        self._errors = list(meta["errors"])
        self._lib = _dlopen(so, path)
        try:
            self._fn = _ENTRY(("lamina_main", self._lib))
        except AttributeError:
            raise ArtifactError(f"{path}: its library has no entry point lamina_main") from None
        if meta.get("uses_pool") and self.num_threads > 1:
            _start_pool(self._lib, self.num_threads - 1)
        self._bind(graph, self._fn, tables, self.arena_bytes, meta["errors"])

    def __repr__(self) -> str:
        t = self.metadata["target"]
        return (f"<loaded @{self.graph.name} from {self.path.name}: {t.get('cpu')}, "
                f"{self.fp_mode} fp, {self.num_threads} thread(s)>")


# The memfds libraries were loaded from, open for the life of the process: dlopen returns
# the library already loaded under the same name, so a closed fd's number, reused for the
# next model's /proc/self/fd/N, would run the previous model's code on this one's buffers.
_LIBRARY_FDS: list[int] = []


def _dlopen(so: memoryview, path: Path) -> ctypes.CDLL:
    """Load the library from memory where Linux allows (memfd), else from a temporary file
    of a name never used before, removed once loaded. Never closed: code may still run in
    it until the process ends."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("lamina-model.so")
        _LIBRARY_FDS.append(fd)
        try:
            with open(fd, "wb", closefd=False) as f:
                f.write(so)
            return ctypes.CDLL(f"/proc/self/fd/{fd}")
        except OSError as e:
            raise ArtifactError(f"{path}: cannot load its native code: {e}") from None
    with tempfile.TemporaryDirectory(prefix="lamina-so-") as tmp:  # a fresh, unique name
        name = Path(tmp) / "model.so"
        name.write_bytes(so)
        try:
            return ctypes.CDLL(str(name))
        except OSError as e:
            raise ArtifactError(f"{path}: cannot load its native code: {e}") from None


def _start_pool(lib: ctypes.CDLL, workers: int) -> None:
    """Start the library's own thread pool (its copy of Lamina's runtime), joined at exit."""
    try:
        grow, stop = lib.lamina_pool_grow, lib.lamina_pool_stop
    except AttributeError:
        return  # no pool linked in: every task runs on the calling thread
    grow.argtypes, grow.restype, stop.restype = [ctypes.c_int64], None, None
    grow(workers)
    atexit.register(stop)
