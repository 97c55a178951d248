"""Compiled-code cache: object code keyed by the module's text and the target.

A compiled model's native code depends only on its unoptimised LLVM module (which encodes
the graph's structure, shapes, attributes and FP mode, never weight values: weights are
pointers) and on the target (CPU, features, LLVM version). On a hit the optimisation
pipeline and code generation are skipped: MCJIT takes the stored object. Entries live in a
small in-process LRU table (at most MEMORY_ENTRIES entries and MEMORY_BYTES bytes, so
compiling many models does not grow the process without end) and, when a directory is
given, in files there
(<sha256>.o and <sha256>.ll, the optimised IR shown as `llvm_ir`).

Loading object code runs it, so the disk cache trusts only what this user wrote: the
directory and each file must be owned by the current user and writable by nobody else, and
each file starts with the sha256 of its content. Anything else is a miss (and is never read
as code); a directory that fails the check is not written to either. Only regular files are
opened, and never in a way that blocks (a FIFO there would hang the compile). A loaded
object must also be a well-formed ELF object that defines `lamina_main` and whose undefined
symbols all resolve in this process: MCJIT aborts on a truncated object or an unresolved
symbol, and a missing entry point would be a call through null. A failed check is a miss,
so the entry is rebuilt and overwritten.

A cache_dir that cannot be used (a file, not writable, not a path) is the caller's error:
CacheError (an OSError too), naming the path.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

from ir import LaminaError

ENTRY = "lamina_main"
# The in-process table is bounded both ways: a few big models' optimised IR text alone can
# run to megabytes each, so a count alone would let it hold hundreds of them.
MEMORY_ENTRIES = 64
MEMORY_BYTES = 32 << 20
_memory: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
_memory_lock = threading.Lock()  # models may be compiled from several threads at once


class CacheError(LaminaError, OSError):
    """cache_dir cannot be used as a cache directory."""


def key(text: str, target) -> str:
    h = hashlib.sha256()
    for part in (text, target.cpu, target.features, llvmlite.__version__,
                 ".".join(map(str, llvm.llvm_version_info))):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def get(k: str, directory: str | os.PathLike | None) -> tuple[bytes, str] | None:
    d = _directory(directory)
    with _memory_lock:
        if k in _memory:
            _memory.move_to_end(k)
            return _memory[k]
    if d is not None and trusted(d):
        obj, ll = _read_checked(d / f"{k}.o"), _read_checked(d / f"{k}.ll")
        if obj is not None and ll is not None and _loadable(obj):
            entry = (obj, ll.decode(errors="replace"))  # the text is only shown, never run
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


def put(k: str, obj: bytes, optimized: str, directory: str | os.PathLike | None) -> None:
    _remember(k, (obj, optimized))
    d = _directory(directory)
    if d is None:
        return
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not trusted(d):
            return  # someone else could have written here: never share code through it
        _write_atomic(d / f"{k}.ll", optimized.encode())
        _write_atomic(d / f"{k}.o", obj)  # last: its presence marks a complete entry
    except OSError as e:
        raise CacheError(f"cannot write to cache_dir {str(d)!r}: {e}") from e


def _remember(k: str, entry: tuple[bytes, str]) -> None:
    if _size(entry) > MEMORY_BYTES:
        return  # would evict everything else and still not fit
    with _memory_lock:
        _memory[k] = entry
        _memory.move_to_end(k)
        total = sum(map(_size, _memory.values()))
        while len(_memory) > MEMORY_ENTRIES or total > MEMORY_BYTES:
            total -= _size(_memory.popitem(last=False)[1])


def _size(entry: tuple[bytes, str]) -> int:
    return len(entry[0]) + len(entry[1])


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
