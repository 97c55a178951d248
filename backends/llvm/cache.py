"""Compiled-code cache: object code keyed by what determines it, before any LLVM IR is built.

A compiled model's native code depends only on the graph's structure (its printed IR: ops,
attributes, shapes, names, which operands are weights; never weight values, which the code
reaches through pointers), the backend's options (FP mode, threads), the target (CPU,
features), the LLVM and llvmlite versions, and Lamina's own code generator. `key` hashes
all of these (the generator as a digest of its source files, `code_fingerprint`, so that
editing a lowering can never hit an entry it did not write). On a hit the driver skips
lowering, optimisation and code generation: MCJIT takes the stored object, and the rest of
what a build produces (arena size, error table, compile-time arrays, the optimised IR
shown as `llvm_ir`) comes from the entry's metadata; arrays computed from weight values are
computed again from the graph's weights by their recipes (codegen.weight_recipe).

A compilation whose lowerings read weight values outside a recipe cannot be shared between
graphs; it is keyed, as before, by the text of its unoptimised LLVM module (`text_key`),
which skips only optimisation and code generation. An entry is (object code, optimised IR
text) or, for a structure key, (object code, optimised IR text, metadata).

Entries live in a small in-process LRU table (at most MEMORY_ENTRIES entries and
MEMORY_BYTES bytes, so compiling many models does not grow the process without end) and,
when a directory is given, in files there (<sha256>.o, <sha256>.ll and, with metadata,
<sha256>.meta).

Loading object code runs it, so the disk cache trusts only what this user wrote: the
directory and each file must be owned by the current user and writable by nobody else, and
each file starts with the sha256 of its content. Anything else is a miss (and is never read
as code); a directory that fails the check is not written to either. Only regular files are
opened, and never in a way that blocks (a FIFO there would hang the compile). A loaded
object must also be a well-formed ELF object that defines `lamina_main` and whose undefined
symbols all resolve in this process: MCJIT aborts on a truncated object or an unresolved
symbol, and a missing entry point would be a call through null. Metadata that does not
decode, or that names an unknown recipe, is a miss too (the driver checks it). A failed
check is a miss, so the entry is rebuilt and overwritten.

A cache_dir that cannot be used (a file, not writable, not a path) is the caller's error:
CacheError (an OSError too), naming the path.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import platform
import stat
import struct
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm
import numpy as np

import ir
from ir import LaminaError

ENTRY = "lamina_main"
# The in-process table is bounded both ways: a few big models' optimised IR text alone can
# run to megabytes each, so a count alone would let it hold hundreds of them.
MEMORY_ENTRIES = 64
MEMORY_BYTES = 32 << 20
_memory: OrderedDict[str, tuple] = OrderedDict()
_memory_lock = threading.Lock()  # models may be compiled from several threads at once


class CacheError(LaminaError, OSError):
    """cache_dir cannot be used as a cache directory."""


def key(graph_text: str, target, **options) -> str:
    """The structure key: the graph's printed IR (no weight values), the backend options,
    the target, the toolchain and Lamina's code generator."""
    return _digest("lamina-structure-1", graph_text, repr(sorted(options.items())),
                   *_toolchain(target))


def text_key(text: str, target) -> str:
    """The key of a compilation that cannot be shared: its unoptimised LLVM module's text."""
    return _digest("lamina-llvm-text-1", text, *_toolchain(target))


def _toolchain(target) -> tuple[str, ...]:
    return (target.cpu, target.features, str(target.vector_bytes), llvmlite.__version__,
            ".".join(map(str, llvm.llvm_version_info)), np.__version__,
            platform.python_version(), code_fingerprint())


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


@functools.cache
def code_fingerprint() -> str:
    """sha256 of the source of everything lowering reads: this package (lowerings, driver,
    runtime), the IR with its operator registry, and the memory planner. Computed once per
    process, at the first compile: the code that runs is what was imported."""
    roots = [(Path(__file__).parent, "*.py"), (Path(ir.__file__).parent, "**/*.py")]
    files = [f for root, pattern in roots for f in sorted(root.glob(pattern))]
    files.append(Path(ir.__file__).parents[1] / "passes" / "plan_memory.py")  # read, not imported
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + (f.read_bytes() if f.is_file() else b"") + b"\0")
    return h.hexdigest()


def get(k: str, directory: str | os.PathLike | None) -> tuple | None:
    d = _directory(directory)
    with _memory_lock:
        if k in _memory:
            _memory.move_to_end(k)
            return _memory[k]
    if d is not None and trusted(d):
        obj, ll = _read_checked(d / f"{k}.o"), _read_checked(d / f"{k}.ll")
        meta = _read_checked(d / f"{k}.meta")  # absent for a text key's entry
        if obj is not None and ll is not None and _loadable(obj):
            entry = (obj, ll.decode(errors="replace"))  # the text is only shown, never run
            entry += (meta,) if meta is not None else ()
            _remember(k, entry)
            return entry
    return None


def _directory(directory) -> Path | None:
    """cache_dir as a Path; refused if it is not a path, or names something not a directory
    (a missing one is fine: put creates it)."""
    if directory is None:
        return None
    if not isinstance(directory, (str, os.PathLike)):
        raise LaminaError(f"cache_dir must be a path (str or os.PathLike), got {directory!r}")
    d = Path(directory)
    try:
        not_dir = d.exists() and not d.is_dir()
    except OSError as e:
        raise CacheError(f"cannot use cache_dir {str(d)!r}: {e}") from e
    if not_dir:
        raise CacheError(f"cache_dir {str(d)!r} exists and is not a directory")
    return d


def trusted(path: Path) -> bool:
    """Owned by this user and not writable by group or others (so no one else placed it)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o022 and not path.is_symlink()


def _read_checked(path: Path) -> bytes | None:
    """The file's payload if it is a trusted regular file whose recorded digest matches."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the checks are on the open
        # file, so what is read is what was checked
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid()
                or st.st_mode & 0o022):
            return None
        data = f.read()
    digest, payload = data[:32], data[32:]
    return payload if hashlib.sha256(payload).digest() == digest else None


# little-endian ELF64 records, as an x86-64 object holds them
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # file header
_SHDR = struct.Struct("<IIQQQQIIQQ")  # section header
_SYM = struct.Struct("<IBBHQQ")  # symbol
SHT_SYMTAB, SHT_NOBITS, SHN_UNDEF, SHN_LORESERVE, STB_LOCAL = 2, 8, 0, 0xFF00, 0


def _loadable(obj: bytes) -> bool:
    """Whether MCJIT can load `obj` without aborting and it provides the entry point."""
    syms = _symbols(obj)
    if syms is None:
        return False
    defined, undefined = syms
    return ENTRY in defined and all(llvm.address_of_symbol(n) for n in undefined)


def _symbols(obj: bytes) -> tuple[set[str], set[str]] | None:
    """(global defined, undefined) symbol names of an ELF64 object, or None unless every
    section, and every symbol with its name and extent, lies within the file."""
    try:
        sections = _sections(obj)
        if sections is None:
            return None
        defined, undefined = set(), set()
        for _, kind, _, _, off, size, link, _, _, _ in sections:
            if kind != SHT_SYMTAB:
                continue
            names = obj[sections[link][4]:sections[link][4] + sections[link][5]]
            for i in range(1, size // _SYM.size):  # entry 0 is the null symbol
                at, info, _, shndx, value, extent = _SYM.unpack_from(obj, off + i * _SYM.size)
                name = names[at:names.index(b"\0", at)].decode()
                if shndx == SHN_UNDEF:
                    undefined.add(name)
                    continue
                if shndx < SHN_LORESERVE and value + extent > sections[shndx][5]:
                    return None
                if info >> 4 != STB_LOCAL:
                    defined.add(name)
        return defined, undefined
    except (struct.error, IndexError, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def _sections(obj: bytes) -> list[tuple] | None:
    """The section headers of a little-endian ELF64 file, if they and their contents fit."""
    head = _EHDR.unpack_from(obj)
    shoff, shentsize, shnum = head[6], head[11], head[12]
    if head[0][:6] != b"\x7fELF\x02\x01" or shentsize != _SHDR.size:
        return None
    if shoff + shnum * _SHDR.size > len(obj):
        return None
    sections = [_SHDR.unpack_from(obj, shoff + i * _SHDR.size) for i in range(shnum)]
    if any(kind != SHT_NOBITS and off + size > len(obj)
           for _, kind, _, _, off, size, *_ in sections):
        return None
    return sections


def put(k: str, obj: bytes, optimized: str, directory: str | os.PathLike | None,
        meta: bytes | None = None) -> None:
    _remember(k, (obj, optimized) + ((meta,) if meta is not None else ()))
    d = _directory(directory)
    if d is None:
        return
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not trusted(d):
            return  # someone else could have written here: never share code through it
        _write_atomic(d / f"{k}.ll", optimized.encode())
        if meta is not None:
            _write_atomic(d / f"{k}.meta", meta)
        _write_atomic(d / f"{k}.o", obj)  # last: its presence marks a complete entry
    except OSError as e:
        raise CacheError(f"cannot write to cache_dir {str(d)!r}: {e}") from e


def _remember(k: str, entry: tuple) -> None:
    if _size(entry) > MEMORY_BYTES:
        return  # would evict everything else and still not fit
    with _memory_lock:
        _memory[k] = entry
        _memory.move_to_end(k)
        total = sum(map(_size, _memory.values()))
        while len(_memory) > MEMORY_ENTRIES or total > MEMORY_BYTES:
            total -= _size(_memory.popitem(last=False)[1])


def _size(entry: tuple) -> int:
    return sum(map(len, entry))


# ---- metadata: a JSON document and arrays, as one .npz (read without pickle) ----------------
def pack_meta(doc: dict, arrays: list[np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, doc=np.frombuffer(json.dumps(doc).encode(), np.uint8),
             **{f"a{i}": a for i, a in enumerate(arrays)})
    return buf.getvalue()


def unpack_meta(meta: bytes) -> tuple[dict, list[np.ndarray]]:
    """(document, arrays); ValueError (or another of the errors np.load raises) if damaged."""
    with np.load(io.BytesIO(meta), allow_pickle=False) as z:
        doc = json.loads(z["doc"].tobytes())
        return doc, [z[f"a{i}"] for i in range(len(z.files) - 1)]


def _write_atomic(path: Path, data: bytes) -> None:
    """Write (mode 0600, digest first) then rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(hashlib.sha256(data).digest() + data)
        os.replace(tmp, path)  # over a FIFO or a damaged entry alike
    except OSError:
        os.unlink(tmp)
        raise


def clear_memory() -> None:
    """Forget the in-process entries (the disk ones stay)."""
    with _memory_lock:
        _memory.clear()
