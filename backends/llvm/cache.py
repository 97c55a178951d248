"""Compiled-code cache: object code keyed by the module's text and the target.

A compiled model's native code depends only on its unoptimised LLVM module (which encodes
the graph's structure, shapes, attributes and FP mode, never weight values: weights are
pointers) and on the target (CPU, features, LLVM version). On a hit the optimisation
pipeline and code generation are skipped: MCJIT takes the stored object. Entries live in a
small in-process LRU table and, when a directory is given, in files there
(<sha256>.o and <sha256>.ll, the optimised IR shown as `llvm_ir`).

Loading object code runs it, so the disk cache trusts only what this user wrote: the
directory and each file must be owned by the current user and writable by nobody else, and
each file starts with the sha256 of its content. Anything else is a miss (and is never read
as code); a directory that fails the check is not written to either.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

MEMORY_ENTRIES = 64
_memory: OrderedDict[str, tuple[bytes, str]] = OrderedDict()


def key(text: str, target) -> str:
    h = hashlib.sha256()
    for part in (text, target.cpu, target.features, llvmlite.__version__,
                 ".".join(map(str, llvm.llvm_version_info))):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def get(k: str, directory: str | os.PathLike | None) -> tuple[bytes, str] | None:
    if k in _memory:
        _memory.move_to_end(k)
        return _memory[k]
    if directory is not None and trusted(Path(directory)):
        obj, ll = _read_checked(Path(directory) / f"{k}.o"), _read_checked(
            Path(directory) / f"{k}.ll")
        if obj is not None and ll is not None:
            entry = (obj, ll.decode())
            _remember(k, entry)
            return entry
    return None


def trusted(path: Path) -> bool:
    """Owned by this user and not writable by group or others (so no one else placed it)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o022 and not path.is_symlink()


def _read_checked(path: Path) -> bytes | None:
    """The file's payload if it is trusted and its recorded digest matches, else None."""
    if not trusted(path):
        return None
    data = path.read_bytes()
    digest, payload = data[:32], data[32:]
    return payload if hashlib.sha256(payload).digest() == digest else None


def put(k: str, obj: bytes, optimized: str, directory: str | os.PathLike | None) -> None:
    _remember(k, (obj, optimized))
    if directory is not None:
        d = Path(directory)
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not trusted(d):
            return  # someone else could have written here: never share code through it
        _write_atomic(d / f"{k}.ll", optimized.encode())
        _write_atomic(d / f"{k}.o", obj)  # last: its presence marks a complete entry


def _remember(k: str, entry: tuple[bytes, str]) -> None:
    _memory[k] = entry
    _memory.move_to_end(k)
    while len(_memory) > MEMORY_ENTRIES:
        _memory.popitem(last=False)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write (mode 0600, digest first) then rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(fd, "wb") as f:
        f.write(hashlib.sha256(data).digest() + data)
    os.replace(tmp, path)


def clear_memory() -> None:
    """Forget the in-process entries (the disk ones stay)."""
    _memory.clear()
